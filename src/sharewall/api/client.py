"""Synchronous client for sharewalld's local API: HTTP/1.1 + JSON over a Unix socket.

Promise: stdlib only (``http.client``, ``socket``, ``json``), so importing it costs a few
milliseconds and the CLI stays fast; no aiohttp, no pyroute2, no msgspec. Every failure is one of
the typed exceptions of :mod:`sharewall.errors`:

- the daemon answered with ``{"error": {"code", "message"}}`` → the matching typed error
  (``NotFoundError``, ``ConflictError``, ``ValidationError``, ``PermissionDeniedError``…);
- the socket cannot be reached, or the daemon stops answering → ``DaemonUnavailableError``;
- the reply is not the JSON the contract promises → plain ``SharewallError``.

Results are the decoded JSON, typed with ``TypedDict`` s that mirror the API contract
(documented in ``docs/cli.md``).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypedDict, cast
from urllib.parse import quote

from sharewall import __version__
from sharewall.errors import (
    DaemonUnavailableError,
    SharewallError,
    ValidationError,
    error_from_dict,
)

__all__ = [
    "DEFAULT_SOCKET_PATH",
    "DEFAULT_TIMEOUT_S",
    "SOCKET_ENV_VAR",
    "Client",
    "ConnectionDetails",
    "ConnectionInfo",
    "ConnectionRef",
    "MappingInfo",
    "SharingInfo",
    "StatusInfo",
    "UnixHTTPConnection",
    "default_socket_path",
]

DEFAULT_SOCKET_PATH = "/run/sharewall/sharewall.sock"
SOCKET_ENV_VAR = "SHAREWALL_SOCKET"
DEFAULT_TIMEOUT_S = 30.0

# Only GET is retried after a dropped keep-alive connection: a change sent twice could be applied
# twice (or fail as a duplicate) if the daemon had already acted on the first copy.
_RETRYABLE_METHODS = frozenset({"GET"})


class ConnectionRef(TypedDict):
    """A connection named in another object: its stable id and its current name."""

    id: str
    name: str


class SharingInfo(TypedDict):
    """Who shares with whom (``Sharing`` in the API)."""

    active: bool
    public: ConnectionRef | None
    private: list[ConnectionRef]
    public_address: str | None


class StatusInfo(TypedDict):
    """``GET /v1/status``."""

    version: str
    sharing: SharingInfo
    connections: int
    mappings: int
    problems: list[str]


class ConnectionInfo(TypedDict):
    """One connection (``Connection`` in the API)."""

    id: str
    name: str
    device: str
    status: str
    status_code: int
    media_type: str
    media_type_code: int
    characteristics: int
    sharing: Literal["none", "public", "private"]
    firewall: bool
    present: bool
    mac: str
    ipv4: list[str]
    ipv6: list[str]


class ConnectionDetails(ConnectionInfo):
    """``GET /v1/connections/{ref}``: a connection plus its ten ICMP switches."""

    icmp: dict[str, bool]


class MappingInfo(TypedDict):
    """One port mapping (``Mapping`` in the API)."""

    name: str
    protocol: Literal["tcp", "udp"]
    external_port: int
    internal_port: int
    target: str
    enabled: bool
    builtin: bool
    options: int
    active: bool
    target_address: str | None
    source: str


def default_socket_path() -> str:
    """The daemon's socket: ``$SHAREWALL_SOCKET`` if set and non-empty, else the default.

    Returns:
        A filesystem path.
    """
    return os.environ.get(SOCKET_ENV_VAR) or DEFAULT_SOCKET_PATH


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` that connects to a Unix stream socket instead of TCP."""

    def __init__(self, socket_path: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        # The host only fills the Host header; the daemon ignores it.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _quote_segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, not {value!r}")
    return quote(value, safe="")


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class Client:
    """A connection to sharewalld's local API.

    One Unix-socket connection is opened on first use and reused (HTTP keep-alive); if the daemon
    closed it while idle, the next request opens a new one. Not thread-safe: use one ``Client``
    per thread.

    Example::

        with Client() as sw:
            sw.share("eth0", ["lan0"])
            sw.add_mapping("eth0", name="web", protocol="tcp", external_port=8080,
                           internal_port=80, target="192.168.137.10")
    """

    def __init__(
        self, socket_path: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Prepare a client; nothing is connected until the first request.

        Args:
            socket_path: the daemon's socket; ``None`` means :func:`default_socket_path`.
            timeout: seconds to wait for the socket and for each reply.
        """
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self._conn: UnixHTTPConnection | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection to the daemon (a later request reopens it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def _connection(self) -> tuple[UnixHTTPConnection, bool]:
        """The open connection and whether it is reused (``False``: freshly opened)."""
        conn = self._conn
        if conn is not None and conn.sock is not None:
            # An idle keep-alive socket only becomes readable when the daemon closed it.
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if not readable:
                return conn, True
            self.close()
        conn = UnixHTTPConnection(self.socket_path, timeout=self.timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise DaemonUnavailableError(
                f"cannot reach sharewalld at {self.socket_path}: "
                f"no answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            conn.close()
            raise DaemonUnavailableError(
                f"cannot reach sharewalld at {self.socket_path}: {_describe_os_error(exc)}"
            ) from exc
        self._conn = conn
        return conn, False

    def _exchange(self, method: str, path: str, payload: bytes | None) -> tuple[int, str, bytes]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"sharewall-client/{__version__}",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                self.close()
                raise DaemonUnavailableError(
                    f"sharewalld at {self.socket_path} did not answer {method} {path} "
                    f"within {self.timeout:g} s"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and method in _RETRYABLE_METHODS:
                    continue  # the daemon dropped the idle connection just now: once more, fresh
                unsure = (
                    ""
                    if method in _RETRYABLE_METHODS
                    else " (the change may or may not be applied)"
                )
                reason = (
                    _describe_os_error(exc)
                    if isinstance(exc, OSError)
                    else str(exc) or type(exc).__name__
                )
                raise DaemonUnavailableError(
                    f"lost the connection to sharewalld at {self.socket_path}: {reason}{unsure}"
                ) from exc
            if response.will_close:
                self.close()
            return response.status, response.reason, data

    def request(
        self, method: str, path: str, body: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """Send one API request and decode the JSON object it returns.

        The typed methods below are the supported interface; this is their common path and a
        way to reach endpoints they do not wrap.

        Args:
            method: the HTTP method, e.g. ``"GET"``.
            path: the request path, already URL-encoded, e.g. ``"/v1/status"``.
            body: a JSON object to send, or ``None`` for no body.

        Returns:
            The decoded JSON object of a 2xx reply (``{}`` for an empty body).

        Raises:
            DaemonUnavailableError: the socket cannot be reached or the daemon stopped answering.
            SharewallError: the typed error the daemon reported (see :mod:`sharewall.errors`), or
                a reply that is not a JSON object.
        """
        payload = None if body is None else json.dumps(body).encode()
        status, reason, data = self._exchange(method, path, payload)
        decoded: object = None
        decode_error: ValueError | None = None
        if data.strip():
            try:
                decoded = json.loads(data)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                decode_error = exc
        elif 200 <= status < 300:
            decoded = {}
        if 200 <= status < 300:
            if not isinstance(decoded, dict):
                what = "is not JSON" if decode_error is not None else "is not a JSON object"
                raise SharewallError(
                    f"sharewalld's reply to {method} {path} {what} (HTTP {status} {reason})"
                )
            return cast(dict[str, Any], decoded)
        error = decoded.get("error") if isinstance(decoded, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            raise error_from_dict({k: v for k, v in error.items() if isinstance(v, str)})
        snippet = data[:200].decode("utf-8", "replace").strip()
        raise SharewallError(
            f"sharewalld answered {method} {path} with HTTP {status} {reason}"
            + (f": {snippet}" if snippet else "")
        )

    def _field(self, body: dict[str, Any], key: str, method: str, path: str) -> Any:
        if key not in body:
            raise SharewallError(f"sharewalld's reply to {method} {path} lacks {key!r}")
        return body[key]

    def _call(
        self, method: str, path: str, key: str, body: Mapping[str, object] | None = None
    ) -> Any:
        return self._field(self.request(method, path, body), key, method, path)

    @staticmethod
    def _connection_path(ref: str) -> str:
        return "/v1/connections/" + _quote_segment(ref, "connection")

    # -- reads ----------------------------------------------------------------------------------

    def status(self) -> StatusInfo:
        """The daemon's summary: version, sharing, counts and configuration problems.

        Returns:
            ``{"version", "sharing", "connections", "mappings", "problems"}``.

        Raises:
            DaemonUnavailableError: the daemon cannot be reached.
            SharewallError: the daemon failed to answer properly.
        """
        return cast(StatusInfo, self.request("GET", "/v1/status"))

    def connections(self) -> list[ConnectionInfo]:
        """Every connection (network interface except loopback).

        Returns:
            The connections, in the daemon's order.

        Raises:
            DaemonUnavailableError: the daemon cannot be reached.
            SharewallError: the daemon failed to answer properly.
        """
        return cast(list[ConnectionInfo], self._call("GET", "/v1/connections", "connections"))

    def connection(self, ref: str) -> ConnectionDetails:
        """One connection with its ICMP settings.

        Args:
            ref: the connection's name or id.

        Returns:
            The connection, with ``icmp`` mapping each of the ten option names to a bool.

        Raises:
            NotFoundError: no such connection (code ``unknown_connection``).
            DaemonUnavailableError: the daemon cannot be reached.
        """
        return cast(ConnectionDetails, self.request("GET", self._connection_path(ref)))

    def mappings(self, ref: str, *, counters: bool = False) -> list[MappingInfo]:
        """The port mappings of one connection: built-in services, then the user's.

        Args:
            ref: the connection's name or id.
            counters: also read each mapping's ``hits`` (connections opened through it and their
                first packets' bytes, from the kernel's map counters; costs a map listing).

        Returns:
            The mappings, each with its live state (``active``, ``target_address``).

        Raises:
            NotFoundError: no such connection.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/mappings" + ("?counters=1" if counters else "")
        return cast(list[MappingInfo], self._call("GET", path, "mappings"))

    def openapi(self) -> dict[str, Any]:
        """The daemon's OpenAPI document.

        Returns:
            The decoded ``/openapi.json``.

        Raises:
            DaemonUnavailableError: the daemon cannot be reached.
        """
        return self.request("GET", "/openapi.json")

    # -- changes --------------------------------------------------------------------------------

    def share(
        self,
        public: str,
        private: str | Sequence[str],
        private_address: str | None = None,
    ) -> SharingInfo:
        """Share *public* with the *private* connections (replaces any previous sharing).

        Args:
            public: the connection to the Internet (name or id).
            private: one or more LAN-side connections (names or ids).
            private_address: the first private connection's address as ``a.b.c.d/nn``; ``None``
                keeps the daemon's setting (192.168.137.1/24 by default).

        Returns:
            The new sharing state.

        Raises:
            ValidationError: a bad address or an impossible combination of connections.
            NotFoundError: an unknown connection.
            ConflictError: a connection cannot take that role.
            PermissionDeniedError: the caller is neither root nor in group ``sharewall``.
            KernelError: the kernel refused the change (nothing was applied).
            DaemonUnavailableError: the daemon cannot be reached.
        """
        private_refs = [private] if isinstance(private, str) else list(private)
        body = {"public": public, "private": private_refs, "private_address": private_address}
        return cast(SharingInfo, self._call("POST", "/v1/sharing", "sharing", body))

    def unshare(self) -> SharingInfo:
        """Stop sharing, undoing exactly what sharing did.

        Returns:
            The sharing state afterwards (``active`` is false).

        Raises:
            PermissionDeniedError: the caller may not change state.
            KernelError: the kernel refused the change.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        return cast(SharingInfo, self._call("DELETE", "/v1/sharing", "sharing"))

    def set_firewall(self, ref: str, enabled: bool) -> bool:
        """Turn the firewall (ICF) of one connection on or off.

        Args:
            ref: the connection's name or id.
            enabled: ``True`` to filter, ``False`` to filter nothing there.

        Returns:
            The firewall state afterwards.

        Raises:
            NotFoundError: no such connection.
            ConflictError: e.g. the public connection of active sharing must keep its firewall.
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/firewall"
        return bool(self._call("PUT", path, "firewall", {"enabled": bool(enabled)}))

    def change_icmp(
        self, ref: str, allow: Iterable[str] = (), deny: Iterable[str] = ()
    ) -> dict[str, bool]:
        """Switch ICMP options of one connection on (*allow*) or off (*deny*).

        Args:
            ref: the connection's name or id.
            allow: option names to turn on (``inbound_echo_request`` or ``inbound-echo-request``).
            deny: option names to turn off.

        Returns:
            All ten options afterwards.

        Raises:
            ValidationError: an unknown option, or one both allowed and denied.
            NotFoundError: no such connection.
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/icmp"
        body = {"allow": list(allow), "deny": list(deny)}
        return cast(dict[str, bool], self._call("PATCH", path, "icmp", body))

    def add_mapping(
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
        """Add a port mapping to one connection.

        Args:
            ref: the connection's name or id.
            name: a name unique on that connection.
            protocol: ``"tcp"`` or ``"udp"``.
            external_port: the port on the connection, 1-65535.
            internal_port: the port on the target; ``None`` means the external port.
            target: ``"gateway"`` (this machine), a private IPv4 address or a host name.
            enabled: whether the mapping is in force now.

        Returns:
            The mapping as stored.

        Raises:
            ValidationError: a bad port, protocol, target or name.
            NotFoundError: no such connection.
            ConflictError: the name, or the protocol and external port, are already taken
                (code ``duplicate_mapping``).
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        body = {
            "name": name,
            "protocol": protocol,
            "external_port": external_port,
            "internal_port": external_port if internal_port is None else internal_port,
            "target": target,
            "enabled": enabled,
        }
        path = self._connection_path(ref) + "/mappings"
        return cast(MappingInfo, self._call("POST", path, "mapping", body))

    def import_mappings(self, ref: str, mappings: Sequence[Mapping[str, object]]) -> int:
        """Add many mappings in one transaction: all of them or none.

        Args:
            ref: the connection's name or id.
            mappings: objects with the fields of :meth:`add_mapping` (``name``, ``protocol``,
                ``external_port``, ``internal_port``, ``target``, ``enabled``).

        Returns:
            How many mappings were added.

        Raises:
            ValidationError: a bad entry (nothing was added).
            ConflictError: a duplicate, within the list or with existing mappings.
            NotFoundError: no such connection.
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/mappings/import"
        body = {"mappings": [dict(m) for m in mappings]}
        return int(self._call("POST", path, "added", body))

    def set_mapping_enabled(self, ref: str, name: str, enabled: bool) -> MappingInfo:
        """Enable or disable one mapping (built-in services included).

        Args:
            ref: the connection's name or id.
            name: the mapping's name.
            enabled: the new state.

        Returns:
            The mapping afterwards.

        Raises:
            NotFoundError: no such connection or mapping (code ``unknown_mapping``).
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/mappings/" + _quote_segment(name, "mapping name")
        return cast(MappingInfo, self._call("PATCH", path, "mapping", {"enabled": bool(enabled)}))

    def remove_mapping(self, ref: str, name: str) -> str:
        """Remove one user mapping.

        Args:
            ref: the connection's name or id.
            name: the mapping's name.

        Returns:
            The name of the removed mapping.

        Raises:
            NotFoundError: no such connection or mapping.
            ConflictError: a built-in service cannot be removed (code ``builtin_mapping``).
            PermissionDeniedError: the caller may not change state.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        path = self._connection_path(ref) + "/mappings/" + _quote_segment(name, "mapping name")
        return str(self._call("DELETE", path, "removed"))

    def leases(self) -> list[dict[str, Any]]:
        """The DHCP leases on the private side.

        Returns:
            Each lease as ``{"mac", "ip", "hostname", "expires_at", "connection"}``.

        Raises:
            DaemonUnavailableError: the daemon cannot be reached.
        """
        return cast(list[dict[str, Any]], self._call("GET", "/v1/leases", "leases"))

    def reservations(self) -> list[dict[str, Any]]:
        """The DHCP reservations (``{"mac", "ip", "hostname"}`` each).

        Raises:
            DaemonUnavailableError: the daemon cannot be reached.
        """
        return cast(list[dict[str, Any]], self._call("GET", "/v1/reservations", "reservations"))

    def add_reservation(self, mac: str, ip: str, hostname: str | None = None) -> dict[str, Any]:
        """Reserve *ip* for *mac* (replacing that MAC's reservation), without dropping any lease.

        Args:
            mac: the client's Ethernet address.
            ip: an address in a private network (not the gateway's own).
            hostname: the name DNS answers for it, optional.

        Raises:
            ValidationError: bad MAC, host name, or an address outside the private networks.
            ConflictError: the address or host name is reserved for another MAC.
            PermissionDeniedError: the caller may not change sharewall.
        """
        body: dict[str, object] = {"mac": mac, "ip": ip, "hostname": hostname}
        return cast(dict[str, Any], self._call("POST", "/v1/reservations", "reservation", body))

    def remove_reservation(self, mac: str) -> str:
        """Remove *mac*'s reservation (its current lease is kept until it ends).

        Raises:
            NotFoundError: no reservation for that MAC.
            PermissionDeniedError: the caller may not change sharewall.
        """
        path = "/v1/reservations/" + _quote_segment(mac, "MAC address")
        return cast(str, self._call("DELETE", path, "removed"))

    def set_security_log(
        self, ref: str, *, dropped: bool | None = None, connections: bool | None = None
    ) -> dict[str, bool]:
        """Switch the ICF security log of one connection.

        Args:
            ref: the connection's name or id.
            dropped: log dropped packets (None: unchanged).
            connections: log successful connections (None: unchanged).

        Returns:
            ``{"log_dropped": bool, "log_connections": bool}``.

        Raises:
            NotFoundError: no such connection.
            PermissionDeniedError: the caller may not change sharewall.
        """
        body: dict[str, object] = {}
        if dropped is not None:
            body["log_dropped"] = dropped
        if connections is not None:
            body["log_connections"] = connections
        return cast(
            dict[str, bool], self._call("PUT", self._connection_path(ref) + "/log", "log", body)
        )

    def log_tail(self, lines: int = 50) -> list[dict[str, Any]]:
        """The most recent security log events (as the API's JSON objects), oldest first."""
        return cast(
            list[dict[str, Any]], self._call("GET", f"/v1/log?lines={int(lines)}", "events")
        )

    def log_follow(self, lines: int = 10) -> Iterator[dict[str, Any]]:
        """The last *lines* events, then every new one as it happens (blocks; stop by breaking out).

        Uses its own connection, without a read timeout, so the rest of the client stays usable.
        """
        conn = UnixHTTPConnection(self.socket_path, timeout=self.timeout)
        try:
            conn.request("GET", f"/v1/log?lines={int(lines)}&follow=1")
            response = conn.getresponse()
            if response.status != 200:
                data = response.read()
                try:
                    error = json.loads(data).get("error")
                except (ValueError, AttributeError):
                    error = None
                if isinstance(error, dict):
                    raise error_from_dict({k: v for k, v in error.items() if isinstance(v, str)})
                raise SharewallError(f"sharewalld answered GET /v1/log with HTTP {response.status}")
            if conn.sock is not None:
                conn.sock.settimeout(None)
            while True:
                line = response.readline()
                if not line:
                    return
                yield json.loads(line)
        except OSError as exc:
            raise DaemonUnavailableError(
                f"lost the connection to sharewalld at {self.socket_path}: {_describe_os_error(exc)}"
            ) from exc
        finally:
            conn.close()

    def active(self) -> dict[str, Any]:
        """Connections through the gateway now (conntrack), grouped by private client and by mapping.

        Returns:
            ``{"total", "kernel_count", "by_client", "by_mapping", "connections", "counters"}``.
        """
        return self.request("GET", "/v1/active")

    def teardown(self) -> None:
        """Remove everything sharewall put into the kernel.

        Raises:
            PermissionDeniedError: the caller may not change state.
            KernelError: the kernel refused the change.
            DaemonUnavailableError: the daemon cannot be reached.
        """
        self.request("POST", "/v1/teardown")
