"""Validated changes to a Config. Every operation checks everything first and mutates only on success,
so a rejected change leaves the configuration exactly as it was.

Pure: no I/O, no clock, no randomness (new ids are passed in).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from sharewall.errors import ConflictError, ErrorCode, NotFoundError, ValidationError
from sharewall.facts import Facts, Link
from sharewall.model.config import (
    Config,
    ConnectionConfig,
    Sharing,
    gateway_address_for,
    private_network,
)
from sharewall.model.firewall import IcmpSettings, change_icmp
from sharewall.model.mapping import BUILTIN_BY_NAME, PortMapping

MappingKey = tuple[str, int]


@dataclass(slots=True)
class MappingChange:
    """One mapping before and after a change (None: absent). The planner turns it into elements."""

    connection_id: str
    old: PortMapping | None
    new: PortMapping | None


@dataclass(slots=True)
class SharingChange:
    old: Sharing
    new: Sharing
    addresses_to_add: dict[str, str] = field(default_factory=dict)  # ifname -> cidr
    addresses_to_remove: dict[str, str] = field(default_factory=dict)  # ifname -> cidr


class Desired:
    """The configuration plus the indexes that make each change O(1)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Per connection: (protocol, external port) -> names of mappings using it (user and builtin).
        self._keys: dict[str, dict[MappingKey, set[str]]] = {}

    # --- connections -----------------------------------------------------------------------

    def connection(self, ref: str) -> ConnectionConfig:
        """Find a connection by id (case-insensitive, braces optional) or by name.

        Raises:
            NotFoundError: no such connection.
        """
        conns = self.config.connections
        if ref in conns:
            return conns[ref]
        wanted = ref.strip("{}").lower()
        for conn in conns.values():
            if conn.id.strip("{}").lower() == wanted:
                return conn
        found = self.config.connection_by_name(ref)
        if found is None:
            raise NotFoundError(f"unknown connection {ref!r}", code=ErrorCode.UNKNOWN_CONNECTION)
        return found

    def register_link(self, link: Link, new_id: str) -> ConnectionConfig:
        """Attach a link to its stable connection: same name first, then same MAC, else a new id."""
        by_name = self.config.connection_by_name(link.name)
        if by_name is not None:
            if link.mac and by_name.mac != link.mac:
                by_name.mac = link.mac
            return by_name
        if link.mac and link.mac != "00:00:00:00:00:00":
            for conn in self.config.connections.values():
                # A renamed link keeps its id, unless its old name is present as another link.
                if conn.mac == link.mac and conn.name != link.name:
                    conn.name = link.name
                    return conn
        conn = ConnectionConfig(id=new_id, name=link.name, mac=link.mac)
        self.config.connections[new_id] = conn
        return conn

    def rename(self, conn_id: str, new_name: str) -> None:
        """Follow a rename seen by netlink (ifindex unchanged)."""
        other = self.config.connection_by_name(new_name)
        if other is not None and other.id != conn_id:
            # The name was someone else's before: that stale record loses the name.
            other.name = f"{new_name}~{other.id[1:9]}"[:40]
        self.config.connections[conn_id].name = new_name

    # --- sharing ---------------------------------------------------------------------------

    def share(
        self,
        public_ref: str,
        private_refs: Iterable[str],
        facts: Facts,
        *,
        private_address: str | None = None,
        ip_forward_now: int = 0,
    ) -> SharingChange:
        """Share *public_ref* with *private_refs*; replaces any previous sharing (as Windows does).

        Private connections without an IPv4 address get the private address (first: the setting or
        *private_address*; next ones: the following networks of the same size, skipping any in use).
        """
        public = self.connection(public_ref)
        privates: list[ConnectionConfig] = []
        for ref in private_refs:
            conn = self.connection(ref)
            if conn.id == public.id:
                raise ConflictError(
                    f"{conn.name} cannot be both the public and a private connection"
                )
            if conn not in privates:
                privates.append(conn)
        if not privates:
            raise ValidationError("sharing needs at least one private connection")
        base = private_network(self.config.settings, private_address)
        old = self.config.sharing
        new = Sharing(
            public=public.id,
            private=[c.id for c in privates],
            saved_ip_forward=old.saved_ip_forward if old.active else ip_forward_now,
        )
        in_use: set[ipaddress.IPv4Network] = set()
        for link in facts.links.values():
            in_use.update(i.network for i in link.ipv4)
        change = SharingChange(old=old, new=new)
        # Keep what we assigned before to connections that stay private.
        for conn in privates:
            kept = old.assigned_addresses.get(conn.id)
            if kept:
                new.assigned_addresses[conn.id] = kept
                in_use.add(ipaddress.IPv4Interface(kept).network)
        candidate = base
        first = True
        for conn in privates:
            if conn.id in new.assigned_addresses:
                continue
            private_link = facts.links.get(conn.name)
            if private_link is not None and private_link.ipv4:
                continue  # it has an address: its subnet is the private network
            while candidate in in_use and not (first and private_address is not None):
                candidate = _next_network(candidate)
            given = private_address if (first and private_address is not None) else None
            if given is not None and candidate in in_use:
                raise ConflictError(
                    f"private network {candidate} is already in use on this machine"
                )
            iface = gateway_address_for(candidate, given)
            new.assigned_addresses[conn.id] = str(iface)
            change.addresses_to_add[conn.name] = str(iface)
            in_use.add(candidate)
            first = False
        for conn_id, cidr in old.assigned_addresses.items():
            if new.assigned_addresses.get(conn_id) != cidr and conn_id in self.config.connections:
                change.addresses_to_remove[self.config.connections[conn_id].name] = cidr
        # A publicly shared connection always gets ICF (INetSharingConfiguration::EnableSharing).
        public.firewall = True
        self.config.sharing = new
        return change

    def unshare(self) -> SharingChange:
        """Stop sharing; returns what sharing had done so the daemon can undo exactly that."""
        old = self.config.sharing
        change = SharingChange(old=old, new=Sharing())
        for conn_id, cidr in old.assigned_addresses.items():
            conn = self.config.connections.get(conn_id)
            if conn is not None:
                change.addresses_to_remove[conn.name] = cidr
        self.config.sharing = Sharing()
        return change

    # --- firewall --------------------------------------------------------------------------

    def set_firewall(self, ref: str, enabled: bool) -> ConnectionConfig:
        conn = self.connection(ref)
        if not enabled and self.config.sharing.public == conn.id:
            # Allowed (Windows allows it too), but it is a deliberate choice: nothing to check.
            pass
        conn.firewall = enabled
        return conn

    def change_icmp(self, ref: str, allow: list[str], deny: list[str]) -> IcmpSettings:
        conn = self.connection(ref)
        conn.icmp = change_icmp(conn.icmp, allow=allow, deny=deny)
        return conn.icmp

    # --- mappings --------------------------------------------------------------------------

    def _index(self, conn: ConnectionConfig) -> dict[MappingKey, set[str]]:
        index = self._keys.get(conn.id)
        if index is None:
            index = {}
            for m in conn.effective_mappings():
                index.setdefault((m.protocol.value, m.external_port), set()).add(m.name)
            self._keys[conn.id] = index
        return index

    def _clashes(
        self, conn: ConnectionConfig, candidate: PortMapping, *, ignore: str | None
    ) -> str | None:
        """The name of a mapping that cannot coexist with *candidate*, if any.

        Two user mappings never share a protocol and external port; a built-in service may share one
        with a user mapping as long as both are not enabled at once.
        """
        for name in self._index(conn).get((candidate.protocol.value, candidate.external_port), ()):
            if name == ignore:
                continue
            other = conn.mapping(name)
            if other is None:
                continue
            if (not other.builtin and not candidate.builtin) or (
                other.enabled and candidate.enabled
            ):
                return name
        return None

    def add_mapping(self, ref: str, mapping: PortMapping) -> MappingChange:
        conn = self.connection(ref)
        self._check_new(conn, mapping, set())
        self._insert(conn, mapping)
        return MappingChange(conn.id, None, mapping)

    def _check_new(
        self, conn: ConnectionConfig, mapping: PortMapping, batch_names: set[str]
    ) -> None:
        if mapping.builtin:
            raise ValidationError("built-in services cannot be added; enable them instead")
        if conn.mapping(mapping.name) is not None or mapping.name in batch_names:
            raise ConflictError(
                f"a mapping named {mapping.name!r} already exists on {conn.name}",
                code=ErrorCode.DUPLICATE_MAPPING,
            )
        clash = self._clashes(conn, mapping, ignore=None)
        if clash is not None:
            raise ConflictError(
                f"{mapping.protocol.value}/{mapping.external_port} on {conn.name} is already used by "
                f"mapping {clash!r}",
                code=ErrorCode.DUPLICATE_MAPPING,
            )

    def _insert(self, conn: ConnectionConfig, mapping: PortMapping) -> None:
        conn.mappings[mapping.name] = mapping
        self._index(conn).setdefault((mapping.protocol.value, mapping.external_port), set()).add(
            mapping.name
        )

    def import_mappings(self, ref: str, mappings: list[PortMapping]) -> list[MappingChange]:
        """Add many mappings, all or nothing."""
        conn = self.connection(ref)
        names: set[str] = set()
        keys: dict[MappingKey, str] = {}
        for m in mappings:
            self._check_new(conn, m, names)
            k = (m.protocol.value, m.external_port)
            if k in keys:
                raise ConflictError(
                    f"{k[0]}/{k[1]} appears twice in the import ({keys[k]!r} and {m.name!r})",
                    code=ErrorCode.DUPLICATE_MAPPING,
                )
            keys[k] = m.name
            names.add(m.name)
        for m in mappings:
            self._insert(conn, m)
        return [MappingChange(conn.id, None, m) for m in mappings]

    def _existing(self, conn: ConnectionConfig, name: str) -> PortMapping:
        mapping = conn.mapping(name)
        if mapping is None:
            raise NotFoundError(
                f"no mapping named {name!r} on {conn.name}", code=ErrorCode.UNKNOWN_MAPPING
            )
        return mapping

    def set_mapping_enabled(self, ref: str, name: str, enabled: bool) -> MappingChange:
        conn = self.connection(ref)
        old = self._existing(conn, name)
        new = msgspec.structs.replace(old, enabled=enabled)
        if enabled:
            clash = self._clashes(conn, new, ignore=name)
            if clash is not None:
                raise ConflictError(
                    f"cannot enable {name!r}: {new.protocol.value}/{new.external_port} is used by "
                    f"enabled mapping {clash!r}",
                    code=ErrorCode.DUPLICATE_MAPPING,
                )
        if new.builtin and new == BUILTIN_BY_NAME[name]:
            conn.mappings.pop(name, None)  # back to the default: nothing to store
        else:
            conn.mappings[name] = new
        return MappingChange(conn.id, old, new)

    def remove_mapping(self, ref: str, name: str) -> MappingChange:
        conn = self.connection(ref)
        old = self._existing(conn, name)
        if old.builtin:
            raise ConflictError(
                f"{name!r} is a built-in service: it can be disabled but not removed",
                code=ErrorCode.BUILTIN_MAPPING,
            )
        del conn.mappings[name]
        names = self._index(conn).get((old.protocol.value, old.external_port))
        if names is not None:
            names.discard(name)
            if not names:
                del self._index(conn)[(old.protocol.value, old.external_port)]
        return MappingChange(conn.id, old, None)

    def mapping_count(self) -> int:
        return sum(
            sum(1 for m in c.mappings.values() if not m.builtin)
            for c in self.config.connections.values()
        )


def _next_network(net: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    nxt = ipaddress.IPv4Network((int(net.network_address) + net.num_addresses, net.prefixlen))
    if not nxt.is_private:
        raise ConflictError("no free private network left for another private connection")
    return nxt
