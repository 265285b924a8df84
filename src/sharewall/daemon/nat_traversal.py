"""NAT traversal for the private side: UPnP IGD, NAT-PMP and PCP, all writing one mapping table.

The service between the protocol cores (``sharewall.protocols``, pure), their asyncio adapters
(``sharewall.servers``, sockets only) and the engine (the one place that changes state):

- **Where it listens** follows sharing: :meth:`NatTraversal.follow` runs after every engine
  reconcile and (re)binds SSDP (udp/1900), the IGD's HTTP (tcp/2869) and NAT-PMP/PCP (udp/5351)
  on each private connection's addresses, and nowhere else. When sharing stops, they close.
- **What it decides** for each request, in this order: the client is rate-limited
  (:class:`~sharewall.model.nat_policy.RateLimiter`); the policy may refuse (switch, secure
  mode, allow/deny rules); an occupied external port is overwritten only by the same internal
  host (UPnP's rule), else it is a conflict (or, for "any port" requests, the next free
  permitted port is taken); a new mapping must fit the client's quota.
- **How it maps**: a dynamic mapping is an ordinary :class:`~sharewall.model.mapping.PortMapping`
  on the public connection, named ``"<source>:<protocol>:<external port>"``, with the requester
  as ``client`` and a wall-clock ``expires_at``. The engine validates, persists and applies it as
  one nft element (same path as static mappings, hairpin included); the daemon's expiry loop
  removes it when the lease ends, also across restarts.

Settings come from ``nat-traversal.toml`` next to the configuration file (read at start; a bad
file leaves NAT traversal off), with the fields of
:class:`~sharewall.model.nat_policy.NatTraversalSettings`, for example::

    enabled = true
    secure_mode = true            # a client may map only to itself
    igd_version = 1               # 2: AddAnyPortMapping, GetListOfPortMappings, ...
    max_mappings_per_client = 64
    requests_per_second = 50.0    # per client, all protocols; 0: no limit

    [[rules]]                     # first match decides; no match: refused
    action = "allow"
    external_ports = [1024, 65535]
    clients = "192.168.137.0/24"
    internal_ports = [1, 65535]

Errors each protocol answers with: UPnP 606/718 (not authorized), 718 (conflict), 729 (conflict
with a static mapping, IGD:2), 728 (no ports / quota, IGD:2), 714/730 (not found); NAT-PMP
NOT_AUTHORIZED / OUT_OF_RESOURCES / NETWORK_FAILURE; PCP NOT_AUTHORIZED / USER_EX_QUOTA /
NO_RESOURCES / CANNOT_PROVIDE_EXTERNAL / NETWORK_FAILURE.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import math
import platform
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

import sharewall
from sharewall.errors import ConflictError, ErrorCode, NotFoundError, SharewallError
from sharewall.facts import Link
from sharewall.model.config import ConnectionConfig
from sharewall.model.mapping import MappingSource, PortMapping, Protocol, TargetKind
from sharewall.model.nat_policy import (
    AddressClass,
    NatTraversalSettings,
    RateLimiter,
    Refusal,
    candidate_ports,
    clamp_lifetime,
    classify_public_address,
)
from sharewall.protocols import igd, natpmp, pcp, soap, ssdp
from sharewall.protocols._limits import GENA_MAX_CALLBACKS, IGD_MAX_LEASE_S
from sharewall.protocols.errors import RemoteProtocolError
from sharewall.servers.igd_http import IGD_HTTP_PORT, IgdHttpServer
from sharewall.servers.natpmp import NatPmpServer
from sharewall.servers.ssdp import SsdpServer

from .engine import Engine

__all__ = [
    "SETTINGS_FILE",
    "Failure",
    "NatTraversal",
    "TraversalError",
    "load_settings",
    "mapping_name",
    "start_nat_traversal",
]

log = logging.getLogger("sharewall.nat_traversal")

#: Read from the configuration file's directory (until ``[nat_traversal]`` joins the main file).
SETTINGS_FILE = "nat-traversal.toml"

DYNAMIC_SOURCES = (MappingSource.UPNP, MappingSource.NATPMP, MappingSource.PCP)
_PORT_PROTOCOLS = (MappingSource.NATPMP, MappingSource.PCP)
# RFC 6886 §3.2.1: announce an address change ten times, from 250 ms, doubling.
_ANNOUNCE_COUNT = 10
_ANNOUNCE_FIRST_INTERVAL_S = 0.25
# GENA (UDA 1.1 §4): subscription bounds and the default we grant.
_GENA_DEFAULT_TIMEOUT_S = 1800
_GENA_MIN_TIMEOUT_S = 60
_GENA_MAX_TIMEOUT_S = 86400
_GENA_MAX_SUBSCRIPTIONS = 64
_GENA_MAX_PER_PEER = 8
_GENA_NOTIFY_TIMEOUT_S = 2.0
_GENA_INITIAL_DELAY_S = 0.05
_LISTING_MAX_AGE_S = 1.0
_GENA_MAX_PENDING_EVENTS = 16
_UUID_NAMESPACE = uuid.UUID("8a5a3f4e-6c1b-4d8e-9a7e-2b0c1d5e6f70")


def mapping_name(source: MappingSource, protocol: Protocol, external_port: int) -> str:
    """The deterministic name of a dynamic mapping, e.g. ``"upnp:tcp:8080"``."""
    return f"{source.value}:{protocol.value}:{external_port}"


def load_settings(path: Path) -> NatTraversalSettings:
    """Read the settings file; defaults when it does not exist.

    Raises:
        SharewallError: (invalid_config) the file is not valid TOML or has a bad key.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return NatTraversalSettings()
    try:
        return msgspec.toml.decode(raw, type=NatTraversalSettings)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise SharewallError(f"{path}: {err}", code=ErrorCode.INVALID_CONFIG) from None


class Failure(enum.Enum):
    """Why a mapping request failed; each protocol turns it into its own code."""

    NOT_AUTHORIZED = "not_authorized"
    CONFLICT = "conflict"  # the port is another host's
    CONFLICT_OTHER = "conflict_other"  # the port is a static mapping's (another mechanism)
    QUOTA = "quota"
    NO_PORTS = "no_ports"
    NOT_FOUND = "not_found"
    NETWORK_FAILURE = "network_failure"


class TraversalError(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


class _UpnpFaultError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class _Subscription:
    """One GENA subscriber; its events leave in order through one sender task."""

    sid: str
    event_path: str
    peer: ipaddress.IPv4Address
    callbacks: tuple[str, ...]
    expires: float
    seq: int = 0
    pending: list[list[tuple[str, str]]] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task[None] | None = None
    last: dict[str, str] = field(default_factory=dict)  # what the subscriber was last told


class _LinkServers:
    """The servers of one private link: SSDP, NAT-PMP/PCP per address, HTTP per address."""

    def __init__(self, ifname: str, interfaces: tuple[ipaddress.IPv4Interface, ...]) -> None:
        self.ifname = ifname
        self.interfaces = interfaces
        self.ssdp: SsdpServer | None = None
        self.natpmp: list[NatPmpServer] = []
        self.http_addresses: list[ipaddress.IPv4Interface] = []


class NatTraversal:
    """The NAT traversal service of one daemon. Create, :meth:`start`, and :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        settings: NatTraversalSettings | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.settings = settings or NatTraversalSettings()
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.started_at = monotonic()
        self._limiter = RateLimiter(self.settings.requests_per_second, self.settings.request_burst)
        self._lock = asyncio.Lock()  # one mapping decision at a time (check, then act)
        self._follow_lock = asyncio.Lock()
        self._by_client: dict[str, set[str]] = {}
        self._indexed_connection: str | None = None
        # (client, protocol, internal port) -> mapping names: NAT-PMP/PCP renewals find theirs in O(1).
        self._by_port: dict[tuple[str, Protocol, int], set[str]] = {}
        self._nonces: dict[str, bytes] = {}
        self._links: dict[str, _LinkServers] = {}
        self._http: IgdHttpServer | None = None
        self._running = False
        self._announced_address: ipaddress.IPv4Address | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._subscriptions: dict[str, _Subscription] = {}
        self._documents: dict[str, bytes] = {}
        # GetGenericPortMappingEntry walks the table by index: keep the order between calls.
        self._generation = 0
        self._listing: tuple[tuple[str, int, int], float, list[str]] | None = None
        seed = socket.gethostname()
        self.root_uuid = str(uuid.uuid5(_UUID_NAMESPACE, f"{seed}:igd"))
        self.wan_device_uuid = str(uuid.uuid5(_UUID_NAMESPACE, f"{seed}:wan-device"))
        self.wan_connection_uuid = str(uuid.uuid5(_UUID_NAMESPACE, f"{seed}:wan-connection"))
        self.server_header = (
            f"Linux/{platform.release() or '0'} UPnP/1.1 sharewall/{sharewall.__version__}"
        )
        self.boot_id = int(wall_clock()) & 0x7FFF_FFFF

    # --- state the service reads from the engine ---------------------------------------------

    @property
    def igd_version(self) -> int:
        return self.settings.igd_version

    def public_connection(self) -> ConnectionConfig | None:
        sharing = self.engine.config.sharing
        if not sharing.active or sharing.public is None:
            return None
        return self.engine.config.connections.get(sharing.public)

    def public_link(self) -> Link | None:
        conn = self.public_connection()
        return None if conn is None else self.engine.facts.links.get(conn.name)

    def public_address(self) -> ipaddress.IPv4Address | None:
        link = self.public_link()
        return link.ipv4[0].ip if link is not None and link.ipv4 else None

    def public_address_class(self) -> AddressClass:
        return classify_public_address(self.public_address())

    def private_links(self) -> dict[str, tuple[ipaddress.IPv4Interface, ...]]:
        """Private connections that are present with IPv4 addresses: where we serve."""
        sharing = self.engine.config.sharing
        if not self.settings.enabled or not sharing.active:
            return {}
        wanted: dict[str, tuple[ipaddress.IPv4Interface, ...]] = {}
        for conn_id in sharing.private:
            conn = self.engine.config.connections.get(conn_id)
            link = None if conn is None else self.engine.facts.links.get(conn.name)
            if link is not None and link.ipv4:
                wanted[link.name] = tuple(link.ipv4)
        return wanted

    def _private_networks(self) -> list[ipaddress.IPv4Network]:
        return [i.network for interfaces in self.private_links().values() for i in interfaces]

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow sharing from now on (and serve right away if sharing is active)."""
        self._running = True
        if self.settings.enabled:
            addr_class = self.public_address_class()
            if addr_class not in (AddressClass.PUBLIC, AddressClass.UNKNOWN):
                log.warning(
                    "the public address %s is %s: mappings cannot be reached from the Internet",
                    self.public_address(),
                    addr_class.value,
                )
        self.engine.after_reconcile.append(self.follow)
        await self.follow()

    async def stop(self) -> None:
        """Close every server (SSDP says byebye); mappings stay and keep their leases."""
        self._running = False
        with contextlib.suppress(ValueError):
            self.engine.after_reconcile.remove(self.follow)
        async with self._follow_lock:
            for ifname in list(self._links):
                await self._close_link(self._links.pop(ifname))
            if self._http is not None:
                await self._http.close()
                self._http = None
        senders = [s.sender for s in self._subscriptions.values() if s.sender is not None]
        for sid in list(self._subscriptions):
            self._drop_subscription(sid)
        for sender in senders:
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def follow(self) -> None:
        """Bind to the private links that should have servers now; unbind from the rest.

        Runs after every engine reconcile (under the engine's lock): it must not call back into
        the engine's changing operations.
        """
        async with self._follow_lock:
            wanted = self.private_links() if self._running else {}
            for ifname in list(self._links):
                if self._links[ifname].interfaces != wanted.get(ifname):
                    await self._close_link(self._links.pop(ifname))
            for ifname, interfaces in wanted.items():
                if ifname in self._links:
                    continue
                servers = _LinkServers(ifname, interfaces)
                try:
                    await self._open_link(servers)
                except Exception as err:  # never let a server break the engine's reconcile
                    log.error("NAT traversal cannot listen on %s: %s", ifname, err)
                    await self._close_link(servers)
                    continue
                self._links[ifname] = servers
                log.info(
                    "NAT traversal listening on %s (%s)",
                    ifname,
                    ", ".join(str(i.ip) for i in interfaces),
                )
                self._announce_address(servers, repeat=False)
            address = self.public_address()
            if address != self._announced_address:
                self._announced_address = address
                if address is not None:
                    for servers in self._links.values():
                        self._announce_address(servers, repeat=True)
                self._event_later("ExternalIPAddress")

    async def _open_link(self, servers: _LinkServers) -> None:
        settings = self.settings
        if settings.upnp:
            if self._http is None:
                self._http = IgdHttpServer(self, server_header=self.server_header)
                await self._http.start()
            for interface in servers.interfaces:
                await self._http.add_address(servers.ifname, interface)
                servers.http_addresses.append(interface)
            servers.ssdp = SsdpServer(
                servers.ifname, servers.interfaces, self._ssdp_device(), self._location
            )
            await servers.ssdp.start()
        if settings.natpmp or settings.pcp:
            for interface in servers.interfaces:
                server = NatPmpServer(servers.ifname, interface, self.handle_datagram)
                servers.natpmp.append(server)
                await server.start()

    async def _close_link(self, servers: _LinkServers) -> None:
        if servers.ssdp is not None:
            await servers.ssdp.close()
        for server in servers.natpmp:
            await server.close()
        if self._http is not None:
            for interface in servers.http_addresses:
                await self._http.remove_address(interface)

    def _spawn(self, coroutine: object) -> None:
        assert asyncio.iscoroutine(coroutine)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- NAT-PMP / PCP announcements ----------------------------------------------------------

    def epoch_s(self) -> int:
        return natpmp.epoch_seconds(self.monotonic(), self.started_at)

    def _announcements(self) -> list[bytes]:
        address = self.public_address()
        out: list[bytes] = []
        if address is None:
            return out
        epoch = self.epoch_s()
        if self.settings.natpmp:
            out.append(
                natpmp.render_response(
                    natpmp.PublicAddressResponse(epoch_s=epoch, public_address=address)
                )
            )
        if self.settings.pcp:
            out.append(pcp.render_response(pcp.AnnounceResponse(epoch_s=epoch)))
        return out

    def _announce_address(self, servers: _LinkServers, *, repeat: bool) -> None:
        if not servers.natpmp or self.public_address() is None:
            return

        async def announce() -> None:
            interval = _ANNOUNCE_FIRST_INTERVAL_S
            for _ in range(_ANNOUNCE_COUNT if repeat else 1):
                for payload in self._announcements():
                    for server in servers.natpmp:
                        server.announce(payload)
                await asyncio.sleep(interval)
                interval *= 2

        self._spawn(announce())

    # --- the mapping table --------------------------------------------------------------------

    def _ensure_index(self, conn: ConnectionConfig) -> None:
        if self._indexed_connection != conn.id:
            self._by_client = {}
            self._by_port = {}
            for m in conn.mappings.values():
                if m.is_dynamic and m.client:
                    self._index(m)
            self._indexed_connection = conn.id

    def _index(self, mapping: PortMapping) -> None:
        self._by_client.setdefault(mapping.client, set()).add(mapping.name)
        key = (mapping.client, mapping.protocol, mapping.internal_port)
        self._by_port.setdefault(key, set()).add(mapping.name)

    def _client_count(self, conn: ConnectionConfig, client: str) -> int:
        """How many mappings ``client`` holds, O(1) unless it is at its quota (then exact)."""
        self._ensure_index(conn)
        names = self._by_client.get(client, set())
        if len(names) < self.settings.max_mappings_per_client:
            return len(names)  # may count a mapping that just expired: only ever too high
        return len(self._client_mappings(conn, client))

    def _client_mappings(self, conn: ConnectionConfig, client: str) -> list[PortMapping]:
        """The dynamic mappings ``client`` asked for on ``conn`` (O(its mappings), not O(table))."""
        self._ensure_index(conn)
        names = self._by_client.get(client)
        if not names:
            return []
        found: list[PortMapping] = []
        for name in list(names):
            mapping = conn.mappings.get(name)
            if mapping is None or not mapping.is_dynamic or mapping.client != client:
                names.discard(name)  # expired or revoked since: forget it
            else:
                found.append(mapping)
        return found

    def _remember(self, conn: ConnectionConfig, mapping: PortMapping) -> None:
        self._generation += 1
        self._event_later("PortMappingNumberOfEntries")
        if self._indexed_connection == conn.id:
            self._index(mapping)

    @staticmethod
    def _occupant(conn: ConnectionConfig, protocol: Protocol, port: int) -> PortMapping | None:
        """The dynamic mapping on ``protocol``/``port``, if any (static ones: see add)."""
        for source in DYNAMIC_SOURCES:
            mapping = conn.mappings.get(mapping_name(source, protocol, port))
            if mapping is not None:
                return mapping
        return None

    @staticmethod
    def _static_occupant(
        conn: ConnectionConfig, protocol: Protocol, port: int
    ) -> PortMapping | None:
        for mapping in conn.mappings.values():
            if (
                not mapping.is_dynamic
                and not mapping.builtin
                and mapping.enabled
                and mapping.protocol is protocol
                and mapping.external_port == port
            ):
                return mapping
        return None

    def _expiry(self, lifetime_s: int | None) -> float | None:
        return None if lifetime_s is None else self.wall_clock() + lifetime_s

    async def _replace(self, conn: ConnectionConfig, old: PortMapping, new: PortMapping) -> None:
        if old.name == new.name:
            await self.engine.replace_dynamic_mapping(conn.id, new)
        else:
            await self.engine.remove_mapping(conn.id, old.name)
            await self.engine.add_mappings(conn.id, [new])
        self._nonces.pop(old.name, None)
        self._remember(conn, new)

    async def _unmap(self, conn: ConnectionConfig, mapping: PortMapping) -> bool:
        try:
            await self.engine.remove_mapping(conn.id, mapping.name)
        except NotFoundError:
            return False  # expired or revoked meanwhile
        self._generation += 1
        self._event_later("PortMappingNumberOfEntries")
        self._nonces.pop(mapping.name, None)
        names = self._by_client.get(mapping.client)
        if names is not None:
            names.discard(mapping.name)
        return True

    def _require_public(self) -> ConnectionConfig:
        conn = self.public_connection()
        if conn is None or self.public_link() is None:
            raise TraversalError(Failure.NETWORK_FAILURE, "no public connection")
        return conn

    async def map_port(
        self,
        *,
        source: MappingSource,
        requester: ipaddress.IPv4Address,
        internal_client: ipaddress.IPv4Address,
        protocol: Protocol,
        external_port: int,
        internal_port: int,
        lifetime_s: int | None,
        description: str = "",
        any_port: bool = False,
        overwrite_same_host: bool = True,
    ) -> PortMapping:
        """Create (or, for the same internal host, overwrite) one dynamic mapping.

        ``lifetime_s`` None is a permanent mapping (IGD:1 lease 0). With ``any_port`` the
        external port is a wish: the nearest free permitted port is taken instead.

        Raises:
            TraversalError: refused (policy, conflict, quota, no public connection).
        """
        conn = self._require_public()
        refusal = self.settings.refusal(
            requester=requester,
            internal_client=internal_client,
            external_port=max(external_port, 1),
            internal_port=internal_port,
        )
        if refusal in (Refusal.DISABLED, Refusal.NOT_SELF):
            raise TraversalError(Failure.NOT_AUTHORIZED, f"{requester}: {refusal.value}")
        if internal_client not in self._private_hosts():
            raise TraversalError(
                Failure.NOT_AUTHORIZED, f"{internal_client} is not on a private connection"
            )
        if any_port:
            ports: Iterable[int] = candidate_ports(external_port or internal_port, low=1)
        else:
            ports = (external_port,)
        target = str(internal_client)
        client = str(requester)
        expires_at = self._expiry(lifetime_s)
        permitted_any = False
        for port in ports:
            if not self.settings.permits(internal_client, port, internal_port):
                continue
            permitted_any = True
            new = PortMapping(
                name=mapping_name(source, protocol, port),
                protocol=protocol,
                external_port=port,
                internal_port=internal_port,
                target=target,
                source=source,
                client=client,
                description=description,
                expires_at=expires_at,
            )
            occupant = self._occupant(conn, protocol, port)
            if occupant is not None:
                if overwrite_same_host and occupant.target == target:
                    await self._replace(conn, occupant, new)
                    return new
                if any_port:
                    continue
                raise TraversalError(Failure.CONFLICT, f"{protocol.value}/{port} is taken")
            if self._client_count(conn, client) >= self.settings.max_mappings_per_client:
                raise TraversalError(Failure.QUOTA, f"{client} has too many mappings")
            try:
                await self.engine.add_mappings(conn.id, [new])
            except ConflictError as err:
                if err.code is not ErrorCode.DUPLICATE_MAPPING:
                    raise
                if any_port:
                    continue
                raise TraversalError(Failure.CONFLICT_OTHER, err.message) from None
            self._remember(conn, new)
            return new
        if not permitted_any:
            raise TraversalError(Failure.NOT_AUTHORIZED, "no permitted external port")
        raise TraversalError(Failure.NO_PORTS, "no free external port")

    def _private_hosts(self) -> _Networks:
        return _Networks(self._private_networks())

    # --- NAT-PMP and PCP -----------------------------------------------------------------------

    async def handle_datagram(self, data: bytes, peer: tuple[str, int]) -> bytes | None:
        """One datagram to udp/5351 from a private host → the answer (None: stay silent)."""
        if not data:
            return None
        if not self._limiter.allow(peer[0], self.monotonic()):
            return None
        client = ipaddress.IPv4Address(peer[0])
        async with self._lock:
            if data[0] == natpmp.VERSION:
                return await self._natpmp(data, client)
            return await self._pcp(data, client)

    def _port_mapping_of(
        self, conn: ConnectionConfig, host: str, protocol: Protocol, internal_port: int
    ) -> PortMapping | None:
        """A NAT-PMP/PCP mapping of ``host``'s ``internal_port`` (what a renewal refers to)."""
        self._ensure_index(conn)
        names = self._by_port.get((host, protocol, internal_port), set())
        for name in list(names):
            mapping = conn.mappings.get(name)
            if (
                mapping is not None
                and mapping.source in _PORT_PROTOCOLS
                and mapping.client == host
                and mapping.target == host
                and mapping.protocol is protocol
                and mapping.internal_port == internal_port
            ):
                return mapping
            if mapping is None or mapping.client != host:
                names.discard(name)  # expired or revoked since: forget it
        return None

    async def _natpmp(self, data: bytes, client: ipaddress.IPv4Address) -> bytes | None:
        epoch = self.epoch_s()
        try:
            request = natpmp.parse_request(data)
        except RemoteProtocolError as error:
            if error.result_code is None:
                return None
            return natpmp.error_response(error.opcode or 0, error.result_code, epoch)
        if not self.settings.natpmp:
            opcode = 0 if isinstance(request, natpmp.PublicAddressRequest) else request.opcode
            return natpmp.error_response(opcode, natpmp.ResultCode.NOT_AUTHORIZED, epoch)
        address = self.public_address()
        if isinstance(request, natpmp.PublicAddressRequest):
            if address is None:
                return natpmp.render_response(
                    natpmp.PublicAddressResponse(
                        epoch_s=epoch,
                        public_address=ipaddress.IPv4Address(0),
                        result_code=natpmp.ResultCode.NETWORK_FAILURE,
                    )
                )
            return natpmp.render_response(
                natpmp.PublicAddressResponse(epoch_s=epoch, public_address=address)
            )
        protocol = Protocol.parse(request.protocol)
        conn = self.public_connection()
        if conn is None or address is None:
            return natpmp.render_response(
                request.reply(epoch_s=epoch, result_code=natpmp.ResultCode.NETWORK_FAILURE)
            )
        host = str(client)
        if request.is_delete:
            # RFC 6886 §3.4: internal port 0 deletes all of the client's mappings of that protocol.
            one = (
                self._port_mapping_of(conn, host, protocol, request.internal_port)
                if request.internal_port
                else None
            )
            candidates = (
                ([one] if one is not None else [])
                if request.internal_port
                else list(self._client_mappings(conn, host))
            )
            for mapping in candidates:
                if (
                    mapping.source in _PORT_PROTOCOLS
                    and mapping.protocol is protocol
                    and request.internal_port in (0, mapping.internal_port)
                ):
                    await self._unmap(conn, mapping)
            return natpmp.render_response(request.reply(epoch_s=epoch))
        if request.internal_port == 0:
            return natpmp.render_response(
                request.reply(epoch_s=epoch, result_code=natpmp.ResultCode.NOT_AUTHORIZED)
            )
        lifetime = clamp_lifetime(request.lifetime_s, self.settings.max_lifetime_s)
        existing = self._port_mapping_of(conn, host, protocol, request.internal_port)
        try:
            if existing is not None:
                # RFC 6886 §3.3: "the NAT gateway MUST return the existing mapping".
                mapping = msgspec.structs.replace(existing, expires_at=self._expiry(lifetime))
                await self._replace(conn, existing, mapping)
            else:
                mapping = await self.map_port(
                    source=MappingSource.NATPMP,
                    requester=client,
                    internal_client=client,
                    protocol=protocol,
                    external_port=request.suggested_external_port,
                    internal_port=request.internal_port,
                    lifetime_s=lifetime,
                    description="NAT-PMP",
                    any_port=True,
                    overwrite_same_host=False,
                )
        except TraversalError as error:
            return natpmp.render_response(
                request.reply(epoch_s=epoch, result_code=_NATPMP_RESULT[error.failure])
            )
        except SharewallError as error:
            log.error("NAT-PMP mapping for %s failed: %s", client, error.message)
            return natpmp.render_response(
                request.reply(epoch_s=epoch, result_code=natpmp.ResultCode.OUT_OF_RESOURCES)
            )
        return natpmp.render_response(
            request.reply(epoch_s=epoch, external_port=mapping.external_port, lifetime_s=lifetime)
        )

    async def _pcp(self, data: bytes, client: ipaddress.IPv4Address) -> bytes | None:
        epoch = self.epoch_s()

        def error(code: int) -> bytes:
            return pcp.error_response(
                data, code, lifetime_s=pcp.suggested_error_lifetime_s(code), epoch_s=epoch
            )

        try:
            request = pcp.parse_request(data)
            pcp.verify_client_address(request, client)
        except RemoteProtocolError as err:
            return None if err.result_code is None else error(err.result_code)
        if not self.settings.pcp:
            return error(pcp.ResultCode.NOT_AUTHORIZED)
        if isinstance(request, pcp.AnnounceRequest):
            return pcp.render_response(request.reply(epoch_s=epoch))
        if isinstance(request, pcp.PeerRequest):
            return error(pcp.ResultCode.UNSUPP_OPCODE)
        if any(f.prefix_length for f in request.filters):
            return error(pcp.ResultCode.UNSUPP_OPTION)  # we cannot filter remote peers
        address = self.public_address()
        conn = self.public_connection()
        if conn is None or address is None:
            return error(pcp.ResultCode.NETWORK_FAILURE)
        mapped = request.mapped_address
        if not isinstance(mapped, ipaddress.IPv4Address):
            return error(pcp.ResultCode.NOT_AUTHORIZED)  # IPv4 only: no IPv6 third parties
        if self.settings.secure_mode and mapped != client:
            return error(pcp.ResultCode.NOT_AUTHORIZED)
        host = str(mapped)
        if request.is_delete:
            protocols = (
                [Protocol.TCP, Protocol.UDP]
                if request.protocol == 0
                else [Protocol.parse(request.protocol)]
                if request.protocol in (6, 17)
                else []
            )
            if not protocols:
                return error(pcp.ResultCode.UNSUPP_PROTOCOL)
            removed_port = 0
            for mapping in list(self._client_mappings(conn, str(client))):
                if (
                    mapping.source in _PORT_PROTOCOLS
                    and mapping.target == host
                    and mapping.protocol in protocols
                    and request.internal_port in (0, mapping.internal_port)
                ):
                    known = self._nonces.get(mapping.name)
                    if known is not None and known != request.nonce:
                        return error(pcp.ResultCode.NOT_AUTHORIZED)
                    await self._unmap(conn, mapping)
                    removed_port = mapping.external_port
            return pcp.render_response(
                request.reply(
                    epoch_s=epoch,
                    lifetime_s=0,
                    assigned_external_port=removed_port,
                    assigned_external_address=address,
                )
            )
        if request.protocol not in (6, 17):
            return error(pcp.ResultCode.UNSUPP_PROTOCOL)
        if request.internal_port == 0:
            return error(pcp.ResultCode.MALFORMED_REQUEST)
        protocol = Protocol.parse(request.protocol)
        lifetime = clamp_lifetime(request.lifetime_s, self.settings.max_lifetime_s)
        existing = self._port_mapping_of(conn, host, protocol, request.internal_port)
        try:
            if existing is not None:
                known = self._nonces.get(existing.name)
                if known is not None and known != request.nonce:
                    return error(pcp.ResultCode.NOT_AUTHORIZED)  # RFC 6887 §11.3: not its owner
                mapping = msgspec.structs.replace(existing, expires_at=self._expiry(lifetime))
                await self._replace(conn, existing, mapping)
            else:
                mapping = await self.map_port(
                    source=MappingSource.PCP,
                    requester=client,
                    internal_client=mapped,
                    protocol=protocol,
                    external_port=request.suggested_external_port,
                    internal_port=request.internal_port,
                    lifetime_s=lifetime,
                    description="PCP",
                    any_port=not request.prefer_failure,
                    overwrite_same_host=False,
                )
        except TraversalError as failure:
            if request.prefer_failure and failure.failure in (
                Failure.CONFLICT,
                Failure.CONFLICT_OTHER,
            ):
                return error(pcp.ResultCode.CANNOT_PROVIDE_EXTERNAL)
            return error(_PCP_RESULT[failure.failure])
        except SharewallError as failure:
            log.error("PCP mapping for %s failed: %s", client, failure.message)
            return error(pcp.ResultCode.NO_RESOURCES)
        self._nonces[mapping.name] = request.nonce
        return pcp.render_response(
            request.reply(
                epoch_s=epoch,
                lifetime_s=lifetime,
                assigned_external_port=mapping.external_port,
                assigned_external_address=address,
            )
        )

    # --- UPnP IGD: documents -------------------------------------------------------------------

    def _ssdp_device(self) -> ssdp.SsdpDevice:
        return ssdp.SsdpDevice(
            root_uuid=self.root_uuid,
            wan_device_uuid=self.wan_device_uuid,
            wan_connection_device_uuid=self.wan_connection_uuid,
            server=self.server_header,
            igd_version=self.igd_version,
            boot_id=self.boot_id,
        )

    @staticmethod
    def _location(address: ipaddress.IPv4Address) -> str:
        return f"http://{address}:{IGD_HTTP_PORT}{igd.DESCRIPTION_PATH}"

    def document(self, path: str) -> bytes | None:
        """The device description or an SCPD (rendered once, then cached)."""
        cached = self._documents.get(path)
        if cached is not None:
            return cached
        document: bytes | None = None
        if path == igd.DESCRIPTION_PATH:
            document = igd.render_device_description(
                igd.DeviceDescription(
                    root_uuid=self.root_uuid,
                    wan_device_uuid=self.wan_device_uuid,
                    wan_connection_device_uuid=self.wan_connection_uuid,
                    friendly_name=f"sharewall on {socket.gethostname()}"[:64],
                    igd_version=self.igd_version,
                    serial_number=self.root_uuid[:8],
                )
            )
        else:
            for spec in igd.services(self.igd_version):
                if path == spec.scpd_path:
                    document = igd.render_scpd(spec.service_type)
        if document is not None:
            self._documents[path] = document
        return document

    # --- UPnP IGD: control -------------------------------------------------------------------

    async def control(
        self, path: str, body: bytes, soap_action: str | None, peer: ipaddress.IPv4Address
    ) -> tuple[int, bytes]:
        """One SOAP request → (HTTP status, body)."""
        if not self._limiter.allow(str(peer), self.monotonic()):
            return 503, b""
        try:
            action = soap.parse_request(body, soap_action)
            request = igd.parse_action(action, igd_version=self.igd_version)
        except RemoteProtocolError as error:
            if error.upnp_error is not None:
                return soap.FAULT_HTTP_STATUS, soap.render_fault(error.upnp_error)
            return error.http_status or 400, b""
        try:
            async with self._lock:
                arguments = await self._igd_action(request, peer)
        except _UpnpFaultError as fault:
            return soap.FAULT_HTTP_STATUS, soap.render_fault(fault.code)
        except SharewallError as error:
            log.error("UPnP %s from %s failed: %s", action.action, peer, error.message)
            return soap.FAULT_HTTP_STATUS, soap.render_fault(501)
        return 200, soap.render_response(action.service_type, action.action, arguments)

    def _upnp_code(self, failure: Failure) -> int:
        v2 = self.igd_version == 2
        return {
            Failure.NOT_AUTHORIZED: igd.not_authorized_error(self.igd_version),
            Failure.CONFLICT: 718,
            Failure.CONFLICT_OTHER: 729 if v2 else 718,
            Failure.QUOTA: 728 if v2 else 501,
            Failure.NO_PORTS: 728 if v2 else 501,
            Failure.NOT_FOUND: 714,
            Failure.NETWORK_FAILURE: 501,
        }[failure]

    def _entry(self, mapping: PortMapping, now: float) -> igd.PortMappingEntry:
        remaining = mapping.remaining_s(now)
        return igd.PortMappingEntry(
            external_port=mapping.external_port,
            protocol=mapping.protocol.number,
            internal_port=mapping.internal_port,
            internal_client=mapping.target,
            description=mapping.description or mapping.name,
            lease_duration_s=0 if remaining is None else max(1, math.ceil(remaining)),
            enabled=mapping.enabled,
        )

    @staticmethod
    def _listed(conn: ConnectionConfig) -> list[PortMapping]:
        """What the IGD shows: enabled mappings to private hosts, dynamic and static."""
        return [
            m
            for m in conn.mappings.values()
            if not m.builtin and m.enabled and m.target_kind is TargetKind.ADDRESS
        ]

    def _listed_at(self, conn: ConnectionConfig, index: int) -> PortMapping | None:
        """The ``index``-th listed mapping, in O(1) while the table holds still.

        The names are cached per (connection, table size, our own changes) for at most a second,
        so a client walking 10,000 entries by index costs 10,000 lookups, not 10,000 scans.
        """
        key = (conn.id, len(conn.mappings), self._generation)
        now = self.monotonic()
        for _ in range(2):
            cached = self._listing
            if cached is None or cached[0] != key or now - cached[1] > _LISTING_MAX_AGE_S:
                cached = (key, now, [m.name for m in self._listed(conn)])
                self._listing = cached
            names = cached[2]
            if index >= len(names):
                return None
            mapping = conn.mappings.get(names[index])
            if mapping is not None and mapping.enabled:
                return mapping
            self._listing = None  # changed behind our back (admin edit): rebuild once
        return None

    def _may_manage(self, mapping: PortMapping, peer: ipaddress.IPv4Address) -> bool:
        if not self.settings.secure_mode:
            return True
        return str(peer) in (mapping.client, mapping.target)

    async def _igd_action(
        self, request: igd.IgdRequest, peer: ipaddress.IPv4Address
    ) -> list[tuple[str, str]]:
        v = self.igd_version
        if isinstance(request, igd.GetExternalIPAddress):
            address = self.public_address()
            return [("NewExternalIPAddress", "" if address is None else str(address))]
        if isinstance(request, igd.GetStatusInfo):
            link = self.public_link()
            connected = link is not None and link.up and link.carrier and bool(link.ipv4)
            return [
                ("NewConnectionStatus", "Connected" if connected else "Disconnected"),
                ("NewLastConnectionError", "ERROR_NONE"),
                ("NewUptime", str(int(self.monotonic() - self.started_at))),
            ]
        if isinstance(request, igd.GetConnectionTypeInfo):
            return [("NewConnectionType", "IP_Routed"), ("NewPossibleConnectionTypes", "IP_Routed")]
        if isinstance(request, igd.GetNATRSIPStatus):
            return [("NewRSIPAvailable", "0"), ("NewNATEnabled", "1")]
        if isinstance(request, igd.GetCommonLinkProperties):
            link = self.public_link()
            up = link is not None and link.up and link.carrier
            return [
                ("NewWANAccessType", "Ethernet"),
                ("NewLayer1UpstreamMaxBitRate", str(_link_speed_bps(link))),
                ("NewLayer1DownstreamMaxBitRate", str(_link_speed_bps(link))),
                ("NewPhysicalLinkStatus", "Up" if up else "Down"),
            ]
        if isinstance(request, igd.GetTotalBytesSent):
            return [("NewTotalBytesSent", str(self._counter("tx_bytes")))]
        if isinstance(request, igd.GetTotalBytesReceived):
            return [("NewTotalBytesReceived", str(self._counter("rx_bytes")))]
        if isinstance(request, igd.GetTotalPacketsSent):
            return [("NewTotalPacketsSent", str(self._counter("tx_packets")))]
        if isinstance(request, igd.GetTotalPacketsReceived):
            return [("NewTotalPacketsReceived", str(self._counter("rx_packets")))]
        if isinstance(request, igd.GetDefaultConnectionService):
            return [
                (
                    "NewDefaultConnectionService",
                    f"uuid:{self.wan_connection_uuid}:WANConnectionDevice:{v},"
                    "urn:upnp-org:serviceId:WANIPConn1",
                )
            ]
        conn = self.public_connection()
        if conn is None or self.public_link() is None:
            raise _UpnpFaultError(501)
        now = self.wall_clock()
        if isinstance(request, igd.AddPortMapping | igd.AddAnyPortMapping):
            any_port = isinstance(request, igd.AddAnyPortMapping)
            lease: int | None = request.lease_duration_s
            if v == 1 and lease == 0:
                lease = None  # IGD:1: 0 is a permanent mapping
            elif lease is not None:
                lease = min(lease, IGD_MAX_LEASE_S) if v == 2 else lease
            try:
                mapping = await self.map_port(
                    source=MappingSource.UPNP,
                    requester=peer,
                    internal_client=request.internal_client,
                    protocol=Protocol.parse(request.protocol),
                    external_port=request.external_port,
                    internal_port=request.internal_port,
                    lifetime_s=lease,
                    description=request.description,
                    any_port=any_port,
                )
            except TraversalError as error:
                raise _UpnpFaultError(self._upnp_code(error.failure)) from None
            return [("NewReservedPort", str(mapping.external_port))] if any_port else []
        if isinstance(request, igd.DeletePortMapping):
            protocol = Protocol.parse(request.protocol)
            occupant = self._occupant(conn, protocol, request.external_port)
            if occupant is None:
                static = self._static_occupant(conn, protocol, request.external_port)
                if static is not None and v == 2:
                    raise _UpnpFaultError(606)
                raise _UpnpFaultError(714)
            if not self._may_manage(occupant, peer):
                raise _UpnpFaultError(606 if v == 2 else 714)
            if not await self._unmap(conn, occupant):
                raise _UpnpFaultError(714)
            return []
        if isinstance(request, igd.DeletePortMappingRange):
            protocol = Protocol.parse(request.protocol)
            doomed = [
                m
                for m in conn.mappings.values()
                if m.is_dynamic
                and m.protocol is protocol
                and request.start_port <= m.external_port <= request.end_port
                and (
                    (request.manage and not self.settings.secure_mode) or self._may_manage(m, peer)
                )
            ]
            if not doomed:
                raise _UpnpFaultError(730)
            for mapping in doomed:
                await self._unmap(conn, mapping)
            return []
        if isinstance(request, igd.GetGenericPortMappingEntry):
            listed = self._listed_at(conn, request.index)
            if listed is None:
                raise _UpnpFaultError(713)
            return igd.generic_entry_arguments(self._entry(listed, now))
        if isinstance(request, igd.GetSpecificPortMappingEntry):
            protocol = Protocol.parse(request.protocol)
            found = self._occupant(conn, protocol, request.external_port)
            if found is None:
                static = self._static_occupant(conn, protocol, request.external_port)
                if static is None or static.target_kind is not TargetKind.ADDRESS:
                    raise _UpnpFaultError(714)
                found = static
            return igd.specific_entry_arguments(self._entry(found, now))
        if isinstance(request, igd.GetListOfPortMappings):
            protocol = Protocol.parse(request.protocol)
            chosen = sorted(
                (
                    m
                    for m in self._listed(conn)
                    if m.protocol is protocol
                    and request.start_port <= m.external_port <= request.end_port
                    and (request.manage or self._may_manage(m, peer))
                ),
                key=lambda m: m.external_port,
            )[: request.number_of_ports]
            if not chosen:
                raise _UpnpFaultError(730)
            listing = igd.render_port_mapping_list([self._entry(m, now) for m in chosen])
            return [("NewPortListing", listing)]
        raise _UpnpFaultError(401)

    def _counter(self, name: str) -> int:
        """A public-link counter from sysfs, as ui4 (it wraps at 2**32, as the spec says)."""
        link = self.public_link()
        if link is None:
            return 0
        try:
            text = Path(f"/sys/class/net/{link.name}/statistics/{name}").read_text()
            return int(text.strip()) & 0xFFFF_FFFF
        except (OSError, ValueError):
            return 0

    # --- UPnP IGD: GENA eventing ---------------------------------------------------------------

    def _evented_values(self, event_path: str) -> list[tuple[str, str]]:
        conn = self.public_connection()
        link = self.public_link()
        address = self.public_address()
        if event_path == "/evt/IPConn":
            connected = link is not None and link.up and link.carrier and bool(link.ipv4)
            count = 0 if conn is None else len(self._listed(conn))
            values = [
                ("PossibleConnectionTypes", "IP_Routed"),
                ("ConnectionStatus", "Connected" if connected else "Disconnected"),
                ("ExternalIPAddress", "" if address is None else str(address)),
                ("PortMappingNumberOfEntries", str(count)),
            ]
            if self.igd_version == 2:
                values.append(("SystemUpdateID", str(self.boot_id)))
            return values
        if event_path == "/evt/CmnIfCfg":
            up = link is not None and link.up and link.carrier
            return [("PhysicalLinkStatus", "Up" if up else "Down")]
        if event_path == "/evt/L3F":
            return [
                (
                    "DefaultConnectionService",
                    f"uuid:{self.wan_connection_uuid}:WANConnectionDevice:{self.igd_version},"
                    "urn:upnp-org:serviceId:WANIPConn1",
                )
            ]
        return []

    async def subscription(
        self, method: str, path: str, headers: Mapping[str, str], peer: ipaddress.IPv4Address
    ) -> tuple[int, dict[str, str]]:
        """GENA SUBSCRIBE / UNSUBSCRIBE → (HTTP status, headers)."""
        if path not in {s.event_path for s in igd.services(self.igd_version)}:
            return 404, {}
        self._forget_expired_subscriptions()
        try:
            if method == "UNSUBSCRIBE":
                unsubscribe = igd.parse_unsubscribe(headers)
                known = self._subscriptions.get(unsubscribe.sid)
                if known is None or known.peer != peer:
                    return 412, {}
                self._drop_subscription(unsubscribe.sid)
                return 200, {}
            parsed = igd.parse_subscribe(headers, subscriber_ip=str(peer))
        except RemoteProtocolError as error:
            return error.http_status or 400, {}
        timeout = min(
            max(parsed.timeout_s or _GENA_DEFAULT_TIMEOUT_S, _GENA_MIN_TIMEOUT_S),
            _GENA_MAX_TIMEOUT_S,
        )
        expires = self.monotonic() + timeout
        if isinstance(parsed, igd.Renewal):
            known = self._subscriptions.get(parsed.sid)
            if known is None or known.peer != peer or known.event_path != path:
                return 412, {}
            known.expires = expires
            return 200, igd.subscribe_response_headers(parsed.sid, timeout, self.server_header)
        per_peer = sum(1 for s in self._subscriptions.values() if s.peer == peer)
        if len(self._subscriptions) >= _GENA_MAX_SUBSCRIPTIONS or per_peer >= _GENA_MAX_PER_PEER:
            return 503, {}
        sid = f"uuid:{uuid.uuid4()}"
        subscription = _Subscription(
            sid=sid,
            event_path=path,
            peer=peer,
            callbacks=parsed.callbacks[:GENA_MAX_CALLBACKS],
            expires=expires,
        )
        self._subscriptions[sid] = subscription
        # UDA 1.1 §4.2: the initial event carries every evented variable, sent after the answer.
        initial = self._evented_values(path)
        subscription.last.update(initial)
        self._queue_event(subscription, initial)
        subscription.sender = asyncio.get_running_loop().create_task(self._sender(subscription))
        return 200, igd.subscribe_response_headers(sid, timeout, self.server_header)

    def _drop_subscription(self, sid: str) -> None:
        subscription = self._subscriptions.pop(sid, None)
        if subscription is not None and subscription.sender is not None:
            subscription.sender.cancel()

    def _forget_expired_subscriptions(self) -> None:
        now = self.monotonic()
        for sid in [s.sid for s in self._subscriptions.values() if s.expires <= now]:
            self._drop_subscription(sid)

    @staticmethod
    def _queue_event(subscription: _Subscription, values: list[tuple[str, str]]) -> None:
        if len(subscription.pending) >= _GENA_MAX_PENDING_EVENTS:
            # A slow subscriber: merge into the last event instead of growing without bound.
            merged = dict(subscription.pending[-1])
            merged.update(values)
            subscription.pending[-1] = list(merged.items())
        else:
            subscription.pending.append(values)
        subscription.wakeup.set()

    def _event_later(self, variable: str) -> None:
        """Tell subscribers that ``variable`` changed (in the background, never blocking)."""
        if not self._subscriptions:
            return
        self._forget_expired_subscriptions()
        for subscription in list(self._subscriptions.values()):
            values = [
                (n, v)
                for n, v in self._evented_values(subscription.event_path)
                if n == variable and subscription.last.get(n) != v
            ]
            if values:
                subscription.last.update(values)
                self._queue_event(subscription, values)

    async def _sender(self, subscription: _Subscription) -> None:
        """Deliver one subscription's events in order, SEQ 0 first (UDA 1.1 §4.2.1)."""
        import aiohttp  # the daemon has it; imported late to keep this module light

        timeout = aiohttp.ClientTimeout(total=_GENA_NOTIFY_TIMEOUT_S)
        # One connection per event: subscribers often close after answering (as miniupnpd does).
        connector = aiohttp.TCPConnector(force_close=True, limit=1)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.sleep(_GENA_INITIAL_DELAY_S)  # let the SUBSCRIBE answer go first
            while True:
                await subscription.wakeup.wait()
                subscription.wakeup.clear()
                while subscription.pending:
                    values = subscription.pending.pop(0)
                    await self._notify(session, subscription, values)

    @staticmethod
    async def _notify(
        session: object, subscription: _Subscription, values: list[tuple[str, str]]
    ) -> None:
        import aiohttp

        assert isinstance(session, aiohttp.ClientSession)
        body = igd.render_propertyset(values)
        headers = igd.notify_headers(subscription.sid, subscription.seq)
        # SEQ wraps to 1, never 0 again (UDA 1.1 §4.2.1).
        subscription.seq = 1 if subscription.seq >= 0xFFFF_FFFF else subscription.seq + 1
        for url in subscription.callbacks:
            # Defence in depth: the callback was checked at SUBSCRIBE; check again.
            if not igd.callback_allowed(url, str(subscription.peer)):
                continue
            try:
                async with session.request("NOTIFY", url, headers=headers, data=body) as answer:
                    await answer.read()
                return
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue


class _Networks:
    """``address in _Networks([...])``: membership in any of some networks."""

    def __init__(self, networks: list[ipaddress.IPv4Network]) -> None:
        self.networks = networks

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and any(
            address in network
            and address not in (network.network_address, network.broadcast_address)
            for network in self.networks
        )


def _link_speed_bps(link: Link | None) -> int:
    """The link's speed from sysfs in bit/s (0 when unknown, as for veth)."""
    if link is None:
        return 0
    try:
        mbps = int(Path(f"/sys/class/net/{link.name}/speed").read_text().strip())
    except (OSError, ValueError):
        return 0
    return max(0, min(mbps * 1_000_000, 0xFFFF_FFFF))


_NATPMP_RESULT = {
    Failure.NOT_AUTHORIZED: natpmp.ResultCode.NOT_AUTHORIZED,
    Failure.CONFLICT: natpmp.ResultCode.OUT_OF_RESOURCES,
    Failure.CONFLICT_OTHER: natpmp.ResultCode.OUT_OF_RESOURCES,
    Failure.QUOTA: natpmp.ResultCode.OUT_OF_RESOURCES,
    Failure.NO_PORTS: natpmp.ResultCode.OUT_OF_RESOURCES,
    Failure.NOT_FOUND: natpmp.ResultCode.OUT_OF_RESOURCES,
    Failure.NETWORK_FAILURE: natpmp.ResultCode.NETWORK_FAILURE,
}
_PCP_RESULT = {
    Failure.NOT_AUTHORIZED: pcp.ResultCode.NOT_AUTHORIZED,
    Failure.CONFLICT: pcp.ResultCode.NO_RESOURCES,
    Failure.CONFLICT_OTHER: pcp.ResultCode.NO_RESOURCES,
    Failure.QUOTA: pcp.ResultCode.USER_EX_QUOTA,
    Failure.NO_PORTS: pcp.ResultCode.NO_RESOURCES,
    Failure.NOT_FOUND: pcp.ResultCode.NO_RESOURCES,
    Failure.NETWORK_FAILURE: pcp.ResultCode.NETWORK_FAILURE,
}


async def start_nat_traversal(engine: Engine, config_path: Path) -> NatTraversal:
    """Build and start the service with the ``[nat_traversal]`` table of ``config_path`` (or, without
    one, ``nat-traversal.toml`` beside it).

    A bad settings file is reported and NAT traversal stays off (the safe answer).
    """
    settings_path = config_path.parent / SETTINGS_FILE
    try:
        from .configfile import parse_config_file

        try:
            parsed = parse_config_file(config_path)
        except SharewallError:
            parsed = None  # reported by the main import; NAT traversal falls back to its own file
        if parsed is not None and parsed.file.nat_traversal is not None:
            settings = parsed.file.nat_traversal
        else:
            settings = load_settings(settings_path)
    except SharewallError as err:
        log.error("NAT traversal disabled: %s", err.message)
        settings = NatTraversalSettings(enabled=False)
    service = NatTraversal(engine, settings)
    await service.start()
    return service
