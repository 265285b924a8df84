# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Allowing incoming echo requests: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Allowing Incoming Echo Requests", Windows Firewall API documentation;
seed-system.md §4.6) opens up ICMP type 8 in the firewall. In sharewall the switch is set on
every connection of the profile (all but the private side of sharing); IPv6 echo requests
(type 128) follow the same switch.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python wf_allow_echo_requests.py [--disable]

``--disable`` runs the original's commented-out line instead.
"""

from __future__ import annotations

import sys

from sharewall.api.hnetcfg import CreateObject

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# Get the current profile for the local firewall policy.
profile = fwMgr.LocalPolicy.CurrentProfile

if "--disable" not in sys.argv[1:]:
    profile.IcmpSettings.AllowInboundEchoRequest = True
else:
    # Use this line if you want to disable the setting.
    profile.IcmpSettings.AllowInboundEchoRequest = False
