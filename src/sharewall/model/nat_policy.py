"""NAT traversal policy: who may open which dynamic port mappings, and how honest our address is.

Pure: no I/O, no clock (times are arguments), no randomness. The daemon's NAT traversal service
(UPnP IGD, NAT-PMP, PCP) asks this module three questions before it touches the mapping table:

* may this client map this external port to this internal host and port?
  (:meth:`NatTraversalSettings.refusal`: the switch, secure mode, then the allow/deny rules);
* has this client used up its quota, or is it asking too fast? (:class:`RateLimiter`);
* is our public address one the Internet can reach? (:func:`classify_public_address`).

Defaults are miniupnpd's safe ones: secure mode on (a client maps only to itself), external ports
1024-65535 only, 64 mappings per client.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from collections.abc import Iterator

import msgspec

__all__ = [
    "DEFAULT_RULES",
    "AddressClass",
    "NatTraversalSettings",
    "PortRule",
    "RateLimiter",
    "Refusal",
    "RuleAction",
    "candidate_ports",
    "clamp_lifetime",
    "classify_public_address",
]


# --- public address classification ----------------------------------------------------------


class AddressClass(enum.StrEnum):
    """What kind of address the public connection has (what an IGD client will make of it)."""

    PUBLIC = "public"  # reachable from the Internet: mappings work
    PRIVATE = "private"  # RFC 1918: we are behind another NAT (double NAT)
    CGNAT = "cgnat"  # RFC 6598 shared address space: the ISP's NAT is in front of us
    RESERVED = "reserved"  # documentation, benchmarking, link-local, loopback, multicast, ...
    UNKNOWN = "unknown"  # no IPv4 address on the public connection


_PRIVATE = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# IANA special-purpose registry entries that are not globally reachable (RFC 6890), which is
# also the list miniupnpc uses to say "not connected" (addr_is_reserved()).
_RESERVED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "192.0.2.0/24",  # TEST-NET-1
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",
        "192.175.48.0/24",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)


def classify_public_address(address: ipaddress.IPv4Address | None) -> AddressClass:
    """Say whether mappings on ``address`` can be reached from the Internet."""
    if address is None:
        return AddressClass.UNKNOWN
    if any(address in net for net in _PRIVATE):
        return AddressClass.PRIVATE
    if address in _CGNAT:
        return AddressClass.CGNAT
    if any(address in net for net in _RESERVED):
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


# --- permission rules ------------------------------------------------------------------------


class RuleAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


def _check_range(name: str, value: tuple[int, int]) -> None:
    low, high = value
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{name} must be a range 1 <= low <= high <= 65535, not {value}")


class PortRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One permission rule (miniupnpd's ``allow|deny ext_ports int_ip/mask int_ports``).

    A rule matches when the external port, the internal client (the host the mapping points
    at) and the internal port all fall inside it. The first matching rule decides; when none
    matches, the request is refused.
    """

    action: RuleAction
    external_ports: tuple[int, int] = (1, 65535)
    clients: str = "0.0.0.0/0"
    internal_ports: tuple[int, int] = (1, 65535)

    def __post_init__(self) -> None:
        _check_range("external_ports", self.external_ports)
        _check_range("internal_ports", self.internal_ports)
        ipaddress.IPv4Network(self.clients)  # ValueError on a bad subnet (strict: no host bits)

    @property
    def client_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.clients)

    def matches(
        self, client: ipaddress.IPv4Address, external_port: int, internal_port: int
    ) -> bool:
        return (
            self.external_ports[0] <= external_port <= self.external_ports[1]
            and self.internal_ports[0] <= internal_port <= self.internal_ports[1]
            and client in self.client_network
        )


#: miniupnpd's sample policy: anyone may map external ports 1024-65535; nothing else.
DEFAULT_RULES: tuple[PortRule, ...] = (
    PortRule(action=RuleAction.ALLOW, external_ports=(1024, 65535)),
)


class Refusal(enum.StrEnum):
    """Why a mapping request is refused (each protocol turns it into its own error code)."""

    DISABLED = "disabled"  # NAT traversal switched off
    NOT_SELF = "not_self"  # secure mode: the mapping would point at another host
    DENIED_BY_RULE = "denied_by_rule"  # no allow rule, or a deny rule, matched


class NatTraversalSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The NAT traversal switch and its policy (TOML table ``[nat_traversal]`` shape).

    ``requests_per_second`` and ``request_burst`` bound each client's rate of requests across
    the three protocols (0 requests per second: no limit). ``max_lifetime_s`` caps NAT-PMP and
    PCP lifetimes (RFC 6887 §15 lets the server shorten them); IGD:2 has its own cap of a week.
    """

    enabled: bool = True
    upnp: bool = True
    natpmp: bool = True
    pcp: bool = True
    secure_mode: bool = True
    igd_version: int = 1
    max_mappings_per_client: int = 64
    rules: tuple[PortRule, ...] = DEFAULT_RULES
    max_lifetime_s: int = 86400
    requests_per_second: float = 50.0
    request_burst: int = 200

    def __post_init__(self) -> None:
        if self.igd_version not in (1, 2):
            raise ValueError(f"igd_version must be 1 or 2, not {self.igd_version}")
        if not 0 <= self.max_mappings_per_client <= 65535:
            raise ValueError("max_mappings_per_client must be 0..65535")
        if not 1 <= self.max_lifetime_s <= 0xFFFF_FFFF:
            raise ValueError("max_lifetime_s must be 1..4294967295")
        if self.requests_per_second < 0 or self.request_burst < 1:
            raise ValueError("requests_per_second must be >= 0 and request_burst >= 1")

    def permits(
        self, internal_client: ipaddress.IPv4Address, external_port: int, internal_port: int
    ) -> bool:
        """Whether the rules allow this mapping (first match decides; no match: refused)."""
        for rule in self.rules:
            if rule.matches(internal_client, external_port, internal_port):
                return rule.action is RuleAction.ALLOW
        return False

    def refusal(
        self,
        *,
        requester: ipaddress.IPv4Address,
        internal_client: ipaddress.IPv4Address,
        external_port: int,
        internal_port: int,
    ) -> Refusal | None:
        """Why this mapping may not be made, or None when it may (quota and conflicts aside)."""
        if not self.enabled:
            return Refusal.DISABLED
        if self.secure_mode and internal_client != requester:
            return Refusal.NOT_SELF
        if not self.permits(internal_client, external_port, internal_port):
            return Refusal.DENIED_BY_RULE
        return None


def clamp_lifetime(requested_s: int, maximum_s: int) -> int:
    """A granted lifetime: what was asked, at most ``maximum_s`` (0 stays 0: a delete)."""
    return min(max(requested_s, 0), maximum_s)


def candidate_ports(wish: int, *, low: int = 1024, high: int = 65535) -> Iterator[int]:
    """External ports to try for "any port" requests: the wish, then wish±1, ±2, ... in range.

    The same walk as miniupnpd's AddAnyPortMapping. A wish outside ``[low, high]`` (0 = any)
    starts from ``low``. Every port of the range is yielded exactly once.
    """
    if not 1 <= low <= high <= 65535:
        raise ValueError("need 1 <= low <= high <= 65535")
    start = wish if low <= wish <= high else low
    yield start
    for step in range(1, high - low + 1):
        up, down = start + step, start - step
        if up > high and down < low:
            return
        if up <= high:
            yield up
        if down >= low:
            yield down


# --- request rate ----------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client: ``rate`` requests per second, bursts of ``burst``.

    Pure: the caller passes a monotonic ``now``. At most ``max_clients`` buckets are kept (the
    least recently seen is forgotten first), so a flood of spoofed sources costs bounded memory.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 4096) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str, now: float) -> bool:
        """Take one token for ``client``; False when its bucket is empty (refuse the request)."""
        if self.rate <= 0:
            return True
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed
