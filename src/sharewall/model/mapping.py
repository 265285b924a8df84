"""Port mappings: built-in services and user mappings, with their validation.

Pure: no I/O, no name resolution (a host-name target keeps the name; facts resolve it).
"""

from __future__ import annotations

import enum
import ipaddress
import re

import msgspec

from sharewall.errors import ValidationError


class Protocol(enum.StrEnum):
    """Transport protocol of a mapping; ``number`` is NAT_PROTOCOL_TCP/UDP (6/17)."""

    TCP = "tcp"
    UDP = "udp"

    @property
    def number(self) -> int:
        return 6 if self is Protocol.TCP else 17

    @classmethod
    def parse(cls, value: object) -> Protocol:
        if isinstance(value, Protocol):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value == 6:
                return cls.TCP
            if value == 17:
                return cls.UDP
        if isinstance(value, str) and value.strip().lower() in {"tcp", "udp"}:
            return cls(value.strip().lower())
        raise ValidationError(f"protocol must be tcp or udp, not {value!r}")


class TargetKind(enum.StrEnum):
    GATEWAY = "gateway"  # the sharewall machine itself (a redirect + input hole)
    ADDRESS = "address"  # a private IPv4 address (DNAT + forward hole)
    HOSTNAME = "hostname"  # a host name resolved to an address (DHCP leases or the resolver)
    MAC = "mac"  # a private host by its Ethernet address: follows its DHCP lease


GATEWAY = "gateway"

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def classify_target(target: str) -> TargetKind:
    """Validate a mapping target and say what kind it is.

    Raises:
        ValidationError: not ``gateway``, a usable IPv4 address, or an RFC 1123 host name.
    """
    if target == GATEWAY:
        return TargetKind.GATEWAY
    if _MAC.match(target.lower()):
        return TargetKind.MAC
    try:
        addr = ipaddress.IPv4Address(target)
    except ValueError:
        pass
    else:
        if (
            addr.is_unspecified
            or addr.is_multicast
            or addr.is_loopback
            or addr == ipaddress.IPv4Address("255.255.255.255")
        ):
            raise ValidationError(f"target address {target} cannot receive a port mapping")
        return TargetKind.ADDRESS
    name = target[:-1] if target.endswith(".") else target
    if (
        not name
        or len(name) > 253
        or not all(_HOST_LABEL.match(label) for label in name.split("."))
        or name.replace(".", "").isdigit()
    ):
        raise ValidationError(f"target {target!r} is not 'gateway', an IPv4 address or a host name")
    return TargetKind.HOSTNAME


class MappingSource(enum.StrEnum):
    STATIC = "static"  # the admin: CLI, API, config file
    UPNP = "upnp"
    NATPMP = "natpmp"
    PCP = "pcp"


class PortMapping(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One port mapping on one connection (INetSharingPortMappingProps)."""

    name: str
    protocol: Protocol
    external_port: int
    internal_port: int
    target: str = GATEWAY
    enabled: bool = True
    builtin: bool = False
    options: int = 0  # HNetCfg dwOptions: reserved, kept and returned as given
    # Dynamic mappings (UPnP, NAT-PMP, PCP) share this one table with static ones.
    source: MappingSource = MappingSource.STATIC
    client: str = ""  # the requester's address; "" for static mappings
    description: str = ""  # the requester's description (UPnP NewPortMappingDescription)
    expires_at: float | None = None  # wall-clock epoch seconds; None: no lease

    @property
    def is_dynamic(self) -> bool:
        return self.source is not MappingSource.STATIC

    def remaining_s(self, now: float) -> float | None:
        return None if self.expires_at is None else max(0.0, self.expires_at - now)

    @property
    def key(self) -> tuple[Protocol, int]:
        return (self.protocol, self.external_port)

    @property
    def target_kind(self) -> TargetKind:
        return classify_target(self.target)


def _check_port(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise ValidationError(
                f"{what} must be a number from 1 to 65535, not {value!r}"
            ) from None
    if not 1 <= value <= 65535:
        raise ValidationError(f"{what} must be from 1 to 65535, not {value}")
    return value


def validate_mapping_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("mapping name must be a non-empty string")
    if len(name) > 255:
        raise ValidationError("mapping name must be at most 255 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError("mapping name must not contain control characters")
    return name


def make_mapping(
    *,
    name: object,
    protocol: object,
    external_port: object,
    internal_port: object | None = None,
    target: object = GATEWAY,
    enabled: object = True,
    builtin: bool = False,
    options: object = 0,
) -> PortMapping:
    """Build a validated PortMapping from loosely typed input (API bodies, CLI, TOML, CSV).

    Raises:
        ValidationError: with a message naming the bad field.
    """
    ext = _check_port("external port", external_port)
    internal = ext if internal_port is None else _check_port("internal port", internal_port)
    if not isinstance(target, str):
        raise ValidationError(f"target must be a string, not {target!r}")
    target = target.strip()
    if target.lower() == GATEWAY:
        target = GATEWAY
    if classify_target(target) is TargetKind.MAC:
        target = target.lower()
    if not isinstance(enabled, bool):
        raise ValidationError(f"enabled must be true or false, not {enabled!r}")
    if isinstance(options, bool) or not isinstance(options, int) or not 0 <= options <= 0xFFFFFFFF:
        raise ValidationError(f"options must be a 32-bit unsigned number, not {options!r}")
    return PortMapping(
        name=validate_mapping_name(name),
        protocol=Protocol.parse(protocol),
        external_port=ext,
        internal_port=internal,
        target=target,
        enabled=enabled,
        builtin=builtin,
        options=options,
    )


# The ICF "Services" list of Windows XP (seed-system.md §7.6): present on every connection,
# aimed at the gateway itself, disabled until enabled, and never removable.
BUILTIN_SERVICES: tuple[PortMapping, ...] = tuple(
    PortMapping(
        name=n, protocol=Protocol.TCP, external_port=p, internal_port=p, enabled=False, builtin=True
    )
    for n, p in (
        ("FTP Server", 21),
        ("Telnet Server", 23),
        ("Internet Mail Server (SMTP)", 25),
        ("Post-Office Protocol Version 3 (POP3)", 110),
        ("Internet Mail Access Protocol Version 3 (IMAP3)", 220),
        ("Internet Mail Access Protocol Version 4 (IMAP4)", 143),
        ("Web Server (HTTP)", 80),
        ("Secure Web Server (HTTPS)", 443),
        ("Remote Desktop", 3389),
    )
)
BUILTIN_BY_NAME = {m.name: m for m in BUILTIN_SERVICES}
