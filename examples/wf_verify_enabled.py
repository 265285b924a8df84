# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Verifying Windows Firewall is enabled: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Verifying Windows Firewall is Enabled", Windows Firewall API documentation;
seed-system.md §4.6) makes sure the SharedAccess service runs (starting it if needed), then
turns the firewall on if it is off and prints its state.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python wf_verify_enabled.py

sharewall's SharedAccess is sharewalld: this port asks whether it answers, and, since starting
a system service is the init system's job, says how to start it and exits with 1 when it does
not. The firewall is "enabled" when every connection of the profile (all but the private side
of sharing) has it on; setting it turns it on for each of them.
"""

from __future__ import annotations

import sys

from sharewall.api.hnetcfg import CreateObject

# Verify that sharewalld (Windows: the SharedAccess service) is running.
objShare = CreateObject("HNetCfg.HNetShare")
running = objShare.SharingInstalled
print(f"sharewalld is running: {running}")
if not running:
    print("start it first, for example: systemctl start sharewalld")
    sys.exit(1)

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# Get the current profile for the local firewall policy.
profile = fwMgr.LocalPolicy.CurrentProfile

# Verify that the Firewall is enabled. If it isn't, then enable it.
if not profile.FirewallEnabled:
    profile.FirewallEnabled = True
print(f"Firewall Enabled: {profile.FirewallEnabled}")

print(f"Firewall Exceptions Not Allowed: {profile.ExceptionsNotAllowed}")
