"""Connections: what the user sees of each network interface.

Pure: no I/O. Enum values are Microsoft's (netcon.h) so the HNetCfg layer can pass them through.
"""

from __future__ import annotations

import enum
import re

import msgspec


class MediaType(enum.IntEnum):
    """NETCON_MEDIATYPE (netcon.h)."""

    NONE = 0
    DIRECT = 1
    ISDN = 2
    LAN = 3
    PHONE = 4
    TUNNEL = 5
    PPPOE = 6
    BRIDGE = 7
    SHAREDACCESSHOST_LAN = 8
    SHAREDACCESSHOST_RAS = 9


class ConnectionStatus(enum.IntEnum):
    """NETCON_STATUS (netcon.h)."""

    DISCONNECTED = 0
    CONNECTING = 1
    CONNECTED = 2
    DISCONNECTING = 3
    HARDWARE_NOT_PRESENT = 4
    HARDWARE_DISABLED = 5
    HARDWARE_MALFUNCTION = 6
    MEDIA_DISCONNECTED = 7
    AUTHENTICATING = 8
    AUTHENTICATION_SUCCEEDED = 9
    AUTHENTICATION_FAILED = 10
    INVALID_ADDRESS = 11
    CREDENTIALS_REQUIRED = 12


class Characteristics(enum.IntFlag):
    """NETCON_CHARACTERISTIC_FLAGS (netcon.h)."""

    NONE = 0x0000
    ALL_USERS = 0x0001
    ALLOW_DUPLICATION = 0x0002
    ALLOW_REMOVAL = 0x0004
    ALLOW_RENAME = 0x0008
    INCOMING_ONLY = 0x0020
    OUTGOING_ONLY = 0x0040
    BRANDED = 0x0080
    SHARED = 0x0100
    BRIDGED = 0x0200
    FIREWALLED = 0x0400
    DEFAULT = 0x0800
    HOMENET_CAPABLE = 0x1000
    SHARED_PRIVATE = 0x2000


class SharingRole(enum.StrEnum):
    """A connection's part in sharing (SHARINGCONNECTIONTYPE, plus "none")."""

    NONE = "none"
    PUBLIC = "public"  # ICSSHARINGTYPE_PUBLIC = 0
    PRIVATE = "private"  # ICSSHARINGTYPE_PRIVATE = 1


# Linux allows almost any byte in an interface name; we accept what the kernel accepts (1-15
# bytes, no '/', no whitespace, not "." or "..") and never put a name into nft text: it goes
# through JSON only (stack.md §1b, pitfall 2).
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")

SHAREABLE_MEDIA = frozenset(
    {
        MediaType.PHONE,
        MediaType.DIRECT,
        MediaType.ISDN,
        MediaType.LAN,
        MediaType.TUNNEL,
        MediaType.PPPOE,
        MediaType.BRIDGE,
    }
)


def is_valid_ifname(name: str) -> bool:
    """True if *name* could be a Linux interface name (what the kernel's dev_valid_name allows)."""
    return bool(_IFNAME.match(name)) and name not in {".", ".."} and len(name.encode()) <= 15


def media_type_for_kind(kind: str, *, wireless: bool = False) -> MediaType:
    """Map a Linux link kind (IFLA_INFO_KIND, "" for physical) to NETCON_MEDIATYPE."""
    if wireless:
        return MediaType.LAN  # Windows reports Wi-Fi adapters as NCM_LAN too
    if kind == "bridge":
        return MediaType.BRIDGE
    if kind in {"ppp"}:
        return MediaType.PPPOE
    if kind in {
        "tun",
        "tap",
        "wireguard",
        "gre",
        "gretap",
        "ipip",
        "sit",
        "vti",
        "ip6tnl",
        "vxlan",
        "geneve",
        "ipvlan_tunnel",
    }:
        return MediaType.TUNNEL
    return MediaType.LAN


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    """One network interface as the API shows it (observed facts joined with configuration)."""

    id: str  # stable, braced GUID: "{8-4-4-4-12}"
    name: str
    device: str  # driver or link kind ("veth", "bridge", "ethernet", ...)
    status: ConnectionStatus
    media_type: MediaType
    characteristics: int
    sharing: SharingRole = SharingRole.NONE
    firewall: bool = False
    present: bool = True
    mac: str = ""
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()

    @property
    def is_shareable(self) -> bool:
        return self.media_type in SHAREABLE_MEDIA and not (
            self.characteristics & Characteristics.INCOMING_ONLY
        )
