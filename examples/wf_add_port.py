# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Adding a port to the current profile: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Adding a Port to Current Profile", Windows Firewall API documentation;
seed-system.md §4.6) opens TCP port 80 under the name "HTTP", enabled, for all remote
addresses, and reports the error number if that fails. In sharewall the port is opened on every
connection of the profile (all but the private side of sharing) as a mapping to the gateway
itself.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python wf_add_port.py

Differences from the original: scoping the port to the local subnet (the commented-out line)
is not possible yet and fails with E_NOTIMPL; the exit status is 1 when adding fails.
"""

from __future__ import annotations

import sys

from sharewall.api.hnetcfg import CreateObject, HResultError

# Set Constants
NET_FW_IP_PROTOCOL_UDP = 17
NET_FW_IP_PROTOCOL_TCP = 6

NET_FW_SCOPE_ALL = 0
NET_FW_SCOPE_LOCAL_SUBNET = 1

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# Get the current profile for the local firewall policy.
profile = fwMgr.LocalPolicy.CurrentProfile

port = CreateObject("HNetCfg.FWOpenPort")

port.Name = "HTTP"
port.Protocol = NET_FW_IP_PROTOCOL_TCP
port.Port = 80

# If using Scope, don't use RemoteAddresses
port.Scope = NET_FW_SCOPE_ALL
# Use this line to scope the port to Local Subnet only
# port.Scope = NET_FW_SCOPE_LOCAL_SUBNET

port.Enabled = True
# Use this line instead if you want to add the port, but disabled
# port.Enabled = False

errornum = 0
try:
    profile.GloballyOpenPorts.Add(port)
except HResultError as err:
    errornum = err.hresult

if errornum != 0:
    print(f"Adding the port failed. Error Number: 0x{errornum:08X}")
    sys.exit(1)
