"""The configuration root: connections, sharing, firewall and port mappings.

Pure: no I/O. The daemon holds one ``Config`` and changes it only through ``sharewall.model.changes``,
which validates every change before it touches anything.
"""

from __future__ import annotations

import ipaddress

import msgspec

from sharewall.errors import ValidationError
from sharewall.model.dhcp import DhcpSettings, Reservation
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings
from sharewall.model.mapping import BUILTIN_SERVICES, PortMapping

DEFAULT_PRIVATE_NETWORK = "192.168.137.0/24"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Daemon-wide settings (TOML ``[settings]``)."""

    # The first private connection gets the first host address of this network (192.168.137.1/24,
    # as Windows 7+ ICS); each further private connection gets the next network of the same size.
    private_network: str = DEFAULT_PRIVATE_NETWORK
    # The ICF security log (pfirewall.log, W3C extended format); IPv6 events go to pfirewall-v6.log
    # beside it, as Windows' IPv6 firewall did.
    log_path: str = "/var/log/sharewall/pfirewall.log"
    log_max_kb: int = 4096


class ConnectionConfig(msgspec.Struct, kw_only=True):
    """What the user configured for one connection (keyed by its stable id)."""

    id: str
    name: str
    mac: str = ""
    firewall: bool = False
    icmp: IcmpSettings = IcmpSettings()
    log: SecurityLogSettings = SecurityLogSettings()
    # User mappings, and built-in services the user changed, by name.
    mappings: dict[str, PortMapping] = {}

    def effective_mappings(self) -> list[PortMapping]:
        """Built-in services (as changed by the user) followed by user mappings, in order."""
        out = [self.mappings.get(b.name, b) for b in BUILTIN_SERVICES]
        out.extend(m for m in self.mappings.values() if not m.builtin)
        return out

    def mapping(self, name: str) -> PortMapping | None:
        found = self.mappings.get(name)
        if found is not None:
            return found
        for builtin in BUILTIN_SERVICES:
            if builtin.name == name:
                return builtin
        return None


class Sharing(msgspec.Struct, kw_only=True):
    """ICS: one public connection, one or more private ones (connection ids)."""

    public: str | None = None
    private: list[str] = []
    # Addresses sharewall put on private connections that had none (conn id -> "a.b.c.d/nn").
    # unshare removes exactly these.
    assigned_addresses: dict[str, str] = {}
    # net.ipv4.ip_forward as it was before sharing started, restored by unshare.
    saved_ip_forward: int | None = None

    @property
    def active(self) -> bool:
        return self.public is not None


class Config(msgspec.Struct, kw_only=True):
    """Everything sharewall wants the machine to look like."""

    version: int = 1
    settings: Settings = msgspec.field(default_factory=Settings)
    connections: dict[str, ConnectionConfig] = {}
    sharing: Sharing = msgspec.field(default_factory=Sharing)
    dhcp: DhcpSettings = msgspec.field(default_factory=DhcpSettings)
    reservations: list[Reservation] = []

    def connection_by_name(self, name: str) -> ConnectionConfig | None:
        for conn in self.connections.values():
            if conn.name == name:
                return conn
        return None


def private_network(settings: Settings, base: str | None = None) -> ipaddress.IPv4Network:
    """Parse the private network (``--private-address`` or the setting) strictly.

    Raises:
        ValidationError: not an IPv4 network of prefix /8 to /30.
    """
    text = base or settings.private_network
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise ValidationError(f"private address {text!r} is not an IPv4 address/prefix") from None
    net = iface.network
    if not 8 <= net.prefixlen <= 30:
        raise ValidationError(f"private network {net} must have a prefix from /8 to /30")
    if not net.is_private or net.is_loopback or net.is_link_local:
        raise ValidationError(f"private network {net} is not a private (RFC 1918) range")
    return net


def gateway_address_for(
    net: ipaddress.IPv4Network, given: str | None = None
) -> ipaddress.IPv4Interface:
    """The gateway's own address in *net*: the given host address, or the first host."""
    if given is not None:
        iface = ipaddress.IPv4Interface(given)
        if iface.ip != net.network_address and iface.ip != net.broadcast_address:
            return iface
    return ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")
