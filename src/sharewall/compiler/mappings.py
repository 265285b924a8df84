"""Port mappings -> map/set elements. The only part of the ruleset whose size grows with mappings.

Pure: no I/O. Each connection has five containers (named from its slot, see ``slot_of``):

- ``<slot>_dnat_addr`` / ``<slot>_dnat_port``: proto . external port -> private address / internal port
  (two single-data maps, because nft 1.0.6 JSON cannot create a map with concatenated data; stack.md §1b);
- ``<slot>_redir_port``: proto . external port -> internal port on the gateway itself (redirect);
- ``<slot>_gw_tcp`` / ``<slot>_gw_udp``: external ports redirected to the gateway, matched against the
  conntrack *original* destination port in the input chain, so that only the mapped external port opens the
  hole (not the internal port) and identity redirects (80 -> 80), which set no DNAT status bit, work too.

Lookups are hash lookups, so the data-plane cost does not grow with the number of mappings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sharewall.compiler.ruleset import Key, SetDecl, Value
from sharewall.model.mapping import PortMapping, Protocol, TargetKind, classify_target


def slot_of(connection_id: str) -> str:
    """A short nft-safe name for a connection: ``c`` + the first 8 hex digits of its GUID."""
    hexdigits = "".join(ch for ch in connection_id.lower() if ch in "0123456789abcdef")
    return "c" + hexdigits[:8]


@dataclass(frozen=True, slots=True)
class MappingSets:
    dnat_addr: str
    dnat_port: str
    redir_port: str
    gw_tcp: str
    gw_udp: str

    @classmethod
    def for_slot(cls, slot: str) -> MappingSets:
        return cls(
            dnat_addr=f"{slot}_dnat_addr",
            dnat_port=f"{slot}_dnat_port",
            redir_port=f"{slot}_redir_port",
            gw_tcp=f"{slot}_gw_tcp",
            gw_udp=f"{slot}_gw_udp",
        )

    def declarations(self, connection_name: str) -> list[SetDecl]:
        why = f"sharewall: port mappings of {connection_name}"
        pk = ("inet_proto", "inet_service")
        # The maps a mapping's first lookup goes through count per element: NAT sees only the first
        # packet of each connection, so an element's packet count is the connections it opened.
        return [
            SetDecl(self.dnat_addr, pk, "ipv4_addr", why, counter=True),
            SetDecl(self.dnat_port, pk, "inet_service", why),
            SetDecl(self.redir_port, pk, "inet_service", why, counter=True),
            SetDecl(self.gw_tcp, ("inet_service",), None, why),
            SetDecl(self.gw_udp, ("inet_service",), None, why),
        ]

    def names(self) -> tuple[str, ...]:
        return (self.dnat_addr, self.dnat_port, self.redir_port, self.gw_tcp, self.gw_udp)


Elements = dict[str, dict[Key, Value]]


def resolve_target(
    mapping: PortMapping, resolved: dict[str, ipaddress.IPv4Address]
) -> ipaddress.IPv4Address | str | None:
    """``"gateway"``, the target's IPv4 address, or None when a host name is not resolved (inactive)."""
    kind = classify_target(mapping.target)
    if kind is TargetKind.GATEWAY:
        return "gateway"
    if kind is TargetKind.ADDRESS:
        return ipaddress.IPv4Address(mapping.target)
    # Host names and MACs resolve through facts: DHCP leases first, then the system resolver.
    return resolved.get(target_key(mapping.target))


def target_key(target: str) -> str:
    """How a host-name or MAC target is looked up in ``Facts.resolved``."""
    return target.rstrip(".").lower()


def mapping_elements(
    sets: MappingSets, mapping: PortMapping, resolved: dict[str, ipaddress.IPv4Address]
) -> Elements:
    """The elements one mapping contributes (empty when disabled or its host is unknown)."""
    if not mapping.enabled:
        return {}
    target = resolve_target(mapping, resolved)
    if target is None:
        return {}
    key: Key = (mapping.protocol.value, mapping.external_port)
    if target == "gateway":
        gw_set = sets.gw_tcp if mapping.protocol is Protocol.TCP else sets.gw_udp
        return {
            sets.redir_port: {key: mapping.internal_port},
            gw_set: {(mapping.external_port,): None},
        }
    return {
        sets.dnat_addr: {key: str(target)},
        sets.dnat_port: {key: mapping.internal_port},
    }


def merge_into(target: Elements, extra: Elements) -> None:
    for name, elems in extra.items():
        target.setdefault(name, {}).update(elems)
