# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Demonstrating IsPortAllowed: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Demonstrating IsPortAllowed", Windows Firewall API documentation;
seed-system.md §4.6) asks four questions: is TCP 5500 allowed on one IPv4 interface; is a
program allowed on all interfaces; is it allowed on TCP 8800; is it allowed on one IPv6
interface. VBScript's two out parameters (Allowed, Restricted) are the returned pair.

Usage::

    SHAREWALL_SOCKET=... python wf_is_port_allowed.py [--ipv4 ADDRESS] [--ipv6 ADDRESS] [--port N]

The original's addresses (172.31.86.122 and 3ffe:8311:ffff:f28f:ad9d:c61d:39a6:12fb) belong to
the machine it was written on; give this machine's with ``--ipv4`` / ``--ipv6``, and another
port than 5500 with ``--port``. sharewall authorizes ports, never programs, so the program
questions are answered by the open ports alone. Where VBScript would stop at the first error,
this prints it and goes on; the exit status is 1 if any question failed.
"""

from __future__ import annotations

import argparse
import sys

from sharewall.api.hnetcfg import CreateObject, HResultError

# Set constants
NET_FW_IP_VERSION_V4 = 0
NET_FW_IP_VERSION_V6 = 1
NET_FW_IP_VERSION_ANY = 2

NET_FW_IP_PROTOCOL_UDP = 17
NET_FW_IP_PROTOCOL_TCP = 6

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ipv4", default="172.31.86.122")
parser.add_argument("--ipv6", default="3ffe:8311:ffff:f28f:ad9d:c61d:39a6:12fb")
parser.add_argument("--port", type=int, default=5500)
args = parser.parse_args()
WMPLAYER = r"C:\Program Files\Windows Media Player\wmplayer.exe"
failures = 0

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# First a reminder on the various arguments:
# IsPortAllowed(imagefilename, ipversion, portnumber, localaddress, protocol) -> allowed, restricted

questions = [
    (
        f"Is TCP port {args.port} allowed on interface {args.ipv4}?",
        (None, NET_FW_IP_VERSION_V4, args.port, args.ipv4, NET_FW_IP_PROTOCOL_TCP),
    ),
    (
        "Is Windows Media Player allowed on all interfaces?",
        (WMPLAYER, NET_FW_IP_VERSION_ANY, 0, None, 0),
    ),
    (
        "Is Windows Media Player allowed on TCP port 8800 on all interfaces?",
        (WMPLAYER, NET_FW_IP_VERSION_V4, 8800, None, NET_FW_IP_PROTOCOL_TCP),
    ),
    (
        f"Is Windows Media Player allowed on interface {args.ipv6}?",
        (WMPLAYER, NET_FW_IP_VERSION_V6, 0, args.ipv6, 0),
    ),
]
for question, (image, version, port, local, protocol) in questions:
    try:
        Allowed, Restricted = fwMgr.IsPortAllowed(image, version, port, local, protocol)
    except HResultError as err:
        print(f"{question} Error: {err}")
        failures += 1
        continue
    print(f"{question} Allowed: {Allowed}  Restricted: {Restricted}")

sys.exit(1 if failures else 0)
