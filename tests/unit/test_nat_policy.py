"""The NAT traversal policy model: address classes, rules, secure mode, port walks, rate limits."""

from __future__ import annotations

import ipaddress

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharewall.model.nat_policy import (
    DEFAULT_RULES,
    AddressClass,
    NatTraversalSettings,
    PortRule,
    RateLimiter,
    Refusal,
    RuleAction,
    candidate_ports,
    clamp_lifetime,
    classify_public_address,
)

A = ipaddress.IPv4Address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("11.0.0.1", AddressClass.PUBLIC),
        ("8.8.8.8", AddressClass.PUBLIC),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("10.1.2.3", AddressClass.PRIVATE),
        ("172.31.255.254", AddressClass.PRIVATE),
        ("172.32.0.1", AddressClass.PUBLIC),
        ("100.64.0.1", AddressClass.CGNAT),
        ("100.127.255.254", AddressClass.CGNAT),
        ("100.128.0.1", AddressClass.PUBLIC),
        ("198.51.100.1", AddressClass.RESERVED),  # TEST-NET-2: the lab's default uplink
        ("192.0.2.1", AddressClass.RESERVED),
        ("203.0.113.9", AddressClass.RESERVED),
        ("169.254.1.1", AddressClass.RESERVED),
        ("198.18.0.1", AddressClass.RESERVED),
        ("224.0.0.1", AddressClass.RESERVED),
        ("255.255.255.255", AddressClass.RESERVED),
        ("0.0.0.0", AddressClass.RESERVED),
    ],
)
def test_public_address_classes(address: str, expected: AddressClass) -> None:
    assert classify_public_address(A(address)) is expected


def test_no_address_is_unknown() -> None:
    assert classify_public_address(None) is AddressClass.UNKNOWN


def test_defaults_are_the_safe_ones() -> None:
    settings = NatTraversalSettings()
    assert settings.enabled and settings.secure_mode
    assert settings.max_mappings_per_client == 64
    assert settings.rules == DEFAULT_RULES
    me = A("192.168.137.11")
    assert settings.permits(me, 1024, 80)
    assert settings.permits(me, 65535, 1)
    assert not settings.permits(me, 1023, 1023)
    assert not settings.permits(me, 80, 8080)


def test_refusal_order_switch_then_secure_mode_then_rules() -> None:
    me, other = A("192.168.137.11"), A("192.168.137.12")
    settings = NatTraversalSettings()
    ask: dict[str, object] = {
        "requester": me,
        "internal_client": me,
        "external_port": 8080,
        "internal_port": 80,
    }
    assert settings.refusal(**ask) is None
    assert settings.refusal(**{**ask, "internal_client": other}) is Refusal.NOT_SELF
    assert settings.refusal(**{**ask, "external_port": 80}) is Refusal.DENIED_BY_RULE
    off = NatTraversalSettings(enabled=False)
    assert off.refusal(**ask) is Refusal.DISABLED
    relaxed = NatTraversalSettings(secure_mode=False)
    assert relaxed.refusal(**{**ask, "internal_client": other}) is None


def test_first_matching_rule_decides_by_port_subnet_and_internal_port() -> None:
    rules = (
        PortRule(action=RuleAction.DENY, clients="192.168.137.128/25"),
        PortRule(action=RuleAction.DENY, external_ports=(5000, 5999)),
        PortRule(
            action=RuleAction.ALLOW, external_ports=(1024, 65535), internal_ports=(1024, 65535)
        ),
        PortRule(action=RuleAction.ALLOW, external_ports=(80, 80), internal_ports=(80, 80)),
    )
    settings = NatTraversalSettings(rules=rules)
    low, high = A("192.168.137.11"), A("192.168.137.200")
    assert settings.permits(low, 8080, 8080)
    assert not settings.permits(high, 8080, 8080)  # client subnet denied
    assert not settings.permits(low, 5500, 8080)  # external range denied
    assert not settings.permits(low, 8080, 22)  # internal port outside every allow rule
    assert settings.permits(low, 80, 80)  # a narrow allow for one port
    assert not settings.permits(low, 81, 81)


def test_settings_from_toml_and_bad_values_refused() -> None:
    text = b"""
    secure_mode = false
    igd_version = 2
    max_mappings_per_client = 8

    [[rules]]
    action = "allow"
    external_ports = [2000, 3000]
    clients = "192.168.137.0/24"
    """
    settings = msgspec.toml.decode(text, type=NatTraversalSettings)
    assert not settings.secure_mode and settings.igd_version == 2
    assert settings.rules == (
        PortRule(action=RuleAction.ALLOW, external_ports=(2000, 3000), clients="192.168.137.0/24"),
    )
    for bad in (
        b"igd_version = 3",
        b"max_mappings_per_client = -1",
        b"unknown_key = 1",
        b'[[rules]]\naction = "allow"\nexternal_ports = [3000, 2000]',
        b'[[rules]]\naction = "allow"\nclients = "192.168.137.1/24"',  # host bits set
        b'[[rules]]\naction = "maybe"',
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.toml.decode(bad, type=NatTraversalSettings)


@given(
    wish=st.integers(min_value=0, max_value=65535),
    low=st.integers(min_value=1, max_value=65535),
    span=st.integers(min_value=0, max_value=300),
)
def test_candidate_ports_walk_every_port_of_the_range_once_from_the_wish(
    wish: int, low: int, span: int
) -> None:
    high = min(65535, low + span)
    walk = list(candidate_ports(wish, low=low, high=high))
    assert sorted(walk) == list(range(low, high + 1))
    assert walk[0] == (wish if low <= wish <= high else low)
    # Nearest first: distances from the start never decrease.
    distances = [abs(p - walk[0]) for p in walk]
    assert distances == sorted(distances)


def test_lifetime_clamp() -> None:
    assert clamp_lifetime(7200, 3600) == 3600
    assert clamp_lifetime(60, 3600) == 60
    assert clamp_lifetime(0, 3600) == 0


def test_rate_limiter_allows_a_burst_then_the_rate_per_client() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)  # another client has its own bucket
    assert not limiter.allow("a", 0.05)  # half a token
    assert limiter.allow("a", 0.2)
    assert RateLimiter(rate=0, burst=1).allow("a", 0.0)  # 0: no limit


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_clients=10)
    for n in range(1000):
        limiter.allow(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limiter._buckets) == 10
