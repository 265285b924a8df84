"""Golden cases for the ruleset compiler: (config, facts) builders with one sentence of intent each."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from sharewall.facts import Facts, Link
from sharewall.model.config import Config, ConnectionConfig
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings
from sharewall.model.mapping import make_mapping

WAN = "{0A000000-0000-4000-8000-000000000001}"
LAN = "{0B000000-0000-4000-8000-000000000002}"
LAN2 = "{0C000000-0000-4000-8000-000000000003}"


def _link(index: int, name: str, *v4: str, v6: tuple[str, ...] = ()) -> Link:
    return Link(
        index=index,
        name=name,
        kind="veth",
        mac=f"02:00:00:00:00:{index:02x}",
        up=True,
        carrier=True,
        ipv4=tuple(ipaddress.IPv4Interface(a) for a in v4),
        ipv6=tuple(ipaddress.IPv6Interface(a) for a in v6),
    )


def _facts(**resolved: str) -> Facts:
    return Facts(
        links={
            "wan0": _link(2, "wan0", "198.51.100.1/24", v6=("2001:db8:100::1/64",)),
            "lan0": _link(3, "lan0", "192.168.137.1/24"),
            "lan1": _link(4, "lan1"),
        },
        resolved={k.replace("_", "-"): ipaddress.IPv4Address(v) for k, v in resolved.items()},
    )


def _config(*, firewall: bool = False, share: bool = False, two_private: bool = False) -> Config:
    c = Config()
    c.connections[WAN] = ConnectionConfig(id=WAN, name="wan0", firewall=firewall)
    c.connections[LAN] = ConnectionConfig(id=LAN, name="lan0")
    c.connections[LAN2] = ConnectionConfig(id=LAN2, name="lan1")
    if share:
        c.sharing.public = WAN
        c.sharing.private = [LAN, LAN2] if two_private else [LAN]
        if two_private:
            c.sharing.assigned_addresses[LAN2] = "192.168.138.1/24"
        c.connections[WAN].firewall = True
    return c


def idle() -> tuple[Config, Facts]:
    return _config(), _facts()


def firewall_only() -> tuple[Config, Facts]:
    c = _config(firewall=True)
    c.connections[WAN].icmp = IcmpSettings(inbound_echo_request=True)
    return c, _facts()


def sharing_basic() -> tuple[Config, Facts]:
    return _config(share=True), _facts()


def sharing_two_private() -> tuple[Config, Facts]:
    return _config(share=True, two_private=True), _facts()


def mappings_all_targets() -> tuple[Config, Facts]:
    c = _config(share=True)
    wan = c.connections[WAN]
    for m in (
        make_mapping(
            name="web",
            protocol="tcp",
            external_port=8080,
            internal_port=80,
            target="192.168.137.12",
        ),
        make_mapping(name="ssh", protocol="tcp", external_port=2222, internal_port=22),
        make_mapping(name="dns", protocol="udp", external_port=53),
        make_mapping(name="game", protocol="udp", external_port=27015, target="gamebox"),
        make_mapping(name="nas", protocol="tcp", external_port=5000, target="nas.mshome.net"),
        make_mapping(
            name="off", protocol="tcp", external_port=9999, target="192.168.137.20", enabled=False
        ),
        make_mapping(
            name="Web Server (HTTP)", protocol="tcp", external_port=80, enabled=True, builtin=True
        ),
    ):
        wan.mappings[m.name] = m
    return c, _facts(gamebox="192.168.137.30")


def icmp_all_allowed() -> tuple[Config, Facts]:
    c = _config(share=True)
    c.connections[WAN].icmp = IcmpSettings(**dict.fromkeys(IcmpSettings.__struct_fields__, True))
    return c, _facts()


def security_log() -> tuple[Config, Facts]:
    c, f = mappings_all_targets()
    c.connections[WAN].log = SecurityLogSettings(log_dropped=True, log_connections=True)
    return c, f


def odd_interface_name() -> tuple[Config, Facts]:
    name = 'x";{$'
    c = Config()
    c.connections[WAN] = ConnectionConfig(id=WAN, name=name, firewall=True)
    return c, Facts(links={name: _link(7, name)})


CASES: dict[str, tuple[str, Callable[[], tuple[Config, Facts]]]] = {
    "idle": (
        "Known connections without sharing or ICF get only empty mapping maps and hooks.",
        idle,
    ),
    "firewall-only": (
        "ICF on an unshared connection: stateful input/forward drop, echo allowed.",
        firewall_only,
    ),
    "sharing-basic": (
        "Sharing wan0 with lan0: masquerade, hairpin, ICF on the public side, private services open.",
        sharing_basic,
    ),
    "sharing-two-private": (
        "Two private connections: both subnets masqueraded and both reach the hairpin.",
        sharing_two_private,
    ),
    "mappings-all-targets": (
        "Mappings to a host, the gateway, a resolved and an unresolved name; disabled ones absent.",
        mappings_all_targets,
    ),
    "icmp-all-allowed": (
        "All ten ICMP options on: inbound types accepted, no outbound ICMP drops.",
        icmp_all_allowed,
    ),
    "security-log": (
        "Both ICF log switches on: rate-limited NFLOG for drops and new connections, losses counted.",
        security_log,
    ),
    "odd-interface-name": (
        "An interface name full of nft syntax travels only as a JSON string.",
        odd_interface_name,
    ),
}
