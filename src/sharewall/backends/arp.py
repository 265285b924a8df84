"""Gratuitous ARP: tell a LAN that the gateway's private address now lives at this interface's MAC.

Needed when a private interface is re-created (new MAC) or its address is (re)assigned: clients would
otherwise keep sending to the old MAC until their neighbour entry fails, which takes tens of seconds.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def gratuitous_arp_frame(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """An Ethernet broadcast ARP request whose sender and target address are both ours (RFC 5227 §3)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = address.packed
    header = BROADCAST + hw + struct.pack("!H", ETH_P_ARP)
    # htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, op 1 (request)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
    return header + arp


def announce(ifname: str, mac: str, address: ipaddress.IPv4Address) -> bool:
    """Send one gratuitous ARP on *ifname*; False if the link cannot send (down, no MAC, gone)."""
    if not mac or mac == "00:00:00:00:00:00":
        return False
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((ifname, ETH_P_ARP))
            sock.send(gratuitous_arp_frame(mac, address))
    except OSError:
        return False
    return True
