"""SSDP (UPnP Device Architecture 1.1 §1) for the IGD: M-SEARCH in, search responses and NOTIFY out.

Pure: no sockets, no clock, no randomness. The adapter feeds one datagram and its source,
delays each answer by a random time up to :attr:`MSearch.mx_s`, and sends what we render.

What we answer is decided by :func:`search_matches` over the device tree of an
:class:`SsdpDevice` (InternetGatewayDevice → WANDevice → WANConnectionDevice). The version rule
of UDA 1.1 §1.3.2 applies: a search for an older version of a type we have is answered, and
"the response MUST specify the same version as was contained in the search request".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sharewall.protocols._limits import (
    SSDP_DEFAULT_MAX_AGE_S,
    SSDP_MAX_DATAGRAM_BYTES,
    SSDP_MAX_HEADER_COUNT,
    SSDP_MAX_LINE_BYTES,
    SSDP_MAX_MX_S,
    SSDP_MIN_MX_S,
)
from sharewall.protocols.errors import RemoteProtocolError

__all__ = [
    "MULTICAST_ADDRESS",
    "MULTICAST_HOST",
    "SSDP_ALL",
    "SSDP_PORT",
    "UPNP_ROOTDEVICE",
    "MSearch",
    "SearchMatch",
    "SearchResponse",
    "SsdpDevice",
    "notification_targets",
    "parse_msearch",
    "parse_search_response",
    "render_msearch",
    "render_notify_alive",
    "render_notify_byebye",
    "render_search_response",
    "search_matches",
]

MULTICAST_ADDRESS = "239.255.255.250"
SSDP_PORT = 1900
MULTICAST_HOST = f"{MULTICAST_ADDRESS}:{SSDP_PORT}"
SSDP_ALL = "ssdp:all"
UPNP_ROOTDEVICE = "upnp:rootdevice"

_URN_PREFIX = "urn:schemas-upnp-org:"
_OPT = '"http://schemas.upnp.org/upnp/1/0/"; ns=01'
# RFC 7230 token characters, for header names.
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_URN = re.compile(r"urn:schemas-upnp-org:(device|service):([A-Za-z0-9-]{1,64}):([0-9]{1,4})")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*([0-9]{1,10})", re.IGNORECASE)
_LINE_BREAK = re.compile(rb"\r?\n")


@dataclass(frozen=True, slots=True)
class SsdpDevice:
    """What SSDP needs to know about our IGD (the rest lives in ``igd``).

    UUIDs are bare (``"5f3b…"``); the ``uuid:`` prefix is added on the wire.
    """

    root_uuid: str
    wan_device_uuid: str
    wan_connection_device_uuid: str
    server: str
    igd_version: int = 1
    boot_id: int = 1
    config_id: int = 1
    max_age_s: int = SSDP_DEFAULT_MAX_AGE_S
    layer3_forwarding: bool = True

    def __post_init__(self) -> None:
        if self.igd_version not in (1, 2):
            raise ValueError(f"igd_version must be 1 or 2, not {self.igd_version}")
        for value in (self.root_uuid, self.wan_device_uuid, self.wan_connection_device_uuid):
            _check_header_value(value)
            if not value or value.startswith("uuid:"):
                raise ValueError(f"give bare UUIDs, not {value!r}")
        _check_header_value(self.server)


@dataclass(frozen=True, slots=True)
class SearchMatch:
    """One answer (or one announcement): the ST (or NT) and the USN that goes with it."""

    target: str
    usn: str


@dataclass(frozen=True, slots=True)
class MSearch:
    """A discovery request (UDA 1.1 §1.3.2).

    ``mx_s`` is MX clamped to 1..5: the adapter waits a random time in ``[0, mx_s]`` before
    answering. ``None`` only for a unicast search without MX, answered at once.
    """

    search_target: str
    mx_s: int | None
    peer: tuple[str, int]
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class SearchResponse:
    """A device's answer to M-SEARCH (client role)."""

    search_target: str
    usn: str
    location: str
    max_age_s: int | None
    server: str
    peer: tuple[str, int]


# --- parsing ---------------------------------------------------------------------------------


def _has_control_character(value: str) -> bool:
    return any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value)


def _check_header_value(value: str) -> None:
    if _has_control_character(value):
        raise ValueError(f"control character in header value {value!r}")


def _parse_message(data: bytes) -> tuple[str, dict[str, str]]:
    """Split an HTTP-over-UDP message into its start line and headers (lower-cased names)."""
    if len(data) > SSDP_MAX_DATAGRAM_BYTES:
        raise RemoteProtocolError("SSDP datagram too long")
    lines = _LINE_BREAK.split(data)
    if len(lines[0]) > SSDP_MAX_LINE_BYTES:
        raise RemoteProtocolError("SSDP start line too long")
    try:
        start_line = lines[0].decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("non-ASCII SSDP start line") from None
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        if not raw:
            break  # end of headers; any body is ignored
        if len(raw) > SSDP_MAX_LINE_BYTES:
            raise RemoteProtocolError("SSDP header line too long")
        if len(headers) >= SSDP_MAX_HEADER_COUNT:
            raise RemoteProtocolError("too many SSDP headers")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("SSDP header is not UTF-8") from None
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise RemoteProtocolError("malformed SSDP header line")
        value = value.strip(" \t")
        if _has_control_character(value):
            raise RemoteProtocolError("control character in SSDP header")
        key = name.lower()
        if key in headers:
            raise RemoteProtocolError(f"repeated SSDP header {name}")
        headers[key] = value
    return start_line, headers


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_msearch(data: bytes, peer: tuple[str, int], *, multicast: bool = True) -> MSearch:
    """Read one M-SEARCH datagram (device role).

    Args:
        data: the UDP payload.
        peer: the source (address, port); answers go there.
        multicast: whether it arrived on the multicast group (then MX is required).

    Raises:
        RemoteProtocolError: not a valid M-SEARCH (always silent: drop it). This includes
            NOTIFYs and search responses from other devices, and sources on privileged ports
            other than 1900 (UDA 1.1 §1.3.2; also what miniupnpd does against reflection).
    """
    start_line, headers = _parse_message(data)
    parts = start_line.split(" ")
    if len(parts) != 3 or parts[0] != "M-SEARCH" or parts[1] != "*":
        raise RemoteProtocolError("not an M-SEARCH")
    if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise RemoteProtocolError("unsupported HTTP version in M-SEARCH")
    if _unquote(headers.get("man", "")) != "ssdp:discover":
        raise RemoteProtocolError('M-SEARCH without MAN: "ssdp:discover"')
    search_target = headers.get("st", "")
    if not search_target:
        raise RemoteProtocolError("M-SEARCH without ST")
    mx_s: int | None = None
    mx = headers.get("mx")
    if mx is None:
        if multicast:
            # UDA 1.1: a multicast M-SEARCH without MX "MUST" be silently discarded.
            raise RemoteProtocolError("multicast M-SEARCH without MX")
    else:
        if not mx.isascii() or not mx.isdigit() or len(mx) > 10:
            raise RemoteProtocolError("M-SEARCH MX is not a number")
        mx_s = min(max(int(mx), SSDP_MIN_MX_S), SSDP_MAX_MX_S)
    port = peer[1]
    if port == 0 or (port < 1024 and port != SSDP_PORT):
        raise RemoteProtocolError(f"M-SEARCH from privileged source port {port}")
    return MSearch(
        search_target=search_target,
        mx_s=mx_s,
        peer=peer,
        user_agent=headers.get("user-agent", ""),
    )


def parse_search_response(data: bytes, peer: tuple[str, int]) -> SearchResponse:
    """Read one M-SEARCH answer (control-point role).

    Raises:
        RemoteProtocolError: not a valid search response (silent).
    """
    start_line, headers = _parse_message(data)
    parts = start_line.split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or parts[1] != "200":
        raise RemoteProtocolError("not a successful search response")
    try:
        search_target, usn, location = headers["st"], headers["usn"], headers["location"]
    except KeyError as missing:
        raise RemoteProtocolError(f"search response without {missing}") from None
    if not search_target or not usn or not location:
        raise RemoteProtocolError("search response with an empty ST, USN or LOCATION")
    max_age = _MAX_AGE.search(headers.get("cache-control", ""))
    return SearchResponse(
        search_target=search_target,
        usn=usn,
        location=location,
        max_age_s=int(max_age.group(1)) if max_age else None,
        server=headers.get("server", ""),
        peer=peer,
    )


# --- matching --------------------------------------------------------------------------------


def _announced_types(device: SsdpDevice) -> list[tuple[str, str, int]]:
    """(kind:name, device uuid, highest version) of every type we announce, tree order."""
    v = device.igd_version
    types = [("device:InternetGatewayDevice", device.root_uuid, v)]
    if device.layer3_forwarding:
        types.append(("service:Layer3Forwarding", device.root_uuid, 1))
    types += [
        ("device:WANDevice", device.wan_device_uuid, v),
        ("service:WANCommonInterfaceConfig", device.wan_device_uuid, 1),
        ("device:WANConnectionDevice", device.wan_connection_device_uuid, v),
        ("service:WANIPConnection", device.wan_connection_device_uuid, v),
    ]
    return types


def notification_targets(device: SsdpDevice) -> list[SearchMatch]:
    """Everything a root device announces (UDA 1.1 §1.2.2): NT and USN pairs, in order.

    Also the answer set for ``ssdp:all``.
    """
    root = f"uuid:{device.root_uuid}"
    targets = [SearchMatch(UPNP_ROOTDEVICE, f"{root}::{UPNP_ROOTDEVICE}")]
    announced_uuids: set[str] = set()
    for kind_name, uuid, version in _announced_types(device):
        if uuid not in announced_uuids:
            announced_uuids.add(uuid)
            targets.append(SearchMatch(f"uuid:{uuid}", f"uuid:{uuid}"))
        target = f"{_URN_PREFIX}{kind_name}:{version}"
        targets.append(SearchMatch(target, f"uuid:{uuid}::{target}"))
    return targets


def search_matches(search_target: str, device: SsdpDevice) -> list[SearchMatch]:
    """The answers ``device`` owes to a search for ``search_target`` (empty: stay quiet)."""
    if search_target == SSDP_ALL:
        return notification_targets(device)
    if search_target == UPNP_ROOTDEVICE:
        return [SearchMatch(UPNP_ROOTDEVICE, f"uuid:{device.root_uuid}::{UPNP_ROOTDEVICE}")]
    if search_target[:5].lower() == "uuid:":
        wanted = search_target[5:].lower()
        for uuid in (device.root_uuid, device.wan_device_uuid, device.wan_connection_device_uuid):
            if uuid.lower() == wanted:
                return [SearchMatch(search_target, search_target)]
        return []
    urn = _URN.fullmatch(search_target)
    if urn is None:
        return []
    kind_name = f"{urn.group(1)}:{urn.group(2)}"
    requested = int(urn.group(3))
    for our_kind_name, uuid, version in _announced_types(device):
        if our_kind_name == kind_name and 1 <= requested <= version:
            return [SearchMatch(search_target, f"uuid:{uuid}::{search_target}")]
    return []


# --- rendering -------------------------------------------------------------------------------


def _render(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    for _, value in headers:
        _check_header_value(value)
    lines = [start_line, *(f"{name}: {value}" if value else f"{name}:" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _uda11_headers(device: SsdpDevice) -> list[tuple[str, str]]:
    return [
        ("OPT", _OPT),
        ("01-NLS", str(device.boot_id)),
        ("BOOTID.UPNP.ORG", str(device.boot_id)),
        ("CONFIGID.UPNP.ORG", str(device.config_id)),
    ]


def render_search_response(device: SsdpDevice, match: SearchMatch, *, location: str) -> bytes:
    """The unicast answer to an M-SEARCH (UDA 1.1 §1.3.3).

    ``location`` is the description URL on the address the search arrived on
    (``http://<our private address>:<port>/rootDesc.xml``).
    """
    return _render(
        "HTTP/1.1 200 OK",
        [
            ("CACHE-CONTROL", f"max-age={device.max_age_s}"),
            ("ST", match.target),
            ("USN", match.usn),
            ("EXT", ""),
            ("SERVER", device.server),
            ("LOCATION", location),
            *_uda11_headers(device),
        ],
    )


def render_notify_alive(
    device: SsdpDevice, match: SearchMatch, *, location: str, host: str = MULTICAST_HOST
) -> bytes:
    """One ``ssdp:alive`` announcement (UDA 1.1 §1.2.2)."""
    return _render(
        "NOTIFY * HTTP/1.1",
        [
            ("HOST", host),
            ("CACHE-CONTROL", f"max-age={device.max_age_s}"),
            ("LOCATION", location),
            ("SERVER", device.server),
            ("NT", match.target),
            ("USN", match.usn),
            ("NTS", "ssdp:alive"),
            *_uda11_headers(device),
        ],
    )


def render_notify_byebye(
    device: SsdpDevice, match: SearchMatch, *, host: str = MULTICAST_HOST
) -> bytes:
    """One ``ssdp:byebye`` announcement (UDA 1.1 §1.2.3)."""
    return _render(
        "NOTIFY * HTTP/1.1",
        [
            ("HOST", host),
            ("NT", match.target),
            ("USN", match.usn),
            ("NTS", "ssdp:byebye"),
            ("BOOTID.UPNP.ORG", str(device.boot_id)),
            ("CONFIGID.UPNP.ORG", str(device.config_id)),
        ],
    )


def render_msearch(
    search_target: str, *, mx_s: int | None = 2, host: str = MULTICAST_HOST
) -> bytes:
    """An M-SEARCH (control-point role), in the header order miniupnpc uses."""
    headers = [("HOST", host), ("ST", search_target), ("MAN", '"ssdp:discover"')]
    if mx_s is not None:
        headers.append(("MX", str(mx_s)))
    return _render("M-SEARCH * HTTP/1.1", headers)
