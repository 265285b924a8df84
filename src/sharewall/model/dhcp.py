"""DHCP and DNS for private connections: settings, reservations, and the leases dnsmasq reports.

Pure: no I/O, no clock. Everything here validates and normalises values; the dnsmasq config text is
made by ``sharewall.compiler.dnsmasq`` and the files and processes are handled by
``sharewall.backends.dnsmasq``.

Promises:
- Every ``validate_*``/``make_*``/``parse_*`` function returns a normalised value or raises
  :class:`~sharewall.errors.ValidationError` (duplicates: :class:`~sharewall.errors.ConflictError`)
  with a message that names the bad value. Nothing else escapes on bad input.
- A MAC address is always lower-case, colon-separated (``aa:bb:cc:dd:ee:ff``); a host name is one
  lower-case RFC 1123 label (dnsmasq appends the domain itself).
- The lease-file and lease-event parsers never raise on a malformed line from dnsmasq: they skip it
  (``parse_lease_file``) or raise ``ValidationError`` (``parse_lease_event``), so a bad datagram can
  never take the daemon down.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence

import msgspec

from sharewall.errors import ConflictError, ValidationError

DEFAULT_DOMAIN = "mshome.net"  # what Windows ICS hands out
DEFAULT_LEASE_TIME_S = 60 * 60
# dnsmasq raises any shorter lease to two minutes without saying so; refuse instead of surprising.
MIN_LEASE_TIME_S = 120
MAX_LEASE_TIME_S = 365 * 24 * 60 * 60
# A lease event is one small JSON object; anything bigger is not from our dhcp-script.
MAX_LEASE_EVENT_BYTES = 4096

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAC_FORMS = (
    re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"),
    re.compile(r"^[0-9a-f]{2}(-[0-9a-f]{2}){5}$"),
    re.compile(r"^[0-9a-f]{4}(\.[0-9a-f]{4}){2}$"),
    re.compile(r"^[0-9a-f]{12}$"),
)


class DhcpSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """DHCP allocator and DNS proxy settings shared by every private connection (TOML ``[dhcp]``).

    The dynamic range is ``network address + range_start_offset`` to ``+ range_end_offset`` of each
    private network (.100-.200 of a /24), unless ``range_start``/``range_end`` are given: explicit
    addresses apply to the private network that contains them; other private networks keep the
    offsets.
    """

    enabled: bool = True
    range_start_offset: int = 100
    range_end_offset: int = 200
    range_start: str | None = None
    range_end: str | None = None
    lease_time_s: int = DEFAULT_LEASE_TIME_S
    domain: str = DEFAULT_DOMAIN
    # Empty means "learn them from the system's resolv.conf" (the daemon does that).
    upstream_servers: list[str] = []
    # dnsmasq pings a never-used address for ~3 s before offering it (stack.md §3). Off by default:
    # Windows' DHCP server does no conflict detection by default either, and clients that care
    # ARP-probe the offered address themselves (RFC 2131 §4.4.1) and DHCPDECLINE it, which dnsmasq
    # honours by marking the address as in use.
    probe_new_addresses: bool = False


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    """A fixed address for one MAC, optionally with the host name DNS answers for it."""

    mac: str
    ip: str
    hostname: str | None = None


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """One line of dnsmasq's lease file: who holds which address, until when."""

    mac: str
    ip: str
    hostname: str | None
    expires_at: int | None  # seconds since the epoch; None for an infinite lease
    client_id: str | None = None


class LeaseEventKind(enum.StrEnum):
    """The first argument dnsmasq passes to its ``dhcp-script`` (dnsmasq(8), ``--dhcp-script``)."""

    ADD = "add"  # a new lease
    OLD = "old"  # an existing lease renewed, changed, or re-announced on SIGHUP/start-up
    DEL = "del"  # the lease was released or expired


class LeaseEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A lease change as the ``dhcp-script`` reported it."""

    kind: LeaseEventKind
    mac: str
    ip: str
    hostname: str | None = None
    interface: str | None = None
    expires_at: int | None = None  # seconds since the epoch; None if unknown or infinite


# ---- validation ------------------------------------------------------------------------------


def normalize_mac(text: str) -> str:
    """Return *text* as a lower-case colon-separated Ethernet MAC address.

    Accepts ``aa:bb:cc:dd:ee:ff``, ``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff`` and ``aabbccddeeff``.

    Raises:
        ValidationError: not a 48-bit MAC address, or a multicast/broadcast/all-zero one (no DHCP
            client can have it).
    """
    raw = text.strip().lower()
    if not any(pattern.match(raw) for pattern in _MAC_FORMS):
        raise ValidationError(f"{text!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    hex_digits = re.sub(r"[:\-.]", "", raw)
    if int(hex_digits[:2], 16) & 1:
        raise ValidationError(f"MAC address {text!r} is a multicast address, not a host's")
    if hex_digits == "0" * 12:
        raise ValidationError(f"MAC address {text!r} is all zeros")
    return ":".join(hex_digits[i : i + 2] for i in range(0, 12, 2))


def validate_hostname(name: str) -> str:
    """Return *name* as one lower-case RFC 1123 host-name label.

    Raises:
        ValidationError: empty, longer than 63 characters, containing anything but letters, digits
            and inner hyphens, all digits, or containing a dot (give the bare name; the DHCP domain
            is appended by the DNS proxy).
    """
    label = name.strip().lower()
    if "." in label:
        raise ValidationError(
            f"host name {name!r} must be a single label without dots (the domain is added for you)"
        )
    if not _HOST_LABEL.match(label) or label.isdigit():
        raise ValidationError(
            f"host name {name!r} is not valid: use 1-63 letters, digits and inner hyphens"
        )
    return label


def validate_domain(domain: str) -> str:
    """Return the DHCP/DNS domain lower-cased, without a trailing dot.

    Raises:
        ValidationError: not a dotted RFC 1123 name of at most 253 characters.
    """
    name = domain.strip().lower().removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValidationError(f"domain {domain!r} is not a valid DNS domain name")
    if labels[-1].isdigit():
        raise ValidationError(f"domain {domain!r} must not end in a numeric label")
    return name


def validate_upstream_server(text: str) -> str:
    """Return an upstream DNS server address in canonical form (IPv4 or IPv6, no scope id).

    Raises:
        ValidationError: not an IP address, or one no resolver can listen on.
    """
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValidationError(f"upstream DNS server {text!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        raise ValidationError(
            f"upstream DNS server {text!r}: scoped IPv6 addresses are not supported"
        )
    if addr.is_unspecified or addr.is_multicast:
        raise ValidationError(f"upstream DNS server {text!r} cannot be a resolver's address")
    return str(addr)


def validate_dhcp_settings(settings: DhcpSettings) -> DhcpSettings:
    """Check *settings* and return a normalised copy (domain and upstreams canonical).

    Raises:
        ValidationError: an offset, range, lease time, domain or upstream server is invalid.
    """
    if not 1 <= settings.range_start_offset <= settings.range_end_offset:
        raise ValidationError(
            "DHCP range offsets must satisfy 1 <= range_start_offset <= range_end_offset "
            f"(got {settings.range_start_offset}..{settings.range_end_offset})"
        )
    if (settings.range_start is None) != (settings.range_end is None):
        raise ValidationError("give both range_start and range_end, or neither")
    if settings.range_start is not None and settings.range_end is not None:
        start = _parse_ipv4(settings.range_start, "range_start")
        end = _parse_ipv4(settings.range_end, "range_end")
        if int(end) < int(start):
            raise ValidationError(f"DHCP range end {end} is before its start {start}")
    if not MIN_LEASE_TIME_S <= settings.lease_time_s <= MAX_LEASE_TIME_S:
        raise ValidationError(
            f"lease time must be {MIN_LEASE_TIME_S} s to {MAX_LEASE_TIME_S} s "
            f"(got {settings.lease_time_s} s)"
        )
    upstreams = _dedupe(validate_upstream_server(s) for s in settings.upstream_servers)
    return msgspec.structs.replace(
        settings, domain=validate_domain(settings.domain), upstream_servers=upstreams
    )


def dhcp_range_for(
    gateway: ipaddress.IPv4Interface, settings: DhcpSettings
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """The first and last dynamic address handed out on the private network of *gateway*.

    Raises:
        ValidationError: the range does not fit in the network's host addresses, or contains the
            gateway's own address.
    """
    net = gateway.network
    first_host, last_host = net.network_address + 1, net.broadcast_address - 1
    if settings.range_start is not None and settings.range_end is not None:
        start = _parse_ipv4(settings.range_start, "range_start")
        end = _parse_ipv4(settings.range_end, "range_end")
        if start in net and end in net:
            return _checked_range(gateway, start, end, first_host, last_host)
    if settings.range_end_offset >= net.num_addresses - 1:
        raise ValidationError(
            f"DHCP range offsets {settings.range_start_offset}-{settings.range_end_offset} do not "
            f"fit in {net}; set range_start/range_end or smaller offsets"
        )
    start = net.network_address + settings.range_start_offset
    end = net.network_address + settings.range_end_offset
    return _checked_range(gateway, start, end, first_host, last_host)


def effective_upstreams(settings: DhcpSettings, learned: Iterable[str]) -> list[str]:
    """The configured upstream servers, or else the *learned* ones (valid ones, deduplicated)."""
    if settings.upstream_servers:
        return _dedupe(validate_upstream_server(s) for s in settings.upstream_servers)
    out: list[str] = []
    for text in learned:
        try:
            out.append(validate_upstream_server(text))
        except ValidationError:
            continue  # a scoped or odd resolv.conf entry is not worth failing sharing for
    return _dedupe(out)


def parse_resolv_conf_nameservers(text: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf text, in order, as written (not validated)."""
    servers: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def make_reservation(
    mac: str,
    ip: str,
    hostname: str | None,
    networks: Iterable[ipaddress.IPv4Interface],
) -> Reservation:
    """Validate and normalise one reservation against the private networks (gateway interfaces).

    Raises:
        ValidationError: bad MAC or host name, or *ip* is not a host address of a private network
            (or is the gateway's own address).
    """
    addr = _parse_ipv4(ip, "reserved address")
    gateways = list(networks)
    for gateway in gateways:
        net = gateway.network
        if addr in net:
            if addr in (net.network_address, net.broadcast_address):
                raise ValidationError(f"reserved address {addr} is not a host address of {net}")
            if addr == gateway.ip:
                raise ValidationError(f"reserved address {addr} is the gateway's own address")
            break
    else:
        known = ", ".join(str(g.network) for g in gateways) or "none"
        raise ValidationError(
            f"reserved address {addr} is not in a private network (private networks: {known})"
        )
    return Reservation(
        mac=normalize_mac(mac),
        ip=str(addr),
        hostname=None if hostname is None or hostname == "" else validate_hostname(hostname),
    )


def check_reservations(reservations: Sequence[Reservation]) -> None:
    """Refuse two reservations for the same MAC, address or host name.

    Raises:
        ConflictError: a duplicate, naming both.
    """
    seen: dict[tuple[str, str], Reservation] = {}
    for res in reservations:
        keys = [("MAC", res.mac), ("address", res.ip)]
        if res.hostname is not None:
            keys.append(("host name", res.hostname))
        for key in keys:
            other = seen.get(key)
            if other is not None and other != res:
                raise ConflictError(
                    f"{key[0]} {key[1]} is reserved twice ({other.mac} -> {other.ip} and "
                    f"{res.mac} -> {res.ip})"
                )
            seen[key] = res


# ---- what dnsmasq reports --------------------------------------------------------------------


def parse_lease_file(text: str) -> list[Lease]:
    """Parse dnsmasq's lease file (``expiry mac ip hostname client-id`` per line).

    ``*`` stands for "none"; expiry 0 is an infinite lease. DHCPv6 lines (the ``duid`` line and
    IPv6 leases) and malformed lines are skipped: the file is dnsmasq's, and one odd line must not
    hide the rest.
    """
    leases: list[Lease] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        expiry_text, mac, ip, hostname = fields[:4]
        client_id = fields[4] if len(fields) > 4 else "*"
        try:
            expiry = int(expiry_text)
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            continue
        leases.append(
            Lease(
                mac=mac.lower(),
                ip=str(addr),
                hostname=None if hostname == "*" else hostname,
                expires_at=None if expiry == 0 else expiry,
                client_id=None if client_id == "*" else client_id,
            )
        )
    return leases


def parse_lease_event(data: bytes) -> LeaseEvent:
    """Decode one datagram from ``sharewall.backends.dhcp_event`` (a JSON object).

    Raises:
        ValidationError: too big, not JSON, an unknown event, or a bad MAC or address.
    """
    if len(data) > MAX_LEASE_EVENT_BYTES:
        raise ValidationError(f"lease event of {len(data)} bytes is over {MAX_LEASE_EVENT_BYTES}")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("lease event is not JSON") from None
    if not isinstance(obj, dict):
        raise ValidationError("lease event is not a JSON object")
    event = obj.get("event")
    try:
        kind = LeaseEventKind(event if isinstance(event, str) else "")
    except ValueError:
        raise ValidationError(f"unknown lease event {obj.get('event')!r}") from None
    mac, ip = obj.get("mac"), obj.get("ip")
    if not isinstance(mac, str) or not isinstance(ip, str):
        raise ValidationError("lease event lacks mac or ip")
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValidationError(f"lease event address {ip!r} is not an IP address") from None
    hostname, interface, expires = obj.get("hostname"), obj.get("interface"), obj.get("expires_at")
    return LeaseEvent(
        kind=kind,
        mac=mac.lower(),
        ip=str(addr),
        hostname=hostname if isinstance(hostname, str) and hostname else None,
        interface=interface if isinstance(interface, str) and interface else None,
        expires_at=_positive_int_or_none(expires),
    )


# ---- helpers ---------------------------------------------------------------------------------


def _parse_ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not an IPv4 address") from None


def _checked_range(
    gateway: ipaddress.IPv4Interface,
    start: ipaddress.IPv4Address,
    end: ipaddress.IPv4Address,
    first_host: ipaddress.IPv4Address,
    last_host: ipaddress.IPv4Address,
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    net = gateway.network
    if start < first_host or end > last_host or end < start:
        raise ValidationError(f"DHCP range {start}-{end} is not within the host addresses of {net}")
    if start <= gateway.ip <= end:
        raise ValidationError(
            f"DHCP range {start}-{end} contains the gateway's own address {gateway.ip}"
        )
    return start, end


def _positive_int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
