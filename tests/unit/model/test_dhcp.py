"""DHCP model: MAC/host-name/reservation validation, settings, and parsing what dnsmasq reports."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharewall.errors import ConflictError, ValidationError
from sharewall.model.dhcp import (
    MAX_LEASE_EVENT_BYTES,
    DhcpSettings,
    Lease,
    LeaseEvent,
    LeaseEventKind,
    Reservation,
    check_reservations,
    dhcp_range_for,
    effective_upstreams,
    make_reservation,
    normalize_mac,
    parse_lease_event,
    parse_lease_file,
    parse_resolv_conf_nameservers,
    validate_dhcp_settings,
    validate_domain,
    validate_hostname,
)

GATEWAYS = [ipaddress.IPv4Interface("192.168.137.1/24"), ipaddress.IPv4Interface("10.0.0.1/8")]


@pytest.mark.parametrize(
    "text",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA:BB:CC:DD:EE:FF",
        "aa-bb-cc-dd-ee-ff",
        "aabb.ccdd.eeff",
        "AABBCCDDEEFF",
    ],
)
def test_mac_forms_normalise_to_lower_colon(text: str) -> None:
    assert normalize_mac(f" {text} ") == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "aab:b:cc:dd:ee:ff",
        "aa:bb-cc:dd:ee:ff",
        "gg:bb:cc:dd:ee:ff",
        "01:00:5e:00:00:01",  # multicast
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "00:00:00:00:00:00",
    ],
)
def test_bad_macs_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="MAC"):
        normalize_mac(text)


@given(st.binary(min_size=6, max_size=6))
def test_normalize_mac_is_idempotent_for_unicast(raw: bytes) -> None:
    text = ":".join(f"{b:02X}" for b in raw)
    try:
        once = normalize_mac(text)
    except ValidationError:
        assert raw[0] & 1 or raw == bytes(6)
        return
    assert normalize_mac(once) == once == text.lower()


@pytest.mark.parametrize("name", ["printer", "Printer", "pc-1", "a", "x" * 63, "1host"])
def test_good_hostnames(name: str) -> None:
    assert validate_hostname(name) == name.lower()


@pytest.mark.parametrize(
    "name", ["", "-pc", "pc-", "pc_1", "pc 1", "x" * 64, "123", "pc.mshome.net", "pc\nx"]
)
def test_bad_hostnames(name: str) -> None:
    with pytest.raises(ValidationError, match="host name"):
        validate_hostname(name)


def test_domain_is_normalised() -> None:
    assert validate_domain("MsHome.Net.") == "mshome.net"
    for bad in ["", "a..b", "exa mple", "a/b", "host.123", "-a.b"]:
        with pytest.raises(ValidationError, match="domain"):
            validate_domain(bad)


def test_reservation_is_normalised_and_checked_against_networks() -> None:
    res = make_reservation("AA-BB-CC-00-00-01", "192.168.137.50", "NAS", GATEWAYS)
    assert res == Reservation(mac="aa:bb:cc:00:00:01", ip="192.168.137.50", hostname="nas")
    assert make_reservation("aa:bb:cc:00:00:01", "10.9.9.9", "", GATEWAYS).hostname is None


@pytest.mark.parametrize(
    ("ip", "match"),
    [
        ("172.16.0.5", "not in a private network"),
        ("192.168.137.1", "gateway's own"),
        ("192.168.137.0", "not a host address"),
        ("192.168.137.255", "not a host address"),
        ("192.168.137.500", "not an IPv4"),
        ("fe80::1", "not an IPv4"),
    ],
)
def test_reservation_address_must_be_a_private_host(ip: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        make_reservation("aa:bb:cc:00:00:01", ip, None, GATEWAYS)


def test_duplicate_reservations_conflict() -> None:
    a = Reservation(mac="aa:bb:cc:00:00:01", ip="192.168.137.5", hostname="a")
    check_reservations([a, a])  # the same reservation twice is harmless
    for other in [
        Reservation(mac="aa:bb:cc:00:00:01", ip="192.168.137.6"),
        Reservation(mac="aa:bb:cc:00:00:02", ip="192.168.137.5"),
        Reservation(mac="aa:bb:cc:00:00:02", ip="192.168.137.6", hostname="a"),
    ]:
        with pytest.raises(ConflictError, match="reserved twice"):
            check_reservations([a, other])


def test_default_range_is_100_to_200_of_a_24() -> None:
    start, end = dhcp_range_for(GATEWAYS[0], DhcpSettings())
    assert (str(start), str(end)) == ("192.168.137.100", "192.168.137.200")


def test_explicit_range_applies_only_to_its_own_network() -> None:
    settings = DhcpSettings(range_start="10.1.0.10", range_end="10.1.0.20")
    assert [str(a) for a in dhcp_range_for(GATEWAYS[1], settings)] == ["10.1.0.10", "10.1.0.20"]
    assert str(dhcp_range_for(GATEWAYS[0], settings)[0]) == "192.168.137.100"


def test_settings_validation_normalises() -> None:
    checked = validate_dhcp_settings(
        DhcpSettings(domain="LAN.Example.", upstream_servers=["2001:DB8::1", "2001:db8::1"])
    )
    assert checked.domain == "lan.example"
    assert checked.upstream_servers == ["2001:db8::1"]
    with pytest.raises(ValidationError, match="before its start"):
        validate_dhcp_settings(DhcpSettings(range_start="10.0.0.9", range_end="10.0.0.8"))
    with pytest.raises(ValidationError, match="lease time"):
        validate_dhcp_settings(DhcpSettings(lease_time_s=400 * 24 * 3600))


def test_upstreams_configured_win_over_learned() -> None:
    learned = ["127.0.0.53", "fe80::1%eth0", "bogus", "127.0.0.53"]
    assert effective_upstreams(DhcpSettings(), learned) == ["127.0.0.53"]
    configured = DhcpSettings(upstream_servers=["192.0.2.1"])
    assert effective_upstreams(configured, learned) == ["192.0.2.1"]


def test_resolv_conf_nameservers() -> None:
    text = "# comment\nsearch example\nnameserver 192.0.2.1\nnameserver  2001:db8::1 \noptions x\n"
    assert parse_resolv_conf_nameservers(text) == ["192.0.2.1", "2001:db8::1"]


LEASE_FILE = """\
1795738539 82:9a:c4:7e:18:21 192.168.137.162 client-u 01:82:9a:c4:7e:18:21
0 AA:BB:CC:00:00:01 192.168.137.50 * *
duid 00:01:00:01:2c:aa:bb:cc:00:11:22:33:44:55
1795738539 1234 fd00::5 v6host 00:01
garbage line
x 82:9a:c4:7e:18:21 192.168.137.9 h *
"""


def test_lease_file_is_parsed_and_odd_lines_skipped() -> None:
    assert parse_lease_file(LEASE_FILE) == [
        Lease(
            mac="82:9a:c4:7e:18:21",
            ip="192.168.137.162",
            hostname="client-u",
            expires_at=1795738539,
            client_id="01:82:9a:c4:7e:18:21",
        ),
        Lease(mac="aa:bb:cc:00:00:01", ip="192.168.137.50", hostname=None, expires_at=None),
    ]


@given(st.text(max_size=500))
def test_lease_file_parser_never_raises(text: str) -> None:
    for lease in parse_lease_file(text):
        ipaddress.IPv4Address(lease.ip)


def test_lease_event_round_trip() -> None:
    data = json.dumps(
        {
            "event": "add",
            "mac": "AA:bb:cc:00:00:01",
            "ip": "192.168.137.7",
            "hostname": "pc",
            "interface": "swp0",
            "expires_at": 1795738539,
        }
    ).encode()
    assert parse_lease_event(data) == LeaseEvent(
        kind=LeaseEventKind.ADD,
        mac="aa:bb:cc:00:00:01",
        ip="192.168.137.7",
        hostname="pc",
        interface="swp0",
        expires_at=1795738539,
    )
    minimal = parse_lease_event(b'{"event":"del","mac":"aa:bb:cc:00:00:01","ip":"10.0.0.2"}')
    assert minimal.hostname is None and minimal.expires_at is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1]",
        b'{"event":"tftp","mac":"a","ip":"10.0.0.1"}',
        b'{"event":"add","ip":"10.0.0.1"}',
        b'{"event":"add","mac":"a","ip":"nope"}',
        b"\xff\xfe",
        b" " * (MAX_LEASE_EVENT_BYTES + 1),
    ],
)
def test_bad_lease_events_raise_validation_error(data: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_lease_event(data)


@given(st.binary(max_size=300))
def test_lease_event_parser_returns_an_event_or_validation_error(data: bytes) -> None:
    try:
        event = parse_lease_event(data)
    except ValidationError:
        return
    assert isinstance(event, LeaseEvent)
