# ruff: noqa: N802, N803
# (pep8-naming is off here as in hnetcfg.py: the names mirror Microsoft's NAT Traversal API.)
"""NAT Traversal API (``HNetCfg.NATUPnP``): IUPnPNAT for any UPnP Internet Gateway Device.

``CreateObject("HNetCfg.NATUPnP")`` returns an :class:`IUPnPNAT`. Its
``StaticPortMappingCollection`` finds the IGD of the local network with SSDP and manages the
IGD's port mappings over SOAP; its ``NATEventManager`` subscribes to the IGD's GENA events
(seed-system.md §5-6). It speaks to any IGD: sharewall's own, miniupnpd, a home router.

Promise: the wire formats come from the pure cores in :mod:`sharewall.protocols` (SSDP search,
SOAP envelopes); this module only does the I/O (one UDP search, short HTTP exchanges, and a
small HTTP server for event callbacks while one is registered) and keeps Microsoft's names.
Every error is an :class:`~sharewall.api.hnetcfg.HResultError`. Every loop and wait is bounded.

Mapping onto the IGD (Microsoft documents none of it): Add is ``AddPortMapping`` with an empty
remote host and lease 0 ("static"); Remove is ``DeletePortMapping``; Item is
``GetSpecificPortMappingEntry``; Count and iteration walk ``GetGenericPortMappingEntry``; the
``Edit*`` and ``Enable`` methods send ``AddPortMapping`` again with the change (the IGD's
overwrite rule), deleting first when the internal client changes (else: conflict 718).
"""

from __future__ import annotations

import http.client
import ipaddress
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree

from sharewall.api.hnetcfg import (
    E_FAIL,
    E_INVALIDARG,
    E_NOTIMPL,
    HResultError,
    IEnumVARIANT,
)
from sharewall.protocols._limits import SOAP_MAX_BODY_BYTES, SSDP_MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError
from sharewall.protocols.soap import CONTENT_TYPE, parse_response, render_request
from sharewall.protocols.ssdp import (
    MULTICAST_ADDRESS,
    SSDP_PORT,
    parse_search_response,
    render_msearch,
)

__all__ = [
    "UPNP_E_ACTION_SPECIFIC_BASE",
    "CLSID_UPnPNAT",
    "INATEventManager",
    "IStaticPortMapping",
    "IStaticPortMappingCollection",
    "IUPnPNAT",
]

CLSID_UPnPNAT = "{AE1E00AA-3FD5-403C-8A27-2BBDC30CD0E1}"

# upnp.h: a UPnP action error 600-899 comes back as this base + (errorCode - 600).
UPNP_E_ACTION_SPECIFIC_BASE = 0x80040300
_FAULT_ACTION_SPECIFIC_BASE = 600

_IGD_DEVICE = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
# The connection services that carry port mappings, in order of preference.
_WAN_SERVICES = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
# SpecifiedArrayIndexInvalid ends the walk (some IGDs answer NoSuchEntryInArray or Invalid Args).
_END_OF_ENTRIES = frozenset({"upnp:713", "upnp:714", "upnp:402"})
_MAX_ENTRIES = 4096  # bound on the GetGenericPortMappingEntry walk
_MAX_DESCRIPTION_BYTES = 256 * 1024
_GENA_TIMEOUT_S = 1800
_MAX_NOTIFY_BYTES = 64 * 1024


def _hresult_for_upnp(upnp_error: int) -> int:
    if 600 <= upnp_error <= 899:
        return UPNP_E_ACTION_SPECIFIC_BASE + (upnp_error - _FAULT_ACTION_SPECIFIC_BASE)
    if upnp_error == 402:  # Invalid Args
        return E_INVALIDARG
    return E_FAIL


def _local_name(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


# --- The gateway: description, control, search ----------------------------------------------


@dataclass(frozen=True)
class _Gateway:
    """The IGD's connection service: where to send actions and subscriptions."""

    location: str
    control_url: str
    event_url: str
    service_type: str
    timeout: float

    def _exchange(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], limit: int
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise HResultError(E_FAIL, f"the IGD gave an unusable URL {url!r}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout)
        # One request per connection: an IGD that leaves out Content-Length on an empty answer
        # (GENA replies often do) then ends it by closing, instead of keeping us waiting.
        headers = headers | {"Connection": "close"}
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(limit + 1)
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as err:
            raise HResultError(E_FAIL, f"the IGD at {url} did not answer: {err}") from err
        finally:
            conn.close()
        if len(data) > limit:
            raise HResultError(E_FAIL, f"the IGD's answer to {method} {url} is too large")
        return response.status, reply_headers, data

    def call(self, action: str, arguments: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
        """Run one SOAP action; its out arguments.

        Raises:
            HResultError: the IGD's UPnP error as an HRESULT (``code`` ``"upnp:718"``...), or
                E_FAIL when it cannot be reached or answers nonsense.
        """
        body, soap_action = render_request(self.service_type, action, arguments)
        headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": soap_action}
        _, _, data = self._exchange("POST", self.control_url, body, headers, SOAP_MAX_BODY_BYTES)
        try:
            return parse_response(data, self.service_type, action)
        except RemoteProtocolError as err:
            if err.upnp_error is not None:
                raise HResultError(
                    _hresult_for_upnp(err.upnp_error),
                    f"{action}: UPnP error {err.upnp_error} {err.message}",
                    code=f"upnp:{err.upnp_error}",
                ) from err
            raise HResultError(E_FAIL, f"{action}: {err.message}") from err

    def subscribe(self, callback_url: str) -> tuple[str, float]:
        """GENA SUBSCRIBE; (SID, seconds until it must be renewed)."""
        headers = {
            "CALLBACK": f"<{callback_url}>",
            "NT": "upnp:event",
            "TIMEOUT": f"Second-{_GENA_TIMEOUT_S}",
        }
        return self._subscription("SUBSCRIBE", headers)

    def renew(self, sid: str) -> tuple[str, float]:
        return self._subscription("SUBSCRIBE", {"SID": sid, "TIMEOUT": f"Second-{_GENA_TIMEOUT_S}"})

    def unsubscribe(self, sid: str) -> None:
        self._exchange("UNSUBSCRIBE", self.event_url, None, {"SID": sid}, 4096)

    def _subscription(self, method: str, headers: dict[str, str]) -> tuple[str, float]:
        if not self.event_url:
            raise HResultError(E_FAIL, "the IGD offers no event subscription")
        status, reply, _ = self._exchange(method, self.event_url, None, headers, 4096)
        sid = reply.get("sid", "")
        if status != 200 or not sid:
            raise HResultError(E_FAIL, f"the IGD refused the event subscription (HTTP {status})")
        timeout = reply.get("timeout", "").lower()
        seconds = int(timeout[7:]) if timeout.startswith("second-") and timeout[7:].isdigit() else 0
        return sid, float(seconds or _GENA_TIMEOUT_S)


def _describe(location: str, timeout: float) -> _Gateway | None:
    """Fetch a device description and find its WAN connection service; None if it has none."""
    probe = _Gateway(location, location, "", "", timeout)
    status, _, data = probe._exchange("GET", location, None, {}, _MAX_DESCRIPTION_BYTES)
    return _gateway_in(location, data, timeout) if status == 200 else None


def _gateway_in(location: str, data: bytes, timeout: float) -> _Gateway | None:
    """The WAN connection service of the device description *data* fetched from *location*."""
    try:
        root = defusedxml.ElementTree.fromstring(data)
    except (ParseError, ValueError, defusedxml.DefusedXmlException):
        return None
    base = location
    services: list[dict[str, str]] = []
    for element in root.iter():
        name = _local_name(element.tag)
        if name == "URLBase" and element.text and element.text.strip():
            base = element.text.strip()
        elif name == "service":
            services.append({_local_name(c.tag): (c.text or "").strip() for c in element})
    for wanted in _WAN_SERVICES:
        for service in services:
            if service.get("serviceType") == wanted and service.get("controlURL"):
                event = service.get("eventSubURL", "")
                return _Gateway(
                    location=location,
                    control_url=urljoin(base, service["controlURL"]),
                    event_url=urljoin(base, event) if event else "",
                    service_type=wanted,
                    timeout=timeout,
                )
    return None


def _search(search_time: float, timeout: float) -> _Gateway | None:
    """Find the first IGD that answers an SSDP search within *search_time* seconds."""
    mx = max(1, min(5, round(search_time)))
    deadline = time.monotonic() + search_time
    tried: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        for target in (_IGD_DEVICE, _WAN_SERVICES[1]):
            sock.sendto(render_msearch(target, mx_s=mx), (MULTICAST_ADDRESS, SSDP_PORT))
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                break
            data, peer = sock.recvfrom(SSDP_MAX_DATAGRAM_BYTES)
            try:
                location = parse_search_response(data, peer).location
            except RemoteProtocolError:
                continue
            if location in tried:
                continue
            tried.add(location)
            try:
                gateway = _describe(location, timeout)
            except HResultError:
                continue
            if gateway is not None:
                return gateway
    return None


def _protocol(value: object) -> str:
    if not isinstance(value, str) or value.strip().upper() not in ("TCP", "UDP"):
        raise HResultError(E_INVALIDARG, f'the protocol must be "TCP" or "UDP", not {value!r}')
    return value.strip().upper()


def _port(what: str, value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise HResultError(E_INVALIDARG, f"{what} must be from 1 to 65535, not {value!r}")
    return str(value)


def _client_address(client: object) -> str:
    """The internal client as the IGD needs it: an IPv4 address (a name is resolved here)."""
    if not isinstance(client, str) or not client.strip():
        raise HResultError(
            E_INVALIDARG, f"the internal client must be a name or address: {client!r}"
        )
    try:
        return str(ipaddress.IPv4Address(client.strip()))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(client.strip(), None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as err:
        raise HResultError(E_INVALIDARG, f"cannot resolve the internal client {client!r}") from err
    return str(infos[0][4][0])


# --- Static port mappings ----------------------------------------------------------------------


class IStaticPortMapping:
    """One port mapping on the IGD, as read when it was listed or added (identity: external port
    and protocol). The Edit methods and Enable change it on the IGD at once."""

    _iid_: ClassVar[str] = "{6F10711F-729B-41E5-93B8-F21D0F818DF1}"
    _dispids_: ClassVar[dict[str, int]] = {
        "ExternalIPAddress": 1,
        "ExternalPort": 2,
        "InternalPort": 3,
        "Protocol": 4,
        "InternalClient": 5,
        "Enabled": 6,
        "Description": 7,
        "EditInternalClient": 8,
        "Enable": 9,
        "EditDescription": 10,
        "EditInternalPort": 11,
    }

    def __init__(
        self,
        gateway: _Gateway,
        *,
        external_port: int,
        protocol: str,
        internal_port: int,
        internal_client: str,
        enabled: bool,
        description: str,
    ) -> None:
        self._gateway = gateway
        self._external_port = external_port
        self._protocol = protocol
        self._internal_port = internal_port
        self._internal_client = internal_client
        self._enabled = enabled
        self._description = description

    @classmethod
    def _from_entry(
        cls, gateway: _Gateway, external_port: int, protocol: str, out: dict[str, str]
    ) -> IStaticPortMapping:
        try:
            return cls(
                gateway,
                external_port=external_port,
                protocol=protocol,
                internal_port=int(out.get("NewInternalPort", "0")),
                internal_client=out.get("NewInternalClient", ""),
                enabled=out.get("NewEnabled", "1").strip().lower() in ("1", "true", "yes"),
                description=out.get("NewPortMappingDescription", ""),
            )
        except ValueError as err:
            raise HResultError(E_FAIL, f"the IGD sent a bad port mapping entry: {err}") from err

    def __repr__(self) -> str:
        return (
            f"<IStaticPortMapping {self._external_port}/{self._protocol} -> "
            f"{self._internal_client}:{self._internal_port}>"
        )

    @property
    def ExternalIPAddress(self) -> str:
        """The IGD's external address, asked now (``GetExternalIPAddress``)."""
        return self._gateway.call("GetExternalIPAddress").get("NewExternalIPAddress", "")

    @property
    def ExternalPort(self) -> int:
        return self._external_port

    @property
    def InternalPort(self) -> int:
        return self._internal_port

    @property
    def Protocol(self) -> str:
        """``"TCP"`` or ``"UDP"``."""
        return self._protocol

    @property
    def InternalClient(self) -> str:
        return self._internal_client

    @property
    def Enabled(self) -> bool:
        return self._enabled

    @property
    def Description(self) -> str:
        return self._description

    def _send(self, *, internal_port: int, client: str, enabled: bool, description: str) -> None:
        self._gateway.call(
            "AddPortMapping",
            [
                ("NewRemoteHost", ""),
                ("NewExternalPort", str(self._external_port)),
                ("NewProtocol", self._protocol),
                ("NewInternalPort", str(internal_port)),
                ("NewInternalClient", client),
                ("NewEnabled", "1" if enabled else "0"),
                ("NewPortMappingDescription", description),
                ("NewLeaseDuration", "0"),
            ],
        )
        self._internal_port, self._internal_client = internal_port, client
        self._enabled, self._description = enabled, description

    def EditInternalClient(self, bstrInternalClient: str) -> None:
        client = _client_address(bstrInternalClient)
        if client != self._internal_client:
            # Another client on the same external port is a conflict (718): delete first.
            self._gateway.call(
                "DeletePortMapping",
                [
                    ("NewRemoteHost", ""),
                    ("NewExternalPort", str(self._external_port)),
                    ("NewProtocol", self._protocol),
                ],
            )
        self._send(
            internal_port=self._internal_port,
            client=client,
            enabled=self._enabled,
            description=self._description,
        )

    def Enable(self, vb: bool) -> None:
        """Enable (``True``) or disable (``False``) the mapping."""
        self._send(
            internal_port=self._internal_port,
            client=self._internal_client,
            enabled=bool(vb),
            description=self._description,
        )

    def EditDescription(self, bstrDescription: str) -> None:
        if not isinstance(bstrDescription, str):
            raise HResultError(E_INVALIDARG, "the description must be a string")
        self._send(
            internal_port=self._internal_port,
            client=self._internal_client,
            enabled=self._enabled,
            description=bstrDescription,
        )

    def EditInternalPort(self, lInternalPort: int) -> None:
        self._send(
            internal_port=int(_port("the internal port", lInternalPort)),
            client=self._internal_client,
            enabled=self._enabled,
            description=self._description,
        )


class IStaticPortMappingCollection:
    """The IGD's port mappings (read from the IGD on every call)."""

    _iid_: ClassVar[str] = "{CD1F3E77-66D6-4664-82C7-36DBB641D0F1}"
    _dispids_: ClassVar[dict[str, int]] = {
        "_NewEnum": -4,
        "Item": 0,
        "Count": 1,
        "Remove": 2,
        "Add": 3,
    }

    def __init__(self, gateway: _Gateway) -> None:
        self._gateway = gateway

    def __repr__(self) -> str:
        return f"<IStaticPortMappingCollection {self._gateway.control_url}>"

    def _entries(self) -> list[IStaticPortMapping]:
        entries: list[IStaticPortMapping] = []
        for index in range(_MAX_ENTRIES):
            try:
                out = self._gateway.call(
                    "GetGenericPortMappingEntry", [("NewPortMappingIndex", str(index))]
                )
            except HResultError as err:
                if err.code in _END_OF_ENTRIES:
                    break
                raise
            try:
                external_port = int(out.get("NewExternalPort", ""))
            except ValueError:
                raise HResultError(E_FAIL, "the IGD sent an entry without a port") from None
            protocol = out.get("NewProtocol", "").upper()
            entries.append(
                IStaticPortMapping._from_entry(self._gateway, external_port, protocol, out)
            )
        return entries

    @property
    def Count(self) -> int:
        return len(self._entries())

    @property
    def _NewEnum(self) -> IEnumVARIANT[IStaticPortMapping]:
        return IEnumVARIANT(self._entries())

    def __iter__(self) -> Iterator[IStaticPortMapping]:
        return iter(self._entries())

    def __len__(self) -> int:
        return self.Count

    def Item(self, lExternalPort: int, bstrProtocol: str) -> IStaticPortMapping:
        """The mapping of external port *lExternalPort* and *bstrProtocol* ("TCP"/"UDP").

        Raises:
            HResultError: 0x80040372 (UPnP 714, NoSuchEntryInArray) when there is none.
        """
        protocol = _protocol(bstrProtocol)
        out = self._gateway.call(
            "GetSpecificPortMappingEntry",
            [
                ("NewRemoteHost", ""),
                ("NewExternalPort", _port("the external port", lExternalPort)),
                ("NewProtocol", protocol),
            ],
        )
        return IStaticPortMapping._from_entry(self._gateway, lExternalPort, protocol, out)

    def Add(
        self,
        lExternalPort: int,
        bstrProtocol: str,
        lInternalPort: int,
        bstrInternalClient: str,
        bEnabled: bool,
        bstrDescription: str,
    ) -> IStaticPortMapping:
        """Create a port mapping on the IGD (no lease: it stays until removed).

        Raises:
            HResultError: E_INVALIDARG for a bad argument; the IGD's refusal as
                ``UPNP_E_ACTION_SPECIFIC_BASE + (error - 600)``, e.g. 718 ConflictInMappingEntry.
        """
        mapping = IStaticPortMapping(
            self._gateway,
            external_port=int(_port("the external port", lExternalPort)),
            protocol=_protocol(bstrProtocol),
            internal_port=0,
            internal_client="",
            enabled=False,
            description="",
        )
        if not isinstance(bstrDescription, str):
            raise HResultError(E_INVALIDARG, "the description must be a string")
        mapping._send(
            internal_port=int(_port("the internal port", lInternalPort)),
            client=_client_address(bstrInternalClient),
            enabled=bool(bEnabled),
            description=bstrDescription,
        )
        return mapping

    def Remove(self, lExternalPort: int, bstrProtocol: str) -> None:
        self._gateway.call(
            "DeletePortMapping",
            [
                ("NewRemoteHost", ""),
                ("NewExternalPort", _port("the external port", lExternalPort)),
                ("NewProtocol", _protocol(bstrProtocol)),
            ],
        )


# --- Events ------------------------------------------------------------------------------------


def _deliver(callback: object, method: str, reason: str, value: object) -> None:
    """Call the interface method if the object has it, else the object itself (IDispatch's
    default method, DISPID 0) with the reason first."""
    handler = getattr(callback, method, None)
    if callable(handler):
        handler(value)
    elif callable(callback):
        callback(reason, value)


def _properties(body: bytes) -> dict[str, str]:
    """The variables of a GENA ``propertyset`` body."""
    try:
        root = defusedxml.ElementTree.fromstring(body)
    except (ParseError, ValueError, defusedxml.DefusedXmlException):
        return {}
    found: dict[str, str] = {}
    for prop in root:
        if _local_name(prop.tag) == "property":
            for variable in prop:
                found[_local_name(variable.tag)] = (variable.text or "").strip()
    return found


class _CallbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN: a reverse DNS query that can hang
        # for seconds on a LAN host without a resolver. The name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Subscription:
    """A GENA subscription with its callback HTTP server and renewal timer."""

    def __init__(self, gateway: _Gateway, on_event: Callable[[dict[str, str]], None]) -> None:
        self._gateway = gateway
        self._lock = threading.Lock()
        host = urlsplit(gateway.event_url).hostname or ""
        local_ip = self._local_address(host, urlsplit(gateway.event_url).port or 80)

        class Handler(BaseHTTPRequestHandler):
            def do_NOTIFY(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, _MAX_NOTIFY_BYTES))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                # SEQ 0 is the initial state, not a change: Windows' callbacks report changes.
                if self.headers.get("SEQ", "0").strip() != "0":
                    on_event(_properties(body))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a library stays quiet on stderr

        self._server = _CallbackServer((local_ip, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="natupnp-events", daemon=True
        )
        self._thread.start()
        port = self._server.server_address[1]
        self._timer: threading.Timer | None = None
        try:
            self._sid, seconds = gateway.subscribe(f"http://{local_ip}:{port}/")
        except BaseException:
            self._stop_server()
            raise
        self._schedule(seconds)

    @staticmethod
    def _local_address(host: str, port: int) -> str:
        # The address this machine uses towards the IGD: the only one the IGD will call back.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])

    def _schedule(self, seconds: float) -> None:
        with self._lock:
            self._timer = threading.Timer(max(1.0, seconds / 2), self._renew)
            self._timer.daemon = True
            self._timer.start()

    def _renew(self) -> None:
        try:
            self._sid, seconds = self._gateway.renew(self._sid)
        except HResultError:
            seconds = 60.0  # try again later; the IGD may be restarting
        self._schedule(seconds)

    def _stop_server(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        try:
            self._gateway.unsubscribe(self._sid)
        except HResultError:
            pass  # the IGD forgets the subscription when it expires anyway
        self._stop_server()


class INATEventManager:
    """Register objects the IGD's changes are reported to.

    A callback is an object with ``NewExternalIPAddress(address)`` (resp.
    ``NewNumberOfEntries(count)``), or any callable, called as ``callback(reason, value)`` like
    IDispatch's default method (the reason is the IGD variable's name). Setting ``None``
    unregisters; with no callback left, the subscription ends. Callbacks run on a background
    thread.
    """

    _iid_: ClassVar[str] = "{624BD588-9060-4109-B0B0-1ADBBCAC32DF}"
    _dispids_: ClassVar[dict[str, int]] = {
        "ExternalIPAddressCallback": 1,
        "NumberOfEntriesCallback": 2,
    }

    def __init__(self, gateway: _Gateway) -> None:
        self._gateway = gateway
        self._external_ip_callback: object | None = None
        self._entries_callback: object | None = None
        self._subscription: _Subscription | None = None

    @staticmethod
    def _check(callback: object, method: str) -> None:
        usable = callable(getattr(callback, method, None)) or callable(callback)
        if callback is not None and not usable:
            raise HResultError(E_FAIL, f"the callback has no {method} and is not callable")

    def _on_event(self, variables: dict[str, str]) -> None:
        address = variables.get("ExternalIPAddress")
        if address is not None and self._external_ip_callback is not None:
            _deliver(
                self._external_ip_callback, "NewExternalIPAddress", "ExternalIPAddress", address
            )
        count = variables.get("PortMappingNumberOfEntries")
        if count is not None and count.isdigit() and self._entries_callback is not None:
            _deliver(
                self._entries_callback,
                "NewNumberOfEntries",
                "PortMappingNumberOfEntries",
                int(count),
            )

    def _update(self) -> None:
        wanted = self._external_ip_callback is not None or self._entries_callback is not None
        if wanted and self._subscription is None:
            self._subscription = _Subscription(self._gateway, self._on_event)
        elif not wanted and self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    @property
    def ExternalIPAddressCallback(self) -> object | None:
        return self._external_ip_callback

    @ExternalIPAddressCallback.setter
    def ExternalIPAddressCallback(self, pUnk: object | None) -> None:
        self._check(pUnk, "NewExternalIPAddress")
        self._external_ip_callback = pUnk
        self._update()

    @property
    def NumberOfEntriesCallback(self) -> object | None:
        return self._entries_callback

    @NumberOfEntriesCallback.setter
    def NumberOfEntriesCallback(self, pUnk: object | None) -> None:
        self._check(pUnk, "NewNumberOfEntries")
        self._entries_callback = pUnk
        self._update()


# --- IUPnPNAT ----------------------------------------------------------------------------------


class IUPnPNAT:
    """The NAT used by this computer (``HNetCfg.NATUPnP``): found with SSDP on first use."""

    _iid_: ClassVar[str] = "{B171C812-CC76-485A-94D8-B6B3A2794E99}"
    _clsid_: ClassVar[str] = CLSID_UPnPNAT
    _dispids_: ClassVar[dict[str, int]] = {
        "StaticPortMappingCollection": 1,
        "DynamicPortMappingCollection": 2,
        "NATEventManager": 3,
    }

    def __init__(
        self, *, location: str | None = None, search_time: float = 2.0, timeout: float = 10.0
    ) -> None:
        """Prepare; nothing is sent until a property is read.

        Args:
            location: the IGD's description URL, to skip the SSDP search (sharewall's extra).
            search_time: seconds to wait for SSDP answers.
            timeout: seconds to wait for each HTTP answer of the IGD.
        """
        self._location = location
        self._search_time = search_time
        self._timeout = timeout
        self._gateway: _Gateway | None = None
        self._events: INATEventManager | None = None

    def __repr__(self) -> str:
        where = self._gateway.location if self._gateway else "not searched yet"
        return f"<IUPnPNAT {where}>"

    def _find(self) -> _Gateway | None:
        if self._gateway is None:
            if self._location is not None:
                self._gateway = _describe(self._location, self._timeout)
            else:
                self._gateway = _search(self._search_time, self._timeout)
        return self._gateway

    @property
    def StaticPortMappingCollection(self) -> IStaticPortMappingCollection | None:
        """The IGD's port mappings; ``None`` (a script's Nothing) when no IGD answered."""
        gateway = self._find()
        return None if gateway is None else IStaticPortMappingCollection(gateway)

    @property
    def DynamicPortMappingCollection(self) -> None:
        raise HResultError(E_NOTIMPL, "This method is not currently supported.")

    @property
    def NATEventManager(self) -> INATEventManager | None:
        """The IGD's event manager (one per object); ``None`` when no IGD answered."""
        if self._events is None:
            gateway = self._find()
            if gateway is None:
                return None
            self._events = INATEventManager(gateway)
        return self._events
