# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Enabling a service: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Enabling a Service", Windows Firewall API documentation; seed-system.md §4.6)
enables the File and Printer Sharing service for all remote addresses. sharewall's services are
its built-in port mappings (seed-system.md §7.6) and File and Printer Sharing is not one of them,
so this port enables Remote Desktop (NET_FW_SERVICE_REMOTE_DESKTOP, TCP 3389) instead; asking for
NET_FW_SERVICE_FILE_AND_PRINT fails with 0x80070002 (not found).

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python wf_enable_service.py [--disable]

``--disable`` runs the original's commented-out line instead.
"""

from __future__ import annotations

import sys

from sharewall.api.hnetcfg import CreateObject

# Set Constants
NET_FW_SERVICE_FILE_AND_PRINT = 0
NET_FW_SERVICE_UPNP = 1
NET_FW_SERVICE_REMOTE_DESKTOP = 2

# Scope
NET_FW_SCOPE_ALL = 0
NET_FW_SCOPE_LOCAL_SUBNET = 1

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# Get the current profile for the local firewall policy.
profile = fwMgr.LocalPolicy.CurrentProfile

service = profile.Services.Item(NET_FW_SERVICE_REMOTE_DESKTOP)
service.Enabled = True
# Use either Scope or RemoteAddresses, but not both
# service.RemoteAddresses = "*"
service.Scope = NET_FW_SCOPE_ALL

if "--disable" in sys.argv[1:]:
    # Use this line to disable the service
    service.Enabled = False
