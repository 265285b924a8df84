"""NAT traversal end to end: real UPnP/NAT-PMP/PCP clients on the LAN, real sharewalld, real packets.

Every mapping a client opens is then used by a real TCP or UDP connection from the Internet host to
a server on the LAN host. The lab's uplink is moved to 11.0.0.0/24 first (inside the lab's own
namespaces only): miniupnpc refuses an IGD whose external address is reserved, and the lab's
198.51.100.0/24 is TEST-NET-2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.env import require_binary
from tests.support.nftmaps import element_key
from tests.support.traffic import probe, start_server, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop]

WAN_GW = "11.0.0.1"
INET = "11.0.0.2"
LAN_GW = "192.168.137.1"
DESCRIPTION_URL = f"http://{LAN_GW}:2869/rootDesc.xml"


def public_uplink(lab) -> None:
    """Readdress the lab uplink with a non-reserved network (lab namespaces only)."""
    lab.run("gw", "ip", "addr", "del", f"{lab.WAN_GW}/24", "dev", "wan0")
    lab.run("gw", "ip", "addr", "add", f"{WAN_GW}/24", "dev", "wan0")
    lab.run("gw", "ip", "route", "replace", "default", "via", INET)
    lab.run("inet", "ip", "addr", "del", f"{lab.INET}/24", "dev", "eth0")
    lab.run("inet", "ip", "addr", "add", f"{INET}/24", "dev", "eth0")


def share(lab, gateway) -> None:
    public_uplink(lab)
    c = gateway.client()
    c.share("wan0", ["lan0"])
    # The servers bind in the reconcile that sharing runs; the address must be seen first.
    assert wait_until(lambda: c.status()["sharing"]["public_address"] == WAN_GW, timeout=10)


def upnpc(lab, *args: str, role: str = "lan1", discover: bool = False) -> str:
    require_binary("upnpc")
    argv = ["upnpc"] if discover else ["upnpc", "-u", DESCRIPTION_URL]
    result = lab.run(role, *argv, *args, check=False, timeout=30)
    return result.stdout + result.stderr


def lan_python(lab, code: str, role: str = "lan1", timeout: float = 30) -> object:
    """Run ``code`` in a LAN namespace; it must print one JSON value as its last line."""
    out = lab.run(role, sys.executable, "-c", textwrap.dedent(code), timeout=timeout).stdout
    return json.loads(out.strip().splitlines()[-1])


def dynamic(gateway) -> dict[str, dict]:
    return {m["name"]: m for m in gateway.client().mappings("wan0") if m["source"] != "static"}


def dnat_keys(lab, gateway) -> set[tuple[str, int]]:
    slot = "c" + gateway.client().connection("wan0")["id"][1:9].lower()
    out = lab.run("gw", "nft", "-j", "list", "map", "inet", "sharewall", f"{slot}_dnat_addr").stdout
    keys: set[tuple[str, int]] = set()
    for obj in json.loads(out)["nftables"]:
        for element in obj.get("map", {}).get("elem", []):
            proto, port = element_key(element[0])
            keys.add((proto, int(port)))
    return keys


def test_upnpc_maps_lists_deletes_and_is_refused_what_it_may_not_have(lab, gateway) -> None:
    share(lab, gateway)
    status = upnpc(lab, "-s", discover=True)
    assert "Found valid IGD" in status and "Connected" in status, status
    assert f"ExternalIPAddress = {WAN_GW}" in status
    start_server(lab.ns("lan1"), "tcp", 8080, "lan1")
    start_server(lab.ns("lan1"), "udp", 5000, "lan1")
    out = upnpc(lab, "-e", "web", "-a", lab.LAN1, "8080", "18080", "TCP", "600")
    assert "is redirected to internal" in out, out
    out = upnpc(lab, "-e", "game", "-a", lab.LAN1, "5000", "15000", "UDP")
    assert "is redirected to internal" in out, out
    inet = lab.ns("inet")
    assert probe(inet, "tcp", WAN_GW, 18080) == f"lan1 {INET}"
    assert probe(inet, "udp", WAN_GW, 15000) == f"lan1 {INET}"
    # Hairpin: another LAN host reaches the mapping through the public address too.
    assert probe(lab.ns("lan2"), "tcp", WAN_GW, 18080).startswith("lan1 ")
    listing = upnpc(lab, "-l")
    assert "TCP 18080->192.168.137.11:8080  'web'" in listing, listing
    assert "UDP 15000->192.168.137.11:5000  'game'" in listing
    # The admin sees who asked, why and for how long; and can revoke.
    seen = dynamic(gateway)
    web = seen["upnp:tcp:18080"]
    assert web["client"] == lab.LAN1 and web["description"] == "web" and web["source"] == "upnp"
    assert 590 < web["remaining_s"] <= 600
    assert seen["upnp:udp:15000"]["remaining_s"] is None  # IGD:1 lease 0: permanent
    cli = gateway.cli("mappings", "list", "wan0")
    assert "upnp:tcp:18080" in cli.stdout and "upnp" in cli.stdout
    # Refusals: another host (secure mode), a port below 1024 (default rule), a taken port.
    assert "718" in upnpc(lab, "-a", lab.LAN2, "80", "18081", "TCP")
    assert "718" in upnpc(lab, "-a", lab.LAN1, "80", "80", "TCP")
    assert "718" in upnpc(lab, "-a", lab.LAN2, "8080", "18080", "TCP", role="lan2")
    # Delete by the client; revoke by the admin. Both holes close.
    assert "UPNP_DeletePortMapping() returned : 0" in upnpc(lab, "-d", "18080", "TCP")
    assert probe(inet, "tcp", WAN_GW, 18080) == "timeout"
    assert "714" in upnpc(lab, "-d", "18080", "TCP")
    assert gateway.cli("mappings", "remove", "wan0", "upnp:udp:15000").returncode == 0
    assert probe(inet, "udp", WAN_GW, 15000) == "timeout"
    # -r maps ports to the calling host itself.
    out = upnpc(lab, "-r", "8080", "28080", "TCP")
    assert "is redirected to internal" in out, out
    assert probe(inet, "tcp", WAN_GW, 28080) == f"lan1 {INET}"


def test_miniupnpc_binding_igd2_quota_and_restart_keeps_lease(lab, gateway) -> None:
    """IGD:2 with a quota of 3 (settings file), the miniupnpc binding, and a daemon restart."""
    (gateway.config.parent / "nat-traversal.toml").write_text(
        "igd_version = 2\nmax_mappings_per_client = 3\n"
    )
    gateway.stop()
    gateway.start()
    share(lab, gateway)
    start_server(lab.ns("lan1"), "tcp", 9000, "lan1")
    # A static mapping holds 19600: AddAnyPortMapping must pick a neighbour.
    gateway.client().add_mapping(
        "wan0", name="static", protocol="tcp", external_port=19600, target=lab.LAN2
    )
    result = lan_python(
        lab,
        f"""
        import json, miniupnpc
        u = miniupnpc.UPnP()
        u.discoverdelay = 500
        found = u.discover()
        u.selectigd()
        out = {{"found": found, "external": u.externalipaddress(), "lan": u.lanaddr}}
        out["add"] = u.addportmapping(19000, "TCP", u.lanaddr, 9000, "binding", "", 300)
        out["specific"] = list(u.getspecificportmapping(19000, "TCP"))
        out["any"] = u.addanyportmapping(19600, "TCP", u.lanaddr, 9000, "any", "")
        u.addportmapping(19100, "UDP", u.lanaddr, 9100, "third", "", 300)
        try:
            u.addportmapping(19200, "UDP", u.lanaddr, 9200, "fourth", "", 300)
            out["quota"] = "accepted"
        except Exception as error:
            out["quota"] = str(error)
        try:
            u.addportmapping(19300, "TCP", "{lab.LAN2}", 9000, "other", "", 300)
            out["other_host"] = "accepted"
        except Exception as error:
            out["other_host"] = str(error)
        print(json.dumps(out))
        """,
    )
    assert result["external"] == WAN_GW and result["lan"] == lab.LAN1, result
    assert result["add"] is True
    assert result["specific"][:2] == [lab.LAN1, 9000]
    assert result["any"] in (19599, 19601), result
    assert "NoPortMapsAvailable" in result["quota"] or "728" in result["quota"], result
    assert "not authorized" in result["other_host"].lower() or "606" in result["other_host"]
    inet = lab.ns("inet")
    assert probe(inet, "tcp", WAN_GW, 19000) == f"lan1 {INET}"
    assert probe(inet, "tcp", WAN_GW, result["any"]) == f"lan1 {INET}"
    before = dynamic(gateway)["upnp:tcp:19000"]["expires_at"]
    gateway.stop()
    gateway.start()
    after = dynamic(gateway)["upnp:tcp:19000"]
    assert after["expires_at"] == before and after["remaining_s"] < 300
    assert probe(inet, "tcp", WAN_GW, 19000) == f"lan1 {INET}"


def natpmpc(lab, *args: str, role: str = "lan1") -> str:
    require_binary("natpmpc")
    result = lab.run(role, "natpmpc", *args, check=False, timeout=30)
    return result.stdout + result.stderr


def test_natpmp_clients_map_expire_delete_and_quota(lab, gateway) -> None:
    share(lab, gateway)
    inet = lab.ns("inet")
    assert f"Public IP address : {WAN_GW}" in natpmpc(lab)
    start_server(lab.ns("lan1"), "tcp", 7000, "lan1")
    start_server(lab.ns("lan1"), "udp", 7001, "lan1")
    out = natpmpc(lab, "-a", "17000", "7000", "tcp", "60")
    assert "Mapped public port 17000 protocol TCP to local port 7000" in out, out
    out = natpmpc(lab, "-a", "17001", "7001", "udp", "60")
    assert "Mapped public port 17001 protocol UDP to local port 7001" in out, out
    assert probe(inet, "tcp", WAN_GW, 17000) == f"lan1 {INET}"
    assert probe(inet, "udp", WAN_GW, 17001) == f"lan1 {INET}"
    mapping = dynamic(gateway)["natpmp:tcp:17000"]
    assert mapping["client"] == lab.LAN1 and 55 < mapping["remaining_s"] <= 60
    # A renewal keeps the port, whatever port it suggests (RFC 6886 §3.3).
    assert "Mapped public port 17000" in natpmpc(lab, "-a", "17999", "7000", "tcp", "120")
    # Lifetime 0 deletes: the hole closes.
    natpmpc(lab, "-a", "0", "7000", "tcp", "0")
    assert probe(inet, "tcp", WAN_GW, 17000) == "timeout"
    # A 2-second lease: the kernel element goes by itself.
    assert "Mapped public port 17002" in natpmpc(lab, "-a", "17002", "7002", "tcp", "2")
    assert ("tcp", 17002) in dnat_keys(lab, gateway)
    assert wait_until(lambda: ("tcp", 17002) not in dnat_keys(lab, gateway), timeout=8)
    assert "natpmp:tcp:17002" not in dynamic(gateway)
    # Ports below 1024 are not permitted: NAT-PMP gets another port instead (RFC 6886 §3.3).
    out = natpmpc(lab, "-a", "80", "80", "tcp", "60")
    assert "Mapped public port 80 " not in out and "Mapped public port" in out, out
    # py-natpmp, and the per-client quota (64 by default).
    result = lan_python(
        lab,
        f"""
        import json, natpmp
        out = {{"public": natpmp.get_public_address(gateway_ip="{LAN_GW}", retry=3)}}
        codes = []
        for port in range(20000, 20070):
            r = natpmp.map_port(natpmp.NATPMP_PROTOCOL_UDP, port, port, 60,
                                gateway_ip="{LAN_GW}", retry=3, use_exception=False)
            codes.append(r.result)
        out["codes"] = codes
        print(json.dumps(out))
        """,
    )
    assert result["public"] == WAN_GW
    granted = sum(1 for code in result["codes"] if code == 0)
    assert set(result["codes"]) == {0, 4}  # SUCCESS, then OUT_OF_RESOURCES
    owned = [m for m in dynamic(gateway).values() if m["client"] == lab.LAN1]
    assert len(owned) == 64 and granted == 64 - 2  # udp/17001 and the port-80 one count too


PCP_CLIENT = """
import ipaddress, json, os, socket
from sharewall.protocols import pcp

me = ipaddress.IPv4Address("{me}")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((str(me), 0))
sock.settimeout(2)

def ask(request):
    sock.sendto(pcp.render_request(request), ("{gw}", 5351))
    data, _ = sock.recvfrom(2048)
    return pcp.parse_response(data)

def map_(port, suggested, lifetime=60, nonce=b"n" * 12, **options):
    return ask(pcp.MapRequest(client_address=me, lifetime_s=lifetime, nonce=nonce, protocol=6,
                              internal_port=port, suggested_external_port=suggested, **options))

out = {{}}
out["announce"] = ask(pcp.AnnounceRequest(client_address=me)).result_code
r = map_(7100, 17100)
out["map"] = [r.result_code, r.assigned_external_port, str(r.assigned_external_address), r.lifetime_s]
out["wrong_nonce"] = map_(7100, 17100, nonce=b"x" * 12).result_code
out["third_party"] = map_(7101, 17101, third_party=ipaddress.IPv4Address("{other}")).result_code
out["prefer_failure_taken"] = map_(7102, 17200, prefer_failure=True).result_code
r = map_(7103, 17200)
out["moved"] = [r.result_code, r.assigned_external_port]
out["filter"] = map_(7104, 17104, filters=(pcp.Filter(128, 0, ipaddress.IPv4Address("{gw}")),)).result_code
out["mismatch"] = ask(pcp.MapRequest(client_address=ipaddress.IPv4Address("{other}"), lifetime_s=60,
                                     nonce=b"n" * 12, protocol=6, internal_port=7105)).result_code
print(json.dumps(out))
"""


def test_pcp_client_maps_and_is_refused_what_it_may_not_have(lab, gateway) -> None:
    share(lab, gateway)
    gateway.client().add_mapping(
        "wan0", name="static", protocol="tcp", external_port=17200, target=lab.LAN2
    )
    start_server(lab.ns("lan1"), "tcp", 7100, "lan1")
    result = lan_python(lab, PCP_CLIENT.format(me=lab.LAN1, gw=LAN_GW, other=lab.LAN2))
    assert result["announce"] == 0
    assert result["map"] == [0, 17100, WAN_GW, 60]
    assert result["wrong_nonce"] == 2  # NOT_AUTHORIZED: not the mapping's owner
    assert result["third_party"] == 2  # NOT_AUTHORIZED: secure mode
    assert result["prefer_failure_taken"] == 11  # CANNOT_PROVIDE_EXTERNAL
    assert result["moved"][0] == 0 and result["moved"][1] in (17199, 17201)
    assert result["filter"] == 5  # UNSUPP_OPTION: we cannot filter remote peers
    assert result["mismatch"] == 12  # ADDRESS_MISMATCH
    inet = lab.ns("inet")
    assert probe(inet, "tcp", WAN_GW, 17100) == f"lan1 {INET}"
    assert dynamic(gateway)["pcp:tcp:17100"]["client"] == lab.LAN1
    lan_python(
        lab,
        PCP_CLIENT.split("out = {{}}")[0].format(me=lab.LAN1, gw=LAN_GW, other=lab.LAN2)
        + "print(json.dumps(map_(7100, 0, lifetime=0).result_code))",
    )
    assert probe(inet, "tcp", WAN_GW, 17100) == "timeout"
    # Sharing off: the servers close.
    gateway.client().unshare()
    answers = lan_python(lab, PUBLIC_SIDE_PROBE.format(hosts=[LAN_GW]))[LAN_GW]
    assert answers[0] in ("TimeoutError", "ConnectionRefusedError"), answers


PUBLIC_SIDE_PROBE = """
import json, socket
from sharewall.protocols import natpmp, pcp, ssdp

def udp(host, port, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.7)
    s.sendto(payload, (host, port))
    try:
        return s.recvfrom(2048)[0].hex()
    except OSError as error:
        return type(error).__name__

def tcp(host, port):
    s = socket.socket()
    s.settimeout(0.7)
    try:
        s.connect((host, port))
        s.sendall(b"GET /rootDesc.xml HTTP/1.0\\r\\n\\r\\n")
        return s.recv(100).decode(errors="replace") or "closed"
    except OSError as error:
        return type(error).__name__

out = {{}}
for host in {hosts!r}:
    out[host] = [
        udp(host, 5351, natpmp.render_request(natpmp.PublicAddressRequest())),
        udp(host, 1900, ssdp.render_msearch("ssdp:all", mx_s=None, host=host + ":1900")),
        tcp(host, 2869),
    ]
print(json.dumps(out))
"""


def test_the_public_side_gets_nothing(lab, gateway) -> None:
    """Requests from the Internet host get no answer, even with ICF off and a route to the LAN."""
    share(lab, gateway)
    assert "Public IP address" in natpmpc(lab)  # the servers are up on the private side
    for answers in lan_python(lab, PUBLIC_SIDE_PROBE.format(hosts=[WAN_GW]), role="inet").values():
        assert answers[:2] == ["TimeoutError", "TimeoutError"] and "HTTP" not in answers[2]
    gateway.client().set_firewall("wan0", False)
    lab.run("inet", "ip", "route", "replace", lab.LAN_NET, "via", WAN_GW)
    code = PUBLIC_SIDE_PROBE.format(hosts=[WAN_GW, LAN_GW])
    for host, answers in lan_python(lab, code, role="inet").items():
        assert answers[0] == "TimeoutError" and answers[1] == "TimeoutError", (host, answers)
        assert "HTTP" not in answers[2], (host, answers)


HTTP_ABUSE = """
import http.client, json, socket, threading
from sharewall.protocols import igd, soap

GW = "{gw}"
ME = "{me}"
OTHER = "{other}"
notifications = []
listener = socket.socket()
listener.bind((ME, 5555))
listener.listen(4)
listener.settimeout(5)

def collect():
    for _ in range(2):
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(3)
        data = b""
        while b"</e:propertyset>" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
        conn.close()
        notifications.append(data.decode(errors="replace"))

thread = threading.Thread(target=collect)
thread.start()

def call(method, path, body=b"", headers=()):
    c = http.client.HTTPConnection(GW, 2869, timeout=5)
    c.request(method, path, body=body, headers=dict(headers))
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read().decode(errors="replace")

SERVICE = igd.WAN_IP_CONNECTION_1
out = {{}}
out["description"] = call("GET", "/rootDesc.xml")[2]
out["oversized"] = call("POST", "/ctl/IPConn", b"x" * 70000, [("SOAPACTION", f'"{{SERVICE}}#GetStatusInfo"')])[0]
laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
          b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol2;</s:Body></s:Envelope>')
out["laughs"] = call("POST", "/ctl/IPConn", laughs, [("SOAPACTION", f'"{{SERVICE}}#GetStatusInfo"')])[0]
xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&e;</s:Body></s:Envelope>')
status, _, text = call("POST", "/ctl/IPConn", xxe, [("SOAPACTION", f'"{{SERVICE}}#GetStatusInfo"')])
out["xxe"] = [status, "root:" in text]
body, action = soap.render_request(SERVICE, "NoSuchAction")
status, _, text = call("POST", "/ctl/IPConn", body, [("SOAPACTION", action)])
out["unknown_action"] = [status, "<errorCode>401</errorCode>" in text]
out["foreign_callback"] = call("SUBSCRIBE", "/evt/IPConn", headers=[
    ("NT", "upnp:event"), ("CALLBACK", f"<http://{{OTHER}}:5555/>"), ("TIMEOUT", "Second-300")])[0]
status, headers, _ = call("SUBSCRIBE", "/evt/IPConn", headers=[
    ("NT", "upnp:event"), ("CALLBACK", f"<http://{{ME}}:5555/>"), ("TIMEOUT", "Second-300")])
out["subscribe"] = [status, headers.get("SID", "").startswith("uuid:"), headers.get("TIMEOUT")]
args = [("NewRemoteHost", ""), ("NewExternalPort", "18500"), ("NewProtocol", "TCP"),
        ("NewInternalPort", "8500"), ("NewInternalClient", ME), ("NewEnabled", "1"),
        ("NewPortMappingDescription", "soap"), ("NewLeaseDuration", "0")]
body, action = soap.render_request(SERVICE, "AddPortMapping", args)
out["add"] = call("POST", "/ctl/IPConn", body, [("SOAPACTION", action)])[0]
thread.join(6)
out["notifications"] = notifications
print(json.dumps(out))
"""


def test_igd_http_refuses_abuse_and_events_only_to_the_subscriber(lab, gateway) -> None:
    share(lab, gateway)
    code = HTTP_ABUSE.format(gw=LAN_GW, me=lab.LAN1, other=lab.LAN2)
    result = lan_python(lab, code)
    assert "urn:schemas-upnp-org:device:InternetGatewayDevice:1" in result["description"]
    assert result["oversized"] == 413
    assert result["laughs"] == 400
    assert result["xxe"] == [400, False]
    assert result["unknown_action"] == [500, True]
    assert result["foreign_callback"] == 412
    assert result["subscribe"] == [200, True, "Second-300"]
    assert result["add"] == 200
    initial, change = result["notifications"]
    assert "NOTIFY" in initial and f"<ExternalIPAddress>{WAN_GW}</ExternalIPAddress>" in initial
    assert "<PortMappingNumberOfEntries>0</PortMappingNumberOfEntries>" in initial
    assert "<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>" in change
    assert "upnp:tcp:18500" in dynamic(gateway)
    # A restart of the daemon says byebye and comes back: still serving (and the mapping stays).
    gateway.send_signal(signal.SIGTERM)
    assert wait_until(lambda: gateway.proc.poll() is not None, timeout=10)
    gateway.start()
    deadline = time.monotonic() + 10
    while "Public IP address" not in natpmpc(lab) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "upnp:tcp:18500" in dynamic(gateway)


ASYNC_UPNP_CLIENT = """
import asyncio, json
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search

async def main():
    found = []

    async def seen(headers):
        found.append(headers.get("LOCATION"))

    await async_search(seen, timeout=2, search_target="urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                       source=("{me}", 0))
    device = await UpnpFactory(AiohttpRequester()).async_create_device(found[0])
    services = {{s.service_type: s for d in device.all_devices for s in d.services.values()}}
    wan = services["urn:schemas-upnp-org:service:WANIPConnection:1"]
    out = {{"location": found[0], "device": device.device_type}}
    out["external"] = (await wan.action("GetExternalIPAddress").async_call())["NewExternalIPAddress"]
    await wan.action("AddPortMapping").async_call(
        NewRemoteHost="", NewExternalPort=21000, NewProtocol="TCP", NewInternalPort=9000,
        NewInternalClient="{me}", NewEnabled=True, NewPortMappingDescription="async-upnp-client",
        NewLeaseDuration=300)
    entry = await wan.action("GetSpecificPortMappingEntry").async_call(
        NewRemoteHost="", NewExternalPort=21000, NewProtocol="TCP")
    out["entry"] = [entry["NewInternalClient"], entry["NewInternalPort"], entry["NewLeaseDuration"]]
    common = services["urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"]
    out["link"] = (await common.action("GetCommonLinkProperties").async_call())["NewPhysicalLinkStatus"]
    out["bytes"] = (await common.action("GetTotalBytesReceived").async_call())["NewTotalBytesReceived"]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_async_upnp_client_as_a_second_upnp_stack(lab, gateway) -> None:
    share(lab, gateway)
    start_server(lab.ns("lan1"), "tcp", 9000, "lan1")
    result = lan_python(lab, ASYNC_UPNP_CLIENT.format(me=lab.LAN1))
    assert result["location"] == DESCRIPTION_URL
    assert result["device"] == "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    assert result["external"] == WAN_GW
    assert result["entry"][:2] == [lab.LAN1, 9000] and 0 < result["entry"][2] <= 300
    assert result["link"] == "Up" and result["bytes"] > 0  # real counters of wan0
    assert probe(lab.ns("inet"), "tcp", WAN_GW, 21000) == f"lan1 {INET}"


NATPMP_ASK = """
import json, socket
from sharewall.protocols import natpmp
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{source}", 0))
s.settimeout(0.5)
s.sendto(natpmp.render_request(natpmp.PublicAddressRequest()), ("{server}", 5351))
try:
    print(json.dumps(str(natpmp.parse_response(s.recvfrom(2048)[0]).public_address)))
except OSError as error:
    print(json.dumps(type(error).__name__))
"""


def test_servers_follow_private_address_changes(lab, gateway) -> None:
    """A second private address gets its own servers at once; removing it closes them."""
    share(lab, gateway)
    lab.run("lan2", "ip", "addr", "add", "192.168.50.12/24", "dev", "eth0")
    ask = NATPMP_ASK.format(source="192.168.50.12", server="192.168.50.1")
    assert lan_python(lab, ask, role="lan2") != WAN_GW
    lab.run("gw", "ip", "addr", "add", "192.168.50.1/24", "dev", "lan0")
    assert wait_until(lambda: lan_python(lab, ask, role="lan2") == WAN_GW, timeout=10)
    # The first address keeps working through the rebind.
    assert lan_python(lab, NATPMP_ASK.format(source=lab.LAN1, server=LAN_GW)) == WAN_GW
    lab.run("gw", "ip", "addr", "del", "192.168.50.1/24", "dev", "lan0")
    assert wait_until(lambda: lan_python(lab, ask, role="lan2") != WAN_GW, timeout=10)


ANNOUNCEMENT_LISTENER = """
import json, socket, struct
from sharewall.protocols import natpmp, pcp
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5350))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton("224.0.0.1") + socket.inet_aton("{me}"))
s.settimeout(5)
print("ready", flush=True)
seen = {{}}
while len(seen) < 2:
    data, peer = s.recvfrom(2048)
    if data[0] == 0:
        seen["natpmp"] = [str(natpmp.parse_response(data).public_address), peer[0]]
    else:
        seen["pcp"] = [type(pcp.parse_response(data)).__name__, peer[0]]
print(json.dumps(seen), flush=True)
"""


def test_public_address_change_is_announced_on_the_lan(lab, gateway) -> None:
    """RFC 6886 §3.2.1 / RFC 6887 §14.1.3: unsolicited announcements to 224.0.0.1:5350."""
    share(lab, gateway)
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.ns("lan1"),
            sys.executable,
            "-c",
            ANNOUNCEMENT_LISTENER.format(me=lab.LAN1),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        lab.run("gw", "ip", "addr", "add", "11.0.1.5/24", "dev", "wan0")
        lab.run("gw", "ip", "addr", "del", f"{WAN_GW}/24", "dev", "wan0")
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"natpmp": ["11.0.1.5", LAN_GW], "pcp": ["AnnounceResponse", LAN_GW]}
