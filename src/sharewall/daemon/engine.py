"""The engine: the one place that changes state. Validate -> persist -> apply -> answer.

Every change runs under one lock, in this order:
1. the pure model validates and changes the in-memory configuration (``Desired``);
2. the store persists it durably (one SQLite transaction, fsync'd);
3. the kernel gets it as ONE nft transaction: an element delta for mapping changes, otherwise a full
   compile + plan (which is itself an element delta when only contents changed);
4. only then does the caller answer. If the kernel refuses, memory and store are rolled back and the
   previous ruleset is still in place (nft transactions are atomic).
A crash between 2 and 3 is harmless: the change was not acknowledged, and a restart converges to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec

from sharewall.backends.arp import announce
from sharewall.backends.store import Store
from sharewall.compiler import compile_desired, plan
from sharewall.compiler.incremental import delta_for_mapping_changes
from sharewall.compiler.mappings import slot_of, target_key
from sharewall.compiler.plan import ElementDelta, ReplaceTable
from sharewall.compiler.ruleset import FAMILY, TABLE, Json, Ruleset
from sharewall.daemon.configfile import ParsedConfig
from sharewall.errors import KernelError, SharewallError
from sharewall.facts import Facts, Link
from sharewall.model.changes import Desired, MappingChange, SharingChange
from sharewall.model.config import Config, ConnectionConfig
from sharewall.model.dhcp import Reservation, check_reservations
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings
from sharewall.model.mapping import PortMapping, TargetKind, classify_target

log = logging.getLogger("sharewall.engine")

T = TypeVar("T")

RESOLVE_INTERVAL_S = 10.0


class NftLike(Protocol):
    async def apply(self, commands: list[Json]) -> None: ...
    async def delete_table(self, family: str, name: str) -> None: ...


class NetlinkLike(Protocol):
    async def snapshot(self) -> dict[str, Link]: ...
    async def add_address(self, ifname: str, cidr: str) -> None: ...
    async def remove_address(self, ifname: str, cidr: str) -> None: ...
    async def set_up(self, ifname: str) -> None: ...


SysctlRead = Callable[[str], str]
SysctlWrite = Callable[[str, "str | int"], None]


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        nft: NftLike,
        netlink: NetlinkLike,
        read_sysctl: SysctlRead,
        write_sysctl: SysctlWrite,
        resolver: Callable[[str], Awaitable[ipaddress.IPv4Address | None]] | None = None,
    ) -> None:
        self.store = store
        self.nft = nft
        self.netlink = netlink
        self.read_sysctl = read_sysctl
        self.write_sysctl = write_sysctl
        self.resolver = resolver or resolve_ipv4
        self.desired = Desired(store.load())
        self.facts = Facts()
        self.applied: Ruleset | None = None
        self.lock = asyncio.Lock()
        self.config_problem: str | None = None
        self.stopped = False
        self._dns: dict[str, ipaddress.IPv4Address] = {}
        self._leased: dict[str, ipaddress.IPv4Address] = {}
        # Called (under the lock) after every full reconcile: services that follow sharing state
        # (dnsmasq, NAT traversal servers) re-check themselves here.
        self.after_reconcile: list[Callable[[], Awaitable[None]]] = []
        # Other components' current problems, shown by status.
        self.problem_sources: list[Callable[[], list[str]]] = []
        self._announced: set[tuple[str, int, str, str]] = set()
        # Ends the conntrack flows of mappings that went away (connection id, [(proto, port)]).
        self.flush_flows: Callable[[str, list[tuple[str, int]]], Awaitable[int]] | None = None

    @property
    def config(self) -> Config:
        return self.desired.config

    def is_stopped(self) -> bool:
        return self.stopped

    # --- start-up and reconciliation ----------------------------------------------------------

    async def start(self) -> None:
        """Observe, register links, and converge the kernel to the stored configuration."""
        async with self.lock:
            await self._refresh_facts()
            await self._resolve_all()
            await self._reconcile()

    async def on_netlink_change(self) -> None:
        async with self.lock:
            if self.stopped:
                return
            await self._refresh_facts()
            await self._reconcile()

    async def refresh_names(self) -> None:
        """Re-resolve host-name targets; reconcile when an answer changed (element delta).

        The lookups run outside the lock, concurrently: a slow or broken resolver must not hold up
        changes through the API.
        """
        if self.stopped:
            return
        dns = await self._lookup(self._hostname_targets() - set(self._leased))
        async with self.lock:
            if self.is_stopped():  # (teardown may have run while we looked names up)
                return
            self._dns = dns
            if self._publish_resolved():
                await self._reconcile()

    async def _lookup(self, names: set[str]) -> dict[str, ipaddress.IPv4Address]:
        ordered = sorted(names)
        answers = await asyncio.gather(*(self.resolver(name) for name in ordered))
        return {name: addr for name, addr in zip(ordered, answers, strict=True) if addr is not None}

    async def _refresh_facts(self) -> None:
        links = await self.netlink.snapshot()
        conns = self.config.connections
        before = {cid: (c.name, c.mac) for cid, c in conns.items()}
        for link in sorted(links.values(), key=lambda lk: lk.index):
            if not link.is_loopback:
                self.desired.register_link(link, new_connection_id())
        changed = [c for cid, c in conns.items() if before.get(cid) != (c.name, c.mac)]
        if changed:
            self.store.save(connections=changed)
        self.facts = Facts(links=links, resolved=self.facts.resolved)

    def _hostname_targets(self, mappings: list[PortMapping] | None = None) -> set[str]:
        pool = (
            mappings
            if mappings is not None
            else [m for c in self.config.connections.values() for m in c.mappings.values()]
        )
        return {
            target_key(m.target) for m in pool if classify_target(m.target) is TargetKind.HOSTNAME
        }

    def _publish_resolved(self) -> bool:
        """facts.resolved = DNS answers overlaid with DHCP leases (a lease is the fresher truth)."""
        resolved = {**self._dns, **self._leased}
        changed = resolved != self.facts.resolved
        self.facts = Facts(links=self.facts.links, resolved=resolved)
        return changed

    async def _resolve_all(self) -> bool:
        """Resolve host-name targets that no DHCP lease answers for (static hosts, /etc/hosts)."""
        self._dns = await self._lookup(self._hostname_targets() - set(self._leased))
        return self._publish_resolved()

    def preload_leases(self, leased: dict[str, ipaddress.IPv4Address]) -> None:
        """Leases known before start-up (from the lease file), so the first reconcile uses them."""
        self._leased = dict(leased)
        self._publish_resolved()

    async def set_leases(self, leased: dict[str, ipaddress.IPv4Address]) -> None:
        """DHCP leases changed: *leased* maps host names, FQDNs and MACs to addresses. Mappings to
        those targets follow at once, as one element delta (no DNS polling)."""
        async with self.lock:
            self._leased = dict(leased)
            if self._publish_resolved() and not self.stopped:
                await self._reconcile()

    async def _ensure_sharing_side_effects(self) -> None:
        sharing = self.config.sharing
        if not sharing.active:
            return
        for conn_id, cidr in sharing.assigned_addresses.items():
            conn = self.config.connections.get(conn_id)
            if conn is None or conn.name not in self.facts.links:
                continue
            link = self.facts.links[conn.name]
            iface = ipaddress.IPv4Interface(cidr)
            if iface not in link.ipv4:
                await self.netlink.add_address(conn.name, cidr)
                if not link.up:
                    await self.netlink.set_up(conn.name)
                self.facts = Facts(
                    links=await self.netlink.snapshot(), resolved=self.facts.resolved
                )
                link = self.facts.links.get(conn.name, link)
            # Announce the address once per link incarnation that is up: a re-created interface has a
            # new MAC that clients would otherwise learn only after their ARP entry fails.
            announced = (conn.name, link.index, link.mac, cidr)
            if (
                link.up
                and link.carrier
                and announced not in self._announced
                and announce(conn.name, link.mac, iface.ip)
            ):
                self._announced.add(announced)
        if self.read_sysctl("net/ipv4/ip_forward").strip() != "1":
            self.write_sysctl("net/ipv4/ip_forward", 1)

    async def _reconcile(self) -> None:
        await self._ensure_sharing_side_effects()
        desired = compile_desired(self.config, self.facts)
        step = plan(self.applied, desired)
        if isinstance(step, ReplaceTable):
            await self.nft.apply(step.commands())
        elif not step.empty:
            try:
                await self.nft.apply(step.commands(desired.sets))
            except KernelError as err:
                await self._resync(desired, err)
        self.applied = desired
        for listener in self.after_reconcile:
            try:
                await listener()
            except SharewallError as err:
                log.error("a service could not follow the new state: %s", err.message)

    async def _resync(self, desired: Ruleset, err: KernelError) -> None:
        """An element update was refused: the kernel is not what we applied (someone edited our table).
        Replace the whole table (one transaction) so the kernel matches the configuration again."""
        log.warning(
            "nft refused an element update (%s); replacing table inet sharewall", err.message
        )
        self.applied = None
        await self.nft.apply(desired.replace_commands())
        self.applied = desired

    def current_problems(self) -> list[str]:
        problems = [self.config_problem] if self.config_problem else []
        for source in self.problem_sources:
            problems.extend(source())
        sharing = self.config.sharing
        if sharing.active:
            for conn_id in [sharing.public, *sharing.private]:
                conn = self.config.connections.get(conn_id or "")
                if conn is not None and conn.name not in self.facts.links:
                    problems.append(f"shared connection {conn.name} is not present")
        return problems

    async def _apply_mapping_changes(self, changes: list[MappingChange]) -> None:
        if self.applied is None:
            await self._reconcile()
            return
        delta = delta_for_mapping_changes(self.config, self.facts, changes)
        if delta.empty:
            return
        try:
            await self.nft.apply(delta.commands(self.applied.sets))
        except KernelError as err:
            await self._resync(compile_desired(self.config, self.facts), err)
        else:
            delta.apply_to(self.applied)
        await self._end_flows(changes, delta)

    async def _end_flows(self, changes: list[MappingChange], delta: ElementDelta) -> None:
        """Flows through mappings that were removed, disabled or retargeted end now (best effort)."""
        if self.flush_flows is None:
            return
        for conn_id in {c.connection_id for c in changes}:
            slot = slot_of(conn_id)
            keys = [
                (str(key[0]), int(key[1]))
                for name in (f"{slot}_dnat_addr", f"{slot}_redir_port")
                for key in delta.deletes.get(name, {})
            ]
            if keys:
                try:
                    await self.flush_flows(conn_id, keys)
                except SharewallError as err:
                    log.warning("could not end the flows of removed mappings: %s", err.message)

    # --- operations (each: validate, persist, apply; rollback on failure) --------------------

    async def share(self, public: str, private: list[str], private_address: str | None) -> None:
        async with self.lock:
            snapshot = _snapshot(self.config)
            ip_forward = int(self.read_sysctl("net/ipv4/ip_forward").strip() or 0)
            change = self.desired.share(
                public,
                private,
                self.facts,
                private_address=private_address,
                ip_forward_now=ip_forward,
            )
            public_conn = self.desired.connection(public)
            self.store.save(sharing=change.new, connections=[public_conn])
            try:
                await self._undo_addresses(change)
                await self._reconcile()
            except SharewallError:
                await self._restore(snapshot)
                raise

    async def unshare(self) -> None:
        async with self.lock:
            snapshot = _snapshot(self.config)
            change = self.desired.unshare()
            self.store.save(sharing=change.new)
            try:
                await self._undo_addresses(change)
                if change.old.active and change.old.saved_ip_forward is not None:
                    self.write_sysctl("net/ipv4/ip_forward", change.old.saved_ip_forward)
                await self._refresh_facts()
                await self._reconcile()
            except SharewallError:
                await self._restore(snapshot)
                raise

    async def _undo_addresses(self, change: SharingChange) -> None:
        for ifname, cidr in change.addresses_to_remove.items():
            if ifname in self.facts.links:
                await self.netlink.remove_address(ifname, cidr)

    async def _restore(self, snapshot: bytes) -> None:
        """Put back the configuration as it was before a failed change (memory and store)."""
        old = msgspec.json.decode(snapshot, type=Config)
        self.desired = Desired(old)
        self.store.replace_all(old)
        with contextlib.suppress(SharewallError):
            await self._reconcile()

    async def set_firewall(self, ref: str, enabled: bool) -> bool:
        async with self.lock:
            conn = self.desired.connection(ref)
            before = conn.firewall
            self.desired.set_firewall(ref, enabled)
            self.store.save(connections=[conn])
            try:
                await self._reconcile()
            except SharewallError:
                conn.firewall = before
                self.store.save(connections=[conn])
                raise
            return conn.firewall

    async def change_icmp(self, ref: str, allow: list[str], deny: list[str]) -> IcmpSettings:
        async with self.lock:
            conn = self.desired.connection(ref)
            before = conn.icmp
            settings = self.desired.change_icmp(ref, allow, deny)
            self.store.save(connections=[conn])
            try:
                await self._reconcile()
            except SharewallError:
                conn.icmp = before
                self.store.save(connections=[conn])
                raise
            return settings

    async def set_security_log(
        self, ref: str, *, dropped: bool | None = None, connections: bool | None = None
    ) -> SecurityLogSettings:
        """Switch ICF security logging of one connection (drops and/or connections)."""
        async with self.lock:
            conn = self.desired.connection(ref)
            before = conn.log
            changes: dict[str, bool] = {}
            if dropped is not None:
                changes["log_dropped"] = dropped
            if connections is not None:
                changes["log_connections"] = connections
            conn.log = msgspec.structs.replace(conn.log, **changes)
            self.store.save(connections=[conn])
            try:
                await self._reconcile()
            except SharewallError:
                conn.log = before
                self.store.save(connections=[conn])
                raise
            return conn.log

    async def add_mappings(self, ref: str, mappings: list[PortMapping]) -> list[MappingChange]:
        async with self.lock:
            if len(mappings) == 1:
                changes = [self.desired.add_mapping(ref, mappings[0])]
            else:
                changes = self.desired.import_mappings(ref, mappings)
            await self._resolve_new_targets(mappings)
            return await self._commit_mapping_changes(changes)

    async def set_mapping_enabled(self, ref: str, name: str, enabled: bool) -> MappingChange:
        async with self.lock:
            change = self.desired.set_mapping_enabled(ref, name, enabled)
            if change.new is not None:
                await self._resolve_new_targets([change.new])
            return (await self._commit_mapping_changes([change]))[0]

    async def remove_mapping(self, ref: str, name: str) -> MappingChange:
        async with self.lock:
            change = self.desired.remove_mapping(ref, name)
            return (await self._commit_mapping_changes([change]))[0]

    async def _resolve_new_targets(self, mappings: list[PortMapping]) -> None:
        enabled = [m for m in mappings if m.enabled]
        missing = self._hostname_targets(enabled) - set(self.facts.resolved)
        for name in sorted(missing):
            addr = await self.resolver(name)
            if addr is not None:
                self._dns[name] = addr
        if missing:
            self._publish_resolved()

    async def _commit_mapping_changes(self, changes: list[MappingChange]) -> list[MappingChange]:
        puts = [(c.connection_id, c.new) for c in changes if c.new is not None and _stored(c.new)]
        dels = [
            (c.connection_id, c.old.name)
            for c in changes
            if c.old is not None and (c.new is None or not _stored(c.new))
        ]
        self.store.save(put_mappings=puts, delete_mappings=dels)
        try:
            await self._apply_mapping_changes(changes)
        except SharewallError:
            self._revert_mapping_changes(changes)
            # The transaction failed whole, so the kernel still has the previous state; make sure our
            # bookkeeping agrees with it.
            with contextlib.suppress(SharewallError):
                await self._reconcile()
            raise
        return changes

    def _revert_mapping_changes(self, changes: list[MappingChange]) -> None:
        for change in reversed(changes):
            conn = self.config.connections[change.connection_id]
            if change.new is not None:
                conn.mappings.pop(change.new.name, None)
            if change.old is not None and _stored(change.old):
                conn.mappings[change.old.name] = change.old
        self.desired = Desired(self.config)  # rebuild indexes
        puts = [(c.connection_id, c.old) for c in changes if c.old is not None and _stored(c.old)]
        dels = [
            (c.connection_id, c.new.name) for c in changes if c.new is not None and c.old is None
        ]
        self.store.save(put_mappings=puts, delete_mappings=dels)

    async def import_config_file(self, parsed: ParsedConfig) -> bool:
        """Apply the TOML file's declarations if it changed since the last import (all or nothing)."""
        if self.store.get_meta("config_digest") == parsed.digest:
            return False
        async with self.lock:
            snapshot = _snapshot(self.config)
            changes: list[MappingChange] = []
            try:
                self.config.settings = parsed.file.settings
                if parsed.file.dhcp is not None:
                    self.config.dhcp = parsed.file.dhcp
                for name, declared in parsed.file.connections.items():
                    conn = self.config.connection_by_name(name)
                    if conn is None:
                        conn = self.desired.register_link(
                            Link(index=0, name=name), new_connection_id()
                        )
                    if declared.firewall is not None:
                        conn.firewall = declared.firewall
                    if declared.icmp is not None:
                        conn.icmp = declared.icmp
                    if declared.log is not None:
                        conn.log = declared.log
                    for mapping in parsed.mappings.get(name, []):
                        existing = conn.mapping(mapping.name)
                        if existing is not None and existing.builtin:
                            changes.append(
                                self.desired.set_mapping_enabled(
                                    conn.id, mapping.name, mapping.enabled
                                )
                            )
                            continue
                        if existing is not None:
                            changes.append(self.desired.remove_mapping(conn.id, mapping.name))
                        changes.append(self.desired.add_mapping(conn.id, mapping))
                if parsed.file.sharing is not None:
                    declared_sharing = parsed.file.sharing
                    ip_forward = int(self.read_sysctl("net/ipv4/ip_forward").strip() or 0)
                    self.desired.share(
                        declared_sharing.public,
                        declared_sharing.private,
                        self.facts,
                        private_address=declared_sharing.private_address,
                        ip_forward_now=ip_forward,
                    )
                self.store.save(
                    connections=list(self.config.connections.values()),
                    put_mappings=[
                        (c.connection_id, c.new)
                        for c in changes
                        if c.new is not None and _stored(c.new)
                    ],
                    delete_mappings=[
                        (c.connection_id, c.old.name)
                        for c in changes
                        if c.old is not None and (c.new is None or not _stored(c.new))
                    ],
                    sharing=self.config.sharing,
                    settings=self.config.settings,
                    dhcp=self.config.dhcp,
                    meta={"config_digest": parsed.digest},
                )
                await self._resolve_all()
                await self._reconcile()
            except SharewallError:
                await self._restore(snapshot)
                raise
            return True

    async def set_reservations(self, reservations: list[Reservation]) -> None:
        """Replace the DHCP reservations (already validated against the private networks)."""
        async with self.lock:
            check_reservations(reservations)
            self.store.save(reservations=reservations)
            self.config.reservations = list(reservations)
            for listener in self.after_reconcile:
                await listener()

    async def expire(self, now: float) -> list[MappingChange]:
        """Remove dynamic mappings whose lease ended at or before *now* (one transaction)."""
        async with self.lock:
            due = [
                (conn.id, m.name)
                for conn in self.config.connections.values()
                for m in conn.mappings.values()
                if m.expires_at is not None and m.expires_at <= now
            ]
            if not due or self.stopped:
                return []
            changes = [self.desired.remove_mapping(cid, name) for cid, name in due]
            return await self._commit_mapping_changes(changes)

    async def teardown(self) -> None:
        """Remove everything sharewall put into the kernel, and stop managing it."""
        async with self.lock:
            self.stopped = True
            sharing = self.config.sharing
            for conn_id, cidr in sharing.assigned_addresses.items():
                conn = self.config.connections.get(conn_id)
                if conn is not None and conn.name in self.facts.links:
                    with contextlib.suppress(SharewallError, OSError):
                        await self.netlink.remove_address(conn.name, cidr)
            if sharing.active and sharing.saved_ip_forward is not None:
                self.write_sysctl("net/ipv4/ip_forward", sharing.saved_ip_forward)
            await self.nft.delete_table(FAMILY, TABLE)
            self.applied = None

    # --- views ---------------------------------------------------------------------------------

    def mapping_active(
        self, conn: ConnectionConfig, mapping: PortMapping
    ) -> tuple[bool, str | None]:
        """Whether a mapping is in the kernel now, and the address it points at."""
        kind = classify_target(mapping.target)
        if kind is TargetKind.GATEWAY:
            address: str | None = None
        elif kind is TargetKind.ADDRESS:
            address = mapping.target
        else:
            found = self.facts.resolved.get(target_key(mapping.target))
            address = None if found is None else str(found)
            if found is None:
                return False, None
        return mapping.enabled and conn.name in self.facts.links, address

    # --- NAT traversal (issue 4): renew or overwrite a dynamic mapping in one transaction ------

    async def replace_dynamic_mapping(self, ref: str, new: PortMapping) -> MappingChange:
        """Put *new* in place of the dynamic mapping of the same name and key (a lease renewal or a
        UPnP overwrite): one store write, one element delta (nothing when only the lease changed).

        Raises:
            NotFoundError: no such mapping (it expired or was revoked meanwhile).
            ValidationError: not a dynamic mapping, or the protocol/external port would change.
        """
        from sharewall.errors import ErrorCode, NotFoundError, ValidationError

        async with self.lock:
            conn = self.desired.connection(ref)
            old = conn.mappings.get(new.name)
            if old is None:
                raise NotFoundError(
                    f"no mapping named {new.name!r} on {conn.name}", code=ErrorCode.UNKNOWN_MAPPING
                )
            if not old.is_dynamic or not new.is_dynamic or old.key != new.key:
                raise ValidationError(f"{new.name!r} cannot be replaced in place")
            conn.mappings[new.name] = new  # same key: the conflict index is unchanged
            return (await self._commit_mapping_changes([MappingChange(conn.id, old, new)]))[0]


def _stored(mapping: PortMapping) -> bool:
    """Built-in services are stored only when they differ from their defaults."""
    from sharewall.model.mapping import BUILTIN_BY_NAME

    return not mapping.builtin or BUILTIN_BY_NAME.get(mapping.name) != mapping


def _snapshot(config: Config) -> bytes:
    return msgspec.json.encode(config)


def new_connection_id() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


async def resolve_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """Resolve a host name with the system resolver (this namespace's /etc/hosts and resolv.conf)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM), 3.0
        )
    except (OSError, TimeoutError, UnicodeError):
        return None
    for info in infos:
        try:
            return ipaddress.IPv4Address(info[4][0])
        except ValueError:
            continue
    return None


__all__ = ["ElementDelta", "Engine", "KernelError"]
