"""Facts: what the kernel and the resolver say right now. Filled by backends, read by the compiler.

Pure data, no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Link:
    """One network interface as netlink reports it."""

    index: int
    name: str
    kind: str = ""  # IFLA_INFO_KIND: "veth", "bridge", "" for physical, ...
    mac: str = ""
    up: bool = False  # IFF_UP: administratively up
    carrier: bool = False  # IFF_LOWER_UP: link has carrier
    mtu: int = 1500
    wireless: bool = False
    ipv4: tuple[ipaddress.IPv4Interface, ...] = ()
    ipv6: tuple[ipaddress.IPv6Interface, ...] = ()

    @property
    def is_loopback(self) -> bool:
        return self.name == "lo" or self.kind == "loopback"


@dataclass(frozen=True, slots=True)
class Facts:
    """A snapshot of the machine: links by name, and host names resolved to IPv4 addresses."""

    links: dict[str, Link] = field(default_factory=dict)
    resolved: dict[str, ipaddress.IPv4Address] = field(default_factory=dict)

    def link(self, name: str) -> Link | None:
        return self.links.get(name)
