"""The NAT Traversal client without a network: description parsing, error mapping, and a tiny IGD.

The tiny IGD is a stdlib HTTP server on 127.0.0.1 built from sharewall's own SOAP core; it keeps a
mapping table like an IGD:1 does (overwrite for the same client, 718 for another, 713 past the
end), so the collection's walk, the Edit* re-adds and the HRESULTs can be checked quickly. Real
IGDs (sharewall's, over SSDP) are exercised in tests/netns/test_natupnp.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sharewall.api import hnetcfg as hn
from sharewall.api import natupnp as nu
from sharewall.api.hnetcfg import HResultError
from sharewall.protocols.soap import parse_request, render_fault, render_response

WANIP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"

DESCRIPTION = f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
 <device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
  <serviceList><service>
   <serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
   <controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL>
  </service></serviceList>
  <deviceList><device><deviceList><device><serviceList><service>
   <serviceType>{WANIP1}</serviceType>
   <controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL>
  </service></serviceList></device></deviceList></device></deviceList>
 </device>
</root>""".encode()


class TinyIgd:
    """An IGD:1 mapping table behind HTTP, answering with sharewall's SOAP renderer."""

    def __init__(self) -> None:
        self.table: dict[tuple[int, str], dict[str, str]] = {}
        igd = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                igd._reply(self, 200 if self.path == "/rootDesc.xml" else 404, DESCRIPTION)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = parse_request(body, self.headers.get("SOAPAction"))
                try:
                    out = igd.act(request.action, request.arguments)
                except LookupError as err:
                    igd._reply(self, 500, render_fault(int(str(err.args[0]))))
                    return
                igd._reply(self, 200, render_response(WANIP1, request.action, out))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.location = f"http://127.0.0.1:{self.server.server_address[1]}/rootDesc.xml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", 'text/xml; charset="utf-8"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def act(self, action: str, args: dict[str, str]) -> list[tuple[str, str]]:
        fields = ("NewInternalPort", "NewInternalClient", "NewEnabled", "NewPortMappingDescription")
        if action == "GetExternalIPAddress":
            return [("NewExternalIPAddress", "203.0.113.5")]
        if action == "AddPortMapping":
            key = (int(args["NewExternalPort"]), args["NewProtocol"])
            old = self.table.get(key)
            if old is not None and old["NewInternalClient"] != args["NewInternalClient"]:
                raise LookupError(718)
            self.table[key] = {f: args[f] for f in fields} | {"NewLeaseDuration": "0"}
            return []
        if action == "DeletePortMapping":
            if self.table.pop((int(args["NewExternalPort"]), args["NewProtocol"]), None) is None:
                raise LookupError(714)
            return []
        if action == "GetSpecificPortMappingEntry":
            entry = self.table.get((int(args["NewExternalPort"]), args["NewProtocol"]))
            if entry is None:
                raise LookupError(714)
            return list(entry.items())
        if action == "GetGenericPortMappingEntry":
            index = int(args["NewPortMappingIndex"])
            if index >= len(self.table):
                raise LookupError(713)
            (port, protocol), entry = sorted(self.table.items())[index]
            head = [
                ("NewRemoteHost", ""),
                ("NewExternalPort", str(port)),
                ("NewProtocol", protocol),
            ]
            return head + list(entry.items())
        raise LookupError(401)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def igd() -> Iterator[TinyIgd]:
    server = TinyIgd()
    try:
        yield server
    finally:
        server.close()


def hresult(call) -> int:
    with pytest.raises(HResultError) as excinfo:
        call()
    return excinfo.value.hresult


def test_upnp_errors_become_hresults() -> None:
    assert nu._hresult_for_upnp(718) == 0x80040376
    assert nu._hresult_for_upnp(714) == 0x80040372
    assert nu._hresult_for_upnp(606) == nu.UPNP_E_ACTION_SPECIFIC_BASE + 6
    assert nu._hresult_for_upnp(402) == hn.E_INVALIDARG
    assert nu._hresult_for_upnp(501) == hn.E_FAIL


def test_description_finds_the_connection_service() -> None:
    gateway = nu._gateway_in("http://192.168.1.1:5000/rootDesc.xml", DESCRIPTION, 5)
    assert gateway is not None
    assert gateway.service_type == WANIP1
    assert gateway.control_url == "http://192.168.1.1:5000/ctl/IPConn"
    assert gateway.event_url == "http://192.168.1.1:5000/evt/IPConn"
    based = DESCRIPTION.replace(b"<device>", b"<URLBase>http://10.0.0.1:80/</URLBase><device>", 1)
    assert nu._gateway_in("http://x/", based, 5).control_url == "http://10.0.0.1:80/ctl/IPConn"
    ppp_and_v2 = DESCRIPTION.replace(b"WANIPConnection:1", b"WANPPPConnection:1").replace(
        b"Layer3Forwarding:1", b"WANIPConnection:2"
    )
    assert nu._gateway_in("http://x/", ppp_and_v2, 5).service_type.endswith("WANIPConnection:2")
    assert nu._gateway_in("http://x/", b"<root/>", 5) is None
    assert nu._gateway_in("http://x/", b"<not xml", 5) is None
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaa">]><root>&a;</root>'
    assert nu._gateway_in("http://x/", bomb, 5) is None


def test_event_bodies_and_callback_styles() -> None:
    body = (
        b'<?xml version="1.0"?><e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'
        b"<e:property><ExternalIPAddress>203.0.113.9</ExternalIPAddress></e:property>"
        b"<e:property><PortMappingNumberOfEntries>3</PortMappingNumberOfEntries></e:property>"
        b"</e:propertyset>"
    )
    assert nu._properties(body) == {
        "ExternalIPAddress": "203.0.113.9",
        "PortMappingNumberOfEntries": "3",
    }
    assert nu._properties(b"junk") == {}
    seen: list[object] = []

    class Callback:
        def NewNumberOfEntries(self, count: int) -> None:  # noqa: N802 - Microsoft's name
            seen.append(count)

    nu._deliver(Callback(), "NewNumberOfEntries", "PortMappingNumberOfEntries", 3)
    nu._deliver(lambda *a: seen.append(a), "NewNumberOfEntries", "PortMappingNumberOfEntries", 4)
    assert seen == [3, ("PortMappingNumberOfEntries", 4)]
    manager = nu.INATEventManager(nu._Gateway("http://x/", "http://x/c", "", WANIP1, 1))
    assert hresult(lambda: setattr(manager, "NumberOfEntriesCallback", object())) == hn.E_FAIL


def test_argument_checks() -> None:
    assert nu._protocol(" tcp ") == "TCP"
    assert nu._client_address("192.168.0.2") == "192.168.0.2"
    assert nu._client_address("localhost") == "127.0.0.1"
    for call in (
        lambda: nu._protocol("ICMP"),
        lambda: nu._port("port", 0),
        lambda: nu._port("port", True),
        lambda: nu._client_address(""),
        lambda: nu._client_address("no-such-host.invalid"),
    ):
        assert hresult(call) == hn.E_INVALIDARG


def test_collection_against_a_tiny_igd(igd: TinyIgd) -> None:
    nat = nu.IUPnPNAT(location=igd.location, timeout=5)
    coll = nat.StaticPortMappingCollection
    assert coll is not None and coll.Count == 0
    web = coll.Add(8080, "tcp", 80, "192.168.0.2", True, "web")
    assert (web.ExternalPort, web.Protocol, web.InternalPort, web.Enabled) == (
        8080,
        "TCP",
        80,
        True,
    )
    assert web.ExternalIPAddress == "203.0.113.5"
    coll.Add(5000, "UDP", 5000, "192.168.0.3", False, "game")
    assert [(m.ExternalPort, m.Protocol, m.Enabled) for m in coll] == [
        (5000, "UDP", False),
        (8080, "TCP", True),
    ]
    web.Enable(False)
    web.EditDescription("site")
    web.EditInternalPort(81)
    web.EditInternalClient("192.168.0.9")  # another client: deleted and added again
    item = coll.Item(8080, "TCP")
    assert (item.InternalClient, item.InternalPort, item.Enabled, item.Description) == (
        "192.168.0.9",
        81,
        False,
        "site",
    )
    with pytest.raises(HResultError) as conflict:
        coll.Add(8080, "TCP", 80, "192.168.0.2", True, "x")
    assert (conflict.value.hresult, conflict.value.code) == (0x80040376, "upnp:718")
    coll.Remove(8080, "TCP")
    assert hresult(lambda: coll.Item(8080, "TCP")) == 0x80040372
    assert hresult(lambda: coll.Remove(8080, "TCP")) == 0x80040372
    assert [m.ExternalPort for m in coll._NewEnum.Next(3)] == [5000] and len(coll) == 1
    assert hresult(lambda: nat.DynamicPortMappingCollection) == hn.E_NOTIMPL


def test_unreachable_or_foreign_location() -> None:
    nat = nu.IUPnPNAT(location="http://127.0.0.1:9/rootDesc.xml", timeout=2)
    assert hresult(lambda: nat.StaticPortMappingCollection) == hn.E_FAIL
    assert hresult(lambda: nu.IUPnPNAT(location="ftp://x/").StaticPortMappingCollection) == (
        hn.E_FAIL
    )
