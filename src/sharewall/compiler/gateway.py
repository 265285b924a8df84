"""Compile (configuration, facts) into the whole desired ``table inet sharewall``.

Pure and total on a valid model: no I/O, deterministic order. The chain layout:

- ``prerouting`` (nat, dstnat): hairpin first (private side -> public address), then per connection
  ``iifname X jump map_<slot>``, whose two rules look the packet up in the connection's mapping maps.
- ``postrouting`` (nat, srcnat): masquerade private subnets out of the public connection; masquerade
  hairpinned (DNAT'd private -> private) traffic so replies come back through the gateway.
- ``input`` / ``forward`` / ``output`` (filter): per connection, jump to its ICF chains. The private side's
  gateway services are accepted first; a firewalled connection accepts replies, drops invalid packets, accepts
  only the mapped holes and the allowed ICMP types, and drops the rest.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sharewall.compiler.mappings import MappingSets, mapping_elements, merge_into, slot_of
from sharewall.compiler.ruleset import (
    ACCEPT,
    DROP,
    ChainDecl,
    Json,
    Rule,
    Ruleset,
    anon_set,
    concat,
    ct,
    jump,
    map_lookup,
    match,
    meta,
    payload,
    prefix,
)
from sharewall.facts import Facts, Link
from sharewall.model.config import Config, ConnectionConfig
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings

# Gateway services the private side must reach (the DHCP/DNS and NAT-traversal issues fill them in).
PRIVATE_UDP_SERVICES = (53, 67, 1900, 5351)  # DNS, DHCP, SSDP, NAT-PMP/PCP
PRIVATE_TCP_SERVICES = (53, 2869)  # DNS, UPnP IGD HTTP (2869: the port Windows' UPnP host uses)

# ICMP types by option (seed-system.md §7.5).
INBOUND_ICMP4 = {
    "inbound_echo_request": "echo-request",
    "inbound_timestamp_request": "timestamp-request",
    "inbound_mask_request": "address-mask-request",
    "inbound_router_request": "router-solicitation",
    "redirect": "redirect",
}
INBOUND_ICMP6 = {
    "inbound_echo_request": "echo-request",
    "redirect": "nd-redirect",
}
OUTBOUND_ICMP4 = {
    "outbound_destination_unreachable": "destination-unreachable",
    "outbound_source_quench": "source-quench",
    "outbound_parameter_problem": "parameter-problem",
    "outbound_time_exceeded": "time-exceeded",
    "redirect": "redirect",
}
OUTBOUND_ICMP6 = {
    "outbound_destination_unreachable": "destination-unreachable",
    "outbound_packet_too_big": "packet-too-big",
    "outbound_parameter_problem": "parameter-problem",
    "outbound_time_exceeded": "time-exceeded",
    "redirect": "nd-redirect",
}
# IPv6 cannot work without neighbour discovery: always accepted, not an option.
ICMP6_ALWAYS = ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert")

# The ICF security log (issue 5): drops and new connections go to userspace through NFLOG groups,
# rate-limited in the kernel; what the limit suppresses is counted in <slot>_log_lost, never silent.
LOG_GROUP_DROPS = 7
LOG_GROUP_CONNECTIONS = 8
DROP_LOG_RATE = {"rate": 100, "per": "second", "burst": 200}
OPEN_LOG_RATE = {"rate": 200, "per": "second", "burst": 400}
# Connections logged as OPEN carry this conntrack mark bit, so their end can be logged as CLOSE.
CT_MARK_LOGGED = 0x00100000

PRIO_DSTNAT = -100
PRIO_SRCNAT = 100
PRIO_FILTER = 0


@dataclass(frozen=True, slots=True)
class ConnectionView:
    config: ConnectionConfig
    link: Link | None
    slot: str
    sets: MappingSets
    public: bool
    private: bool


def connection_views(config: Config, facts: Facts) -> list[ConnectionView]:
    """Configured connections that are present now, in a stable order (by slot)."""
    views = []
    for conn in config.connections.values():
        link = facts.links.get(conn.name)
        if link is None or link.is_loopback:
            continue
        slot = slot_of(conn.id)
        views.append(
            ConnectionView(
                config=conn,
                link=link,
                slot=slot,
                sets=MappingSets.for_slot(slot),
                public=config.sharing.public == conn.id,
                private=conn.id in config.sharing.private,
            )
        )
    views.sort(key=lambda v: v.slot)
    return views


def private_subnets(config: Config, views: list[ConnectionView]) -> list[str]:
    """IPv4 networks of the private connections (observed, plus addresses sharewall is assigning)."""
    nets: set[ipaddress.IPv4Network] = set()
    for view in views:
        if not view.private:
            continue
        for iface in view.link.ipv4 if view.link else ():
            nets.add(iface.network)
        assigned = config.sharing.assigned_addresses.get(view.config.id)
        if assigned:
            nets.add(ipaddress.IPv4Interface(assigned).network)
    return [str(n) for n in sorted(nets)]


def compile_structure(config: Config, facts: Facts) -> Ruleset:
    """Everything except mapping elements."""
    views = connection_views(config, facts)
    rs = Ruleset()
    rs.chains = [
        ChainDecl("prerouting", "prerouting", "nat", PRIO_DSTNAT),
        ChainDecl("postrouting", "postrouting", "nat", PRIO_SRCNAT),
        ChainDecl("input", "input", "filter", PRIO_FILTER),
        ChainDecl("forward", "forward", "filter", PRIO_FILTER),
        ChainDecl("output", "output", "filter", PRIO_FILTER),
    ]
    sharing = config.sharing.active
    public = next((v for v in views if v.public), None) if sharing else None
    privates = [v for v in views if v.private] if sharing else []
    subnets = private_subnets(config, views) if sharing else []

    for view in views:
        rs.sets.extend(view.sets.declarations(view.config.name))
        for name in view.sets.names():
            rs.elements.setdefault(name, {})

    # --- NAT ---------------------------------------------------------------------------------
    if public is not None and privates and public.link and public.link.ipv4:
        public_addrs = sorted(str(i.ip) for i in public.link.ipv4)
        rs.rules.append(
            Rule(
                "prerouting",
                (
                    match(meta("iifname"), anon_set([p.config.name for p in privates])),
                    match(payload("ip", "daddr"), anon_set(public_addrs)),
                    jump(f"map_{public.slot}"),
                ),
                "sharewall: hairpin - private hosts reach mappings through the public address",
            )
        )
    for view in views:
        rs.rules.append(
            Rule(
                "prerouting",
                (match(meta("iifname"), view.config.name), jump(f"map_{view.slot}")),
                f"sharewall: port mappings of {view.config.name}",
            )
        )
    for view in views:
        rs.chains.append(ChainDecl(f"map_{view.slot}"))
        key = concat(meta("l4proto"), payload("th", "dport"))
        rs.rules.append(
            Rule(
                f"map_{view.slot}",
                (
                    match(meta("nfproto"), "ipv4"),
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": map_lookup(key, view.sets.dnat_addr),
                            "port": map_lookup(key, view.sets.dnat_port),
                        }
                    },
                ),
                "sharewall: mappings to private hosts",
            )
        )
        rs.rules.append(
            Rule(
                f"map_{view.slot}",
                (
                    match(meta("nfproto"), "ipv4"),
                    match(meta("l4proto"), {"set": ["tcp", "udp"]}),
                    {"redirect": {"port": map_lookup(key, view.sets.redir_port)}},
                ),
                "sharewall: mappings to the gateway itself",
            )
        )
    if public is not None and subnets:
        rs.rules.append(
            Rule(
                "postrouting",
                (
                    match(meta("oifname"), public.config.name),
                    match(payload("ip", "saddr"), anon_set([prefix(s) for s in subnets])),
                    {"masquerade": None},
                ),
                "sharewall: ICS - private subnets share the public address",
            )
        )
        rs.rules.append(
            Rule(
                "postrouting",
                (
                    match(ct("status"), "dnat", op="in"),
                    match(meta("oifname"), anon_set([p.config.name for p in privates])),
                    match(payload("ip", "saddr"), anon_set([prefix(s) for s in subnets])),
                    {"masquerade": None},
                ),
                "sharewall: hairpin - replies return through the gateway",
            )
        )

    # --- filter ------------------------------------------------------------------------------
    opens: list[Rule] = []
    for view in views:
        name = view.config.name
        firewalled = view.config.firewall
        private_side = view in privates
        log = view.config.log if firewalled else SecurityLogSettings()
        if log.log_dropped or log.log_connections:
            rs.counters.append(f"{view.slot}_log_lost")
        hole = f"hole_{view.slot}" if log.log_connections else None
        if hole is not None:
            rs.chains.append(ChainDecl(hole))
            rs.rules.extend(_logging_hole(hole, view.slot))
            opens.extend(_open_logging(rs, view))
        if private_side or firewalled:
            chain = f"in_{view.slot}"
            rs.chains.append(ChainDecl(chain))
            rs.rules.append(
                Rule(
                    "input",
                    (match(meta("iifname"), name), jump(chain)),
                    f"sharewall: inbound to the gateway on {name}",
                )
            )
            if private_side:
                rs.rules.extend(_private_services(chain))
            if firewalled:
                rs.rules.extend(_icf_input(chain, view, view.config.icmp, hole))
                rs.rules.extend(_final_drop(chain, view.slot, "in", log.log_dropped))
        if firewalled:
            fchain = f"fwd_{view.slot}"
            rs.chains.append(ChainDecl(fchain))
            rs.rules.append(
                Rule(
                    "forward",
                    (match(meta("iifname"), name), jump(fchain)),
                    f"sharewall: inbound through the gateway on {name}",
                )
            )
            rs.rules.extend(_icf_forward(fchain, hole))
            rs.rules.extend(_final_drop(fchain, view.slot, "fwd", log.log_dropped))
            out_rules = _icf_output(f"out_{view.slot}", view.config.icmp)
            if out_rules:
                rs.chains.append(ChainDecl(f"out_{view.slot}"))
                rs.rules.append(
                    Rule(
                        "output",
                        (match(meta("oifname"), name), jump(f"out_{view.slot}")),
                        f"sharewall: ICMP the gateway may send on {name}",
                    )
                )
                rs.rules.extend(out_rules)
    rs.rules.extend(opens)
    return rs


def _private_services(chain: str) -> list[Rule]:
    why = "sharewall: private side reaches the gateway's DHCP, DNS and NAT-traversal services"
    return [
        Rule(
            chain,
            (match(payload("udp", "dport"), {"set": list(PRIVATE_UDP_SERVICES)}), ACCEPT),
            why,
        ),
        Rule(
            chain,
            (match(payload("tcp", "dport"), {"set": list(PRIVATE_TCP_SERVICES)}), ACCEPT),
            why,
        ),
    ]


def _stateful_head(chain: str) -> list[Rule]:
    return [
        Rule(
            chain,
            (match(ct("state"), {"set": ["established", "related"]}, op="in"), ACCEPT),
            "sharewall: ICF - replies pass",
        ),
        Rule(
            chain,
            (match(ct("state"), "invalid", op="in"), DROP),
            "sharewall: ICF - invalid packets",
        ),
    ]


def _icf_input(
    chain: str, view: ConnectionView, icmp: IcmpSettings, hole: str | None
) -> list[Rule]:
    # Neighbour discovery and the allowed ICMP types first: conntrack keeps no state for ND, router
    # solicitations or unsolicited redirects, so after the invalid-state drop they could never pass.
    rules = [
        Rule(
            chain,
            (match(payload("icmpv6", "type"), anon_set(list(ICMP6_ALWAYS))), ACCEPT),
            "sharewall: ICF - IPv6 neighbour discovery",
        )
    ]
    rules.extend(_icmp_accepts(chain, icmp))
    rules.extend(_stateful_head(chain))
    for proto, set_name in (("tcp", view.sets.gw_tcp), ("udp", view.sets.gw_udp)):
        rules.append(
            Rule(
                chain,
                (
                    match(meta("l4proto"), proto),
                    match(ct("proto-dst", "original"), f"@{set_name}"),
                    ACCEPT if hole is None else jump(hole),
                ),
                f"sharewall: ICF - {proto} port mappings to the gateway",
            )
        )
    return rules


def _icmp_accepts(chain: str, icmp: IcmpSettings) -> list[Rule]:
    v4 = sorted({t for opt, t in INBOUND_ICMP4.items() if getattr(icmp, opt)})
    v6 = sorted({t for opt, t in INBOUND_ICMP6.items() if getattr(icmp, opt)})
    rules = []
    if v4:
        rules.append(
            Rule(
                chain,
                (match(payload("icmp", "type"), anon_set(v4)), ACCEPT),
                "sharewall: ICF - allowed inbound ICMP",
            )
        )
    if v6:
        rules.append(
            Rule(
                chain,
                (match(payload("icmpv6", "type"), anon_set(v6)), ACCEPT),
                "sharewall: ICF - allowed inbound ICMPv6",
            )
        )
    return rules


def _icf_forward(chain: str, hole: str | None) -> list[Rule]:
    rules = _stateful_head(chain)
    rules.append(
        Rule(
            chain,
            (match(ct("status"), "dnat", op="in"), ACCEPT if hole is None else jump(hole)),
            "sharewall: ICF - port mappings to private hosts",
        )
    )
    return rules


def _final_drop(chain: str, slot: str, path: str, logged: bool) -> list[Rule]:
    why = "sharewall: ICF - unsolicited inbound is dropped"
    if not logged:
        return [Rule(chain, (DROP,), why)]
    return [
        Rule(
            chain,
            ({"limit": {**DROP_LOG_RATE, "inv": True}}, {"counter": f"{slot}_log_lost"}, DROP),
            why + " (over the log rate: counted, not logged)",
        ),
        Rule(
            chain,
            ({"log": {"prefix": f"sw {slot} {path} ", "group": LOG_GROUP_DROPS}}, DROP),
            why + " and logged",
        ),
    ]


def _set_logged_mark() -> Json:
    return {
        "mangle": {
            "key": {"ct": {"key": "mark"}},
            "value": {"|": [{"ct": {"key": "mark"}}, CT_MARK_LOGGED]},
        }
    }


def _logging_hole(chain: str, slot: str) -> list[Rule]:
    """The accept of a port-mapping hole, logging new inbound connections as OPEN-INBOUND."""
    new = match(ct("state"), "new", op="in")
    why = "sharewall: ICF log - inbound connection through a port mapping"
    return [
        Rule(
            chain,
            (
                new,
                {"limit": {**OPEN_LOG_RATE, "inv": True}},
                {"counter": f"{slot}_log_lost"},
                ACCEPT,
            ),
            why + " (over the log rate: counted, not logged)",
        ),
        Rule(
            chain,
            (
                new,
                {"log": {"prefix": f"sw {slot} inbound ", "group": LOG_GROUP_CONNECTIONS}},
                _set_logged_mark(),
                ACCEPT,
            ),
            why,
        ),
        Rule(chain, (ACCEPT,), "sharewall: ICF - port mapping hole"),
    ]


def _open_logging(rs: Ruleset, view: ConnectionView) -> list[Rule]:
    """Rules (for the base chains) that log new outbound connections on *view* as OPEN."""
    chain = f"open_{view.slot}"
    rs.chains.append(ChainDecl(chain))
    rs.rules.extend(
        [
            Rule(
                chain,
                (
                    {"limit": {**OPEN_LOG_RATE, "inv": True}},
                    {"counter": f"{view.slot}_log_lost"},
                    {"return": None},
                ),
                "sharewall: ICF log - over the log rate: counted, not logged",
            ),
            Rule(
                chain,
                (
                    {"log": {"prefix": f"sw {view.slot} open ", "group": LOG_GROUP_CONNECTIONS}},
                    _set_logged_mark(),
                ),
                "sharewall: ICF log - a connection opened from this side",
            ),
        ]
    )
    new = match(ct("state"), "new", op="in")
    why = f"sharewall: ICF log - connections opened out of {view.config.name}"
    return [
        Rule("forward", (match(meta("oifname"), view.config.name), new, jump(chain)), why),
        Rule("output", (match(meta("oifname"), view.config.name), new, jump(chain)), why),
    ]


def _icf_output(chain: str, icmp: IcmpSettings) -> list[Rule]:
    denied4 = sorted({t for opt, t in OUTBOUND_ICMP4.items() if not getattr(icmp, opt)})
    denied6 = sorted({t for opt, t in OUTBOUND_ICMP6.items() if not getattr(icmp, opt)})
    rules = []
    why = "sharewall: ICF - ICMP the gateway may not send"
    if "destination-unreachable" in denied4:
        # Fragmentation-needed stays allowed: blocking it breaks path-MTU discovery for forwarded
        # traffic (a documented deviation from XP ICF).
        denied4.remove("destination-unreachable")
        rules.append(
            Rule(
                chain,
                (
                    match(payload("icmp", "type"), "destination-unreachable"),
                    match(payload("icmp", "code"), "frag-needed", op="!="),
                    DROP,
                ),
                why,
            )
        )
    if denied4:
        rules.append(Rule(chain, (match(payload("icmp", "type"), anon_set(denied4)), DROP), why))
    if denied6:
        rules.append(Rule(chain, (match(payload("icmpv6", "type"), anon_set(denied6)), DROP), why))
    return rules


def compile_elements(
    config: Config, facts: Facts
) -> dict[str, dict[tuple[str | int, ...], str | int | None]]:
    elements: dict[str, dict[tuple[str | int, ...], str | int | None]] = {}
    for view in connection_views(config, facts):
        for name in view.sets.names():
            elements.setdefault(name, {})
        for mapping in view.config.effective_mappings():
            merge_into(elements, mapping_elements(view.sets, mapping, facts.resolved))
    return elements


def compile_desired(config: Config, facts: Facts) -> Ruleset:
    """The whole desired table: structure plus every mapping's elements."""
    rs = compile_structure(config, facts)
    rs.elements = compile_elements(config, facts)
    return rs
