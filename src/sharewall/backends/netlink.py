"""Links and addresses through rtnetlink: read them as :class:`sharewall.facts.Link`, watch them, change them.

Everything acts on the network namespace of the calling thread at the time the watcher is opened;
the daemon runs inside its namespace, so that is the one it manages.

Design notes:
- Dumps and changes go through pyroute2's ``AsyncIPRoute`` (its sync API holds back events, stack.md §2).
- Change notification uses a plain stdlib netlink socket subscribed to the link and address groups.
  We only need "something changed, look again", so nothing is parsed, and an overflowing socket
  (ENOBUFS) simply counts as a change: the caller's next snapshot is the truth either way.
- Interface names are reported exactly as the kernel holds them. A name that is not valid UTF-8 is
  decoded with ``surrogateescape``, so ``os.fsencode(name)`` gives back the kernel's bytes, and
  names are turned into indexes with ``socket.if_nametoindex``, which encodes them the same way.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK

from sharewall.errors import KernelError, NotFoundError, ValidationError
from sharewall.facts import Link

__all__ = ["NetlinkWatcher", "snapshot"]

# <linux/if.h> and <linux/if_addr.h>
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000
IFA_F_DADFAILED = 0x08

_WATCH_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

#: After the first event, keep draining for this long so a burst (a link coming up brings several
#: link and address messages within a few ms) wakes the caller once.
COALESCE_S = 0.020
_RECV_BYTES = 64 * 1024
#: Bound on messages read in one non-blocking drain; the rest wait for the next call.
_MAX_DRAIN = 1024

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _text(value: str | bytes) -> str:
    # pyroute2 hands back bytes when a name is not valid UTF-8.
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")


def _is_wireless(name: str, index: int) -> bool:
    """Ask sysfs. Checking ifindex guards against a sysfs that belongs to another namespace."""
    base = os.path.join(b"/sys/class/net", os.fsencode(name))
    try:
        with open(os.path.join(base, b"ifindex"), "rb") as file:
            if int(file.read()) != index:
                return False
    except (OSError, ValueError):
        return False
    return os.path.exists(os.path.join(base, b"wireless")) or os.path.exists(
        os.path.join(base, b"phy80211")
    )


def _link_from_message(msg: Any) -> Link:
    index = int(msg["index"])
    name = _text(msg.get("IFLA_IFNAME"))
    flags = int(msg["flags"])
    kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    if not kind and flags & IFF_LOOPBACK:
        kind = "loopback"
    return Link(
        index=index,
        name=name,
        kind=_text(kind),
        mac=str(msg.get("IFLA_ADDRESS") or ""),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
        mtu=int(msg.get("IFLA_MTU") or 0),
        wireless=_is_wireless(name, index),
    )


def _address_from_message(msg: Any) -> IPInterface | None:
    flags = msg.get("IFA_FLAGS")
    if flags is None:
        flags = msg["flags"]
    if int(flags) & IFA_F_DADFAILED:
        return None  # never usable: another host owns it
    # IFA_LOCAL is the local end when present (IPv4 always, IPv6 only with a peer); IFA_ADDRESS otherwise.
    address = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
    if not address:
        return None
    return ipaddress.ip_interface(f"{address}/{msg['prefixlen']}")


async def _collect(messages: AsyncIterator[Any]) -> list[Any]:
    return [msg async for msg in messages]


async def snapshot(ipr: AsyncIPRoute) -> dict[str, Link]:
    """Every link in ``ipr``'s namespace, by name, with its addresses.

    Addresses keep the kernel's order (the primary IPv4 address first). IPv6 link-local addresses
    (fe80::/10) are included, and so are tentative ones still in duplicate address detection; those
    that failed it are left out. ``wireless`` comes from sysfs and is only reliable when /sys was
    mounted in this namespace (``ip netns exec`` does that).

    Raises:
        KernelError: the dump failed.
    """
    try:
        link_messages = await _collect(await ipr.get_links())
        address_messages = await _collect(await ipr.get_addr())
    except NetlinkError as error:
        raise KernelError(f"netlink dump failed: {error}") from error
    links_by_index = {link.index: link for link in map(_link_from_message, link_messages)}
    ipv4: dict[int, list[ipaddress.IPv4Interface]] = {}
    ipv6: dict[int, list[ipaddress.IPv6Interface]] = {}
    for msg in address_messages:
        address = _address_from_message(msg)
        index = int(msg["index"])
        if address is None or index not in links_by_index:  # a link that appeared between dumps
            continue
        if isinstance(address, ipaddress.IPv4Interface):
            ipv4.setdefault(index, []).append(address)
        else:
            ipv6.setdefault(index, []).append(address)
    result: dict[str, Link] = {}
    for index, link in links_by_index.items():
        result[link.name] = Link(
            index=link.index,
            name=link.name,
            kind=link.kind,
            mac=link.mac,
            up=link.up,
            carrier=link.carrier,
            mtu=link.mtu,
            wireless=link.wireless,
            ipv4=tuple(ipv4.get(index, ())),
            ipv6=tuple(ipv6.get(index, ())),
        )
    return result


def _parse_cidr(cidr: str) -> IPInterface:
    try:
        return ipaddress.ip_interface(cidr)
    except ValueError as error:
        raise ValidationError(f"not an address with prefix length: {cidr!r}") from error


def _index_of(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except (OSError, ValueError) as error:
        raise NotFoundError(f"no network interface named {ifname!r}") from error


def _address_arguments(interface: IPInterface) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "address": str(interface.ip),
        "prefixlen": interface.network.prefixlen,
    }
    # Like `ip addr add ... brd +`: the kernel does not derive a broadcast address itself.
    if isinstance(interface, ipaddress.IPv4Interface) and interface.network.prefixlen <= 30:
        arguments["broadcast"] = str(interface.network.broadcast_address)
    return arguments


class NetlinkWatcher:
    """Watch and change links and addresses in the current network namespace.

    Use as ``async with NetlinkWatcher() as watcher:``. A typical loop::

        links = await watcher.snapshot()
        while True:
            await watcher.wait_change()
            links = await watcher.snapshot()

    Events that arrive between two calls are kept by the kernel socket, so none is lost between a
    snapshot and the next ``wait_change()``; a spurious wake-up is possible, a missed one is not.
    """

    def __init__(self) -> None:
        self._ipr: Any = None
        self._events: socket.socket | None = None

    async def __aenter__(self) -> Self:
        # Subscribe before anyone takes a snapshot, so a change racing the first dump still wakes us.
        events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            events.setblocking(False)
            events.bind((0, _WATCH_GROUPS))
            self._ipr = AsyncIPRoute()
        except BaseException:
            events.close()
            raise
        self._events = events
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._events is not None:
            self._events.close()
            self._events = None

    def _require_open(self) -> tuple[Any, socket.socket]:
        if self._ipr is None or self._events is None:
            raise RuntimeError("NetlinkWatcher is not open; use `async with NetlinkWatcher()`")
        return self._ipr, self._events

    async def snapshot(self) -> dict[str, Link]:
        """See :func:`snapshot`."""
        ipr, _ = self._require_open()
        return await snapshot(ipr)

    # The timeout is part of the contract (False, not an exception), so ASYNC109 does not apply.
    async def wait_change(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait for a link or address change; True if one came, False after ``timeout`` seconds.

        A burst is coalesced: after the first message, whatever arrives within ``COALESCE_S`` is
        consumed by the same call.
        """
        _, events = self._require_open()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                await self._receive(loop, events)
        except TimeoutError:
            return False
        deadline = loop.time() + COALESCE_S
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    await self._receive(loop, events)
            except TimeoutError:
                break
        return True

    @staticmethod
    async def _receive(loop: asyncio.AbstractEventLoop, events: socket.socket) -> None:
        """Wait for at least one message, then drain what is already queued (bounded)."""
        try:
            await loop.sock_recv(events, _RECV_BYTES)
        except OSError as error:
            if error.errno != errno.ENOBUFS:  # overflow: events were lost, which is still "changed"
                raise
        for _ in range(_MAX_DRAIN):
            try:
                events.recv(_RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise

    async def add_address(self, ifname: str, cidr: str) -> None:
        """Add ``cidr`` (e.g. ``"192.168.137.1/24"``) to ``ifname``; already present is fine.

        Raises:
            ValidationError: ``cidr`` is not an address with a prefix length.
            NotFoundError: no interface has that name.
            KernelError: the kernel refused.
        """
        interface = _parse_cidr(cidr)
        ipr, _ = self._require_open()
        index = _index_of(ifname)
        try:
            await ipr.addr("add", index=index, **_address_arguments(interface))
        except NetlinkError as error:
            if error.code == errno.EEXIST:
                return
            raise _kernel_error(f"adding {cidr} to {ifname!r}", error) from error

    async def remove_address(self, ifname: str, cidr: str) -> None:
        """Remove ``cidr`` from ``ifname``; an absent address or interface is fine (nothing to remove).

        Raises:
            ValidationError: ``cidr`` is not an address with a prefix length.
            KernelError: the kernel refused.
        """
        interface = _parse_cidr(cidr)
        ipr, _ = self._require_open()
        try:
            index = _index_of(ifname)
        except NotFoundError:
            return
        try:
            await ipr.addr(
                "del",
                index=index,
                address=str(interface.ip),
                prefixlen=interface.network.prefixlen,
            )
        except NetlinkError as error:
            if error.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                return
            raise _kernel_error(f"removing {cidr} from {ifname!r}", error) from error

    async def set_up(self, ifname: str) -> None:
        """Bring ``ifname`` administratively up (already up is fine).

        Raises:
            NotFoundError: no interface has that name.
            KernelError: the kernel refused.
        """
        ipr, _ = self._require_open()
        index = _index_of(ifname)
        try:
            await ipr.link("set", index=index, state="up")
        except NetlinkError as error:
            raise _kernel_error(f"bringing {ifname!r} up", error) from error


def _kernel_error(action: str, error: NetlinkError) -> KernelError | NotFoundError:
    if error.code == errno.ENODEV:  # the interface vanished after the name lookup
        return NotFoundError(f"{action}: the interface no longer exists")
    return KernelError(f"{action}: {os.strerror(error.code)} (errno {error.code})")
