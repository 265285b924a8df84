"""ICF settings per connection: on/off and the ten ICMP options of INetFwIcmpSettings.

Pure: no I/O. Defaults follow seed-system.md §7.5 (all off) except what IPv6 needs to work:
packet-too-big is on, and neighbour discovery is always allowed (it is not an option).
"""

from __future__ import annotations

import msgspec

from sharewall.errors import ValidationError


class IcmpSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """INetFwIcmpSettings: the ten switches, in Microsoft's DISPID order."""

    outbound_destination_unreachable: bool = False
    redirect: bool = False
    inbound_echo_request: bool = False
    outbound_time_exceeded: bool = False
    outbound_parameter_problem: bool = False
    outbound_source_quench: bool = False
    inbound_router_request: bool = False
    inbound_timestamp_request: bool = False
    inbound_mask_request: bool = False
    outbound_packet_too_big: bool = True


ICMP_OPTIONS: tuple[str, ...] = IcmpSettings.__struct_fields__


def normalize_icmp_option(name: str) -> str:
    """Accept ``inbound-echo-request``, ``inbound_echo_request`` or ``AllowInboundEchoRequest``."""
    key = name.strip()
    if key.startswith("Allow") and key[5:6].isupper():
        out: list[str] = []
        for ch in key[5:]:
            if ch.isupper() and out:
                out.append("_")
            out.append(ch.lower())
        key = "".join(out)
    key = key.replace("-", "_").lower()
    if key not in ICMP_OPTIONS:
        raise ValidationError(
            f"unknown ICMP option {name!r}; expected one of: "
            + ", ".join(o.replace("_", "-") for o in ICMP_OPTIONS)
        )
    return key


def change_icmp(settings: IcmpSettings, *, allow: list[str], deny: list[str]) -> IcmpSettings:
    """Return *settings* with the named options switched on (*allow*) or off (*deny*)."""
    allow_keys = {normalize_icmp_option(n) for n in allow}
    deny_keys = {normalize_icmp_option(n) for n in deny}
    both = allow_keys & deny_keys
    if both:
        raise ValidationError(f"ICMP option both allowed and denied: {', '.join(sorted(both))}")
    changes = dict.fromkeys(allow_keys, True) | dict.fromkeys(deny_keys, False)
    return msgspec.structs.replace(settings, **changes)


class SecurityLogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """ICF security logging of one connection (both off by default, as in Windows)."""

    log_dropped: bool = False  # unsolicited packets ICF dropped -> DROP lines
    log_connections: bool = False  # connections that opened / closed -> OPEN, OPEN-INBOUND, CLOSE


MIN_LOG_KB = 1
MAX_LOG_KB = 32767  # Windows Firewall's range for the log size limit


def check_log_size_kb(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_LOG_KB <= value <= MAX_LOG_KB
    ):
        raise ValidationError(
            f"log size limit must be {MIN_LOG_KB} to {MAX_LOG_KB} KB, not {value!r}"
        )
    return value
