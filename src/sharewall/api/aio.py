"""The asyncio variant of the client library: the same methods as :class:`sharewall.api.client.Client`,
awaitable.

Each ``AsyncClient`` owns one worker thread and one sync ``Client``; every call runs there, so the event
loop never blocks on the Unix socket and calls from one ``AsyncClient`` stay in order. Errors are the same
typed exceptions (:mod:`sharewall.errors`).

Example::

    async with AsyncClient() as sw:
        await sw.share("eth0", ["lan0"])
        for m in await sw.mappings("eth0"):
            print(m["name"], m["active"])
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sharewall.api.client import (
    Client,
    ConnectionDetails,
    ConnectionInfo,
    MappingInfo,
    SharingInfo,
    StatusInfo,
)

P = ParamSpec("P")
T = TypeVar("T")


class AsyncClient:
    """An awaitable connection to sharewalld's local API (see the module docstring)."""

    def __init__(self, socket_path: str | None = None, *, timeout: float = 30.0) -> None:
        self._client = Client(socket_path, timeout=timeout)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sharewall-client"
        )

    @property
    def socket_path(self) -> str:
        return self._client.socket_path

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        await self._run(self._client.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the API (each mirrors the Client method of the same name) ---------------------------------

    async def request(
        self, method: str, path: str, body: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        return await self._run(self._client.request, method, path, body)

    async def status(self) -> StatusInfo:
        return await self._run(self._client.status)

    async def connections(self) -> list[ConnectionInfo]:
        return await self._run(self._client.connections)

    async def connection(self, ref: str) -> ConnectionDetails:
        return await self._run(self._client.connection, ref)

    async def mappings(self, ref: str, *, counters: bool = False) -> list[MappingInfo]:
        return await self._run(self._client.mappings, ref, counters=counters)

    async def openapi(self) -> dict[str, Any]:
        return await self._run(self._client.openapi)

    async def share(
        self, public: str, private: str | Sequence[str], private_address: str | None = None
    ) -> SharingInfo:
        return await self._run(self._client.share, public, private, private_address)

    async def unshare(self) -> SharingInfo:
        return await self._run(self._client.unshare)

    async def set_firewall(self, ref: str, enabled: bool) -> bool:
        return await self._run(self._client.set_firewall, ref, enabled)

    async def change_icmp(
        self, ref: str, allow: Iterable[str] = (), deny: Iterable[str] = ()
    ) -> dict[str, bool]:
        return await self._run(self._client.change_icmp, ref, list(allow), list(deny))

    async def add_mapping(
        self,
        ref: str,
        *,
        name: str,
        protocol: str,
        external_port: int,
        internal_port: int | None = None,
        target: str = "gateway",
        enabled: bool = True,
    ) -> MappingInfo:
        return await self._run(
            self._client.add_mapping,
            ref,
            name=name,
            protocol=protocol,
            external_port=external_port,
            internal_port=internal_port,
            target=target,
            enabled=enabled,
        )

    async def import_mappings(self, ref: str, mappings: Sequence[Mapping[str, object]]) -> int:
        return await self._run(self._client.import_mappings, ref, mappings)

    async def set_mapping_enabled(self, ref: str, name: str, enabled: bool) -> MappingInfo:
        return await self._run(self._client.set_mapping_enabled, ref, name, enabled)

    async def remove_mapping(self, ref: str, name: str) -> str:
        return await self._run(self._client.remove_mapping, ref, name)

    async def leases(self) -> list[dict[str, Any]]:
        return await self._run(self._client.leases)

    async def reservations(self) -> list[dict[str, Any]]:
        return await self._run(self._client.reservations)

    async def add_reservation(
        self, mac: str, ip: str, hostname: str | None = None
    ) -> dict[str, Any]:
        return await self._run(self._client.add_reservation, mac, ip, hostname)

    async def remove_reservation(self, mac: str) -> str:
        return await self._run(self._client.remove_reservation, mac)

    async def set_security_log(
        self, ref: str, *, dropped: bool | None = None, connections: bool | None = None
    ) -> dict[str, bool]:
        return await self._run(
            self._client.set_security_log, ref, dropped=dropped, connections=connections
        )

    async def log_tail(self, lines: int = 50) -> list[dict[str, Any]]:
        return await self._run(self._client.log_tail, lines)

    async def log_follow(self, lines: int = 10) -> AsyncIterator[dict[str, Any]]:
        """Recent events, then new ones as they happen (its own thread and connection)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue(maxsize=1000)
        stop = False

        def pump() -> None:
            try:
                for event in self._client.log_follow(lines):
                    if stop:
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except BaseException as exc:  # delivered to the consumer below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        follower = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        loop.run_in_executor(follower, pump)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop = True
            follower.shutdown(wait=False)

    async def active(self) -> dict[str, Any]:
        return await self._run(self._client.active)

    async def teardown(self) -> None:
        await self._run(self._client.teardown)
