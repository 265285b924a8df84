# ruff: noqa: N816
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Displaying all properties: Microsoft's Windows Firewall VBScript sample, ported.

The original ("Displaying all Properties", Windows Firewall API documentation;
seed-system.md §4.6) dumps the current profile: its type and switches, the remote
administration settings, the ICMP settings, every globally open port, every service with its
ports, and every authorized application.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python wf_display_all_properties.py

VBScript's ``Select Case`` over the constants is a dictionary lookup here, and ``vbCrLf`` is a
newline. What sharewall lacks shows as such: remote administration is off, and there are no
authorized applications.
"""

from __future__ import annotations

from sharewall.api.hnetcfg import CreateObject

# Define Constants from the SDK and their associated string name
# Scope
NET_FW_SCOPE_ALL = 0
NET_FW_SCOPE_LOCAL_SUBNET = 1
NET_FW_SCOPE_CUSTOM = 2
SCOPE_NAMES = {
    NET_FW_SCOPE_ALL: "All subnets",
    NET_FW_SCOPE_LOCAL_SUBNET: "Local subnet only",
    NET_FW_SCOPE_CUSTOM: "Custom Scope (see RemoteAddresses)",
}

# Profile Type
NET_FW_PROFILE_DOMAIN = 0
NET_FW_PROFILE_STANDARD = 1
PROFILE_NAMES = {NET_FW_PROFILE_DOMAIN: "Domain", NET_FW_PROFILE_STANDARD: "Standard"}

# IP Version
NET_FW_IP_VERSION_V4 = 0
NET_FW_IP_VERSION_V6 = 1
NET_FW_IP_VERSION_ANY = 2
IP_VERSION_NAMES = {
    NET_FW_IP_VERSION_V4: "IPv4",
    NET_FW_IP_VERSION_V6: "IPv6",
    NET_FW_IP_VERSION_ANY: "ANY",
}

# Protocol
NET_FW_IP_PROTOCOL_TCP = 6
NET_FW_IP_PROTOCOL_UDP = 17
PROTOCOL_NAMES = {NET_FW_IP_PROTOCOL_TCP: "TCP", NET_FW_IP_PROTOCOL_UDP: "UDP"}

# Create the firewall manager object.
fwMgr = CreateObject("HNetCfg.FwMgr")

# Get the current profile for the local firewall policy.
profile = fwMgr.LocalPolicy.CurrentProfile

msgOut = "\nDumping local firewall profile ..."

# Print the Profile information
if profile.Type in PROFILE_NAMES:
    msgOut += "Type: " + PROFILE_NAMES[profile.Type] + "\n"

print(msgOut)

msgOut = f"Firewall Enabled: {profile.FirewallEnabled}\n"
msgOut += f"Exceptions Not Allowed: {profile.ExceptionsNotAllowed}\n"
msgOut += f"Notifications Disabled: {profile.NotificationsDisabled}\n"
msgOut += (
    "UnicastResponsestoMulticastBroadcastDisabled: "
    f"{profile.UnicastResponsesToMulticastBroadcastDisabled}\n"
)

print(msgOut)

# Print the Remote Admin settings.
RASettings = profile.RemoteAdminSettings

msgOut = f"Remote Administration Enabled: {RASettings.Enabled}\n"
if RASettings.IpVersion in IP_VERSION_NAMES:
    msgOut += f"Remote Administration IP Version: {IP_VERSION_NAMES[RASettings.IpVersion]}\n"
if RASettings.Scope in SCOPE_NAMES:
    msgOut += f"Remote Administration Scope: {SCOPE_NAMES[RASettings.Scope]}\n"
msgOut += f"Remote Administration RemoteAddresses: {RASettings.RemoteAddresses}\n"

print(msgOut + "\n")

# Print the ICMP Settings.
icmpSettings = profile.IcmpSettings
msgOut = "ICMP Settings:\n"
msgOut += (
    f"  AllowOutboundDestinationUnreachable: {icmpSettings.AllowOutboundDestinationUnreachable}\n"
)
msgOut += f"  AllowOutboundSourceQuench:           {icmpSettings.AllowOutboundSourceQuench}\n"
msgOut += f"  AllowRedirect:                       {icmpSettings.AllowRedirect}\n"
msgOut += f"  AllowInboundEchoRequest:             {icmpSettings.AllowInboundEchoRequest}\n"
msgOut += f"  AllowInboundRouterRequest:           {icmpSettings.AllowInboundRouterRequest}\n"
msgOut += f"  AllowOutboundTimeExceeded:           {icmpSettings.AllowOutboundTimeExceeded}\n"
msgOut += f"  AllowOutboundParameterProblem:       {icmpSettings.AllowOutboundParameterProblem}\n"
msgOut += f"  AllowInboundTimestampRequest:        {icmpSettings.AllowInboundTimestampRequest}\n"
msgOut += f"  AllowInboundMaskRequest:             {icmpSettings.AllowInboundMaskRequest}\n"

print(msgOut + "\n")

# Print all the globally open ports.
msgOut = f"Globally Open Ports: {profile.GloballyOpenPorts.Count}\n"
print(msgOut)
msgOut = ""

for port in profile.GloballyOpenPorts:
    msgOut += f"  Name:               {port.Name}\n"
    msgOut += f"  Port Number:        {port.Port}\n"
    if port.Protocol in PROTOCOL_NAMES:
        msgOut += f"  IP Protocol:        {PROTOCOL_NAMES[port.Protocol]}\n"
    msgOut += f"  BuiltIn:            {port.BuiltIn}\n"
    if port.IpVersion in IP_VERSION_NAMES:
        msgOut += f"  IP Version:         {IP_VERSION_NAMES[port.IpVersion]}\n"
    if port.Scope in SCOPE_NAMES:
        msgOut += f"  Scope:              {SCOPE_NAMES[port.Scope]}\n"
    msgOut += f"  RemoteAddresses:    {port.RemoteAddresses}\n"
    msgOut += f"  Enabled:            {port.Enabled}\n\n"

    print(msgOut)

    msgOut = ""

# Print all the services
msgOut = f"Services: {profile.Services.Count}\n"
print(msgOut)
msgOut = ""

for service in profile.Services:
    msgOut += f"  Name:                {service.Name}\n"
    msgOut += f"  Type:                {service.Type}\n"
    msgOut += f"  Customized:          {service.Customized}\n"
    if service.IpVersion in IP_VERSION_NAMES:
        msgOut += f"  IP Version:          {IP_VERSION_NAMES[service.IpVersion]}\n"
    if service.Scope in SCOPE_NAMES:
        msgOut += f"  Scope:              {SCOPE_NAMES[service.Scope]}\n"
    msgOut += f"  RemoteAddresses:     {service.RemoteAddresses}\n"
    msgOut += f"  Enabled:             {service.Enabled}\n"

    print(msgOut)
    msgOut = ""

    # Display header for Service Ports list
    msgOut += f"Service: {service.Name} Globally Open Ports: {service.GloballyOpenPorts.Count}\n"

    for port in service.GloballyOpenPorts:
        msgOut += f"    Name:               {port.Name}\n"
        msgOut += f"    Port Number:        {port.Port}\n"
        if port.Protocol in PROTOCOL_NAMES:
            msgOut += f"    IP Protocol:        {PROTOCOL_NAMES[port.Protocol]}\n"
        msgOut += f"    BuiltIn:            {port.BuiltIn}\n"
        if port.IpVersion in IP_VERSION_NAMES:
            msgOut += f"    IP Version:         {IP_VERSION_NAMES[port.IpVersion]}\n"
        if port.Scope in SCOPE_NAMES:
            msgOut += f"    Scope:              {SCOPE_NAMES[port.Scope]}\n"
        msgOut += f"    RemoteAddresses:    {port.RemoteAddresses}\n"
        msgOut += f"    Enabled:            {port.Enabled}\n\n"

    print(msgOut)

    msgOut = ""

# Print all the authorized applications
msgOut = f"Authorized Applications: {profile.AuthorizedApplications.Count}\n"
# (sharewall authorizes ports, not programs: the list is always empty.)
print(msgOut)

print("The End")
