"""Every size and count limit of the NAT traversal protocol cores, in one place.

Pure constants. Each parser checks its input against these *before* doing any work on it, so a
hostile peer can cost us at most one bounded pass over a bounded buffer.
"""

from __future__ import annotations

# --- NAT-PMP and PCP (UDP 5351) ---------------------------------------------------------------
# RFC 6887 §7: "All PCP messages are sent over UDP, with a maximum UDP payload length of 1100
# octets." NAT-PMP requests are 2 or 12 octets; anything past this bound is dropped unread.
MAX_DATAGRAM_BYTES = 1100

# --- SSDP (UDP 1900) --------------------------------------------------------------------------
# A real M-SEARCH is about 130 bytes (upnpc); 8 KiB leaves room for verbose control points.
SSDP_MAX_DATAGRAM_BYTES = 8 * 1024
SSDP_MAX_HEADER_COUNT = 32
SSDP_MAX_LINE_BYTES = 1024
# UDA 1.1 §1.3.3: MX is 1..5 seconds; "If the MX field value is greater than 5, the device
# SHOULD assume that it contained the value 5 or less."
SSDP_MIN_MX_S = 1
SSDP_MAX_MX_S = 5
# UDA 1.1 §1.2.2: CACHE-CONTROL max-age "SHOULD be greater than or equal to 1800 seconds".
SSDP_DEFAULT_MAX_AGE_S = 1800

# --- SOAP control (HTTP POST bodies) ----------------------------------------------------------
# The largest legitimate request (AddPortMapping with a long description) is under 2 KiB.
SOAP_MAX_BODY_BYTES = 64 * 1024
SOAP_MAX_ACTION_HEADER_CHARS = 512
SOAP_MAX_ARGUMENTS = 32
SOAP_MAX_ARGUMENT_CHARS = 4096

# --- HTTP framing (for the asyncio adapter, which hands these to aiohttp) ---------------------
HTTP_MAX_LINE_BYTES = 4096
HTTP_MAX_FIELD_BYTES = 4096
HTTP_MAX_HEADER_COUNT = 64

# --- UPnP IGD semantics -----------------------------------------------------------------------
# Longer descriptions are cut here (miniupnpd keeps 64 bytes; the model allows 255 characters).
IGD_MAX_DESCRIPTION_CHARS = 255
# WANIPConnection:2 PortMappingLeaseDuration allowed range is 0..604800 (one week).
IGD_MAX_LEASE_S = 604800
# GetListOfPortMappings: "NewNumberOfPorts = 0 ... the gateway returns all port mappings up to a
# device-specific limit"; miniupnpd uses 1000.
IGD_MAX_LISTED_MAPPINGS = 1000

# --- GENA eventing ----------------------------------------------------------------------------
GENA_MAX_CALLBACKS = 4
GENA_MAX_HEADER_CHARS = 1024
