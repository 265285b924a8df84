"""The NAT Traversal client (HNetCfg.NATUPnP) on a LAN host, against sharewall's own IGD.

The client runs inside a LAN namespace as a script would: it finds the IGD with SSDP, manages
port mappings over SOAP and receives GENA events. The mapping it creates is then used by a real
TCP connection from the Internet host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.traffic import probe, start_server, wait_until

pytestmark = pytest.mark.netns

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]
NEW_WAN = "198.51.100.7"


def lan_script(lab, code: str, role: str = "lan1") -> dict:
    """Run *code* in a LAN namespace; its last output line is a JSON object."""
    result = lab.run(role, sys.executable, "-c", textwrap.dedent(code), timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def dnat_ports(lab, gateway) -> dict[int, str]:
    conn_id = gateway.client().connection("wan0")["id"]
    slot = "c" + "".join(ch for ch in conn_id.lower() if ch in "0123456789abcdef")[:8]
    out = lab.run("gw", "nft", "-j", "list", "map", "inet", "sharewall", f"{slot}_dnat_addr").stdout
    found = {}
    for obj in json.loads(out)["nftables"]:
        for key, address in obj.get("map", {}).get("elem", []):
            if isinstance(key, dict) and "elem" in key:  # an element with a counter
                key = key["elem"]["val"]
            found[key["concat"][1]] = address
    return found


def share(gateway) -> None:
    client = gateway.client()
    client.share("wan0", ["lan0"])
    assert wait_until(lambda: client.status()["sharing"]["public_address"] is not None, timeout=10)


def test_static_port_mappings_on_sharewalls_igd(lab, gateway) -> None:
    """Discover, Add, Item, enumerate, Edit*, errors as HRESULTs, Remove; the mapping carries traffic."""
    share(gateway)
    start_server(lab.ns("lan1"), "tcp", 8080, "lan1")
    result = lan_script(
        lab,
        f"""
        import json
        from sharewall.api.hnetcfg import CreateObject, HResultError

        nat = CreateObject("HNetCfg.NATUPnP")
        coll = nat.StaticPortMappingCollection
        before = coll.Count
        added = coll.Add(18080, "TCP", 8000, "{lab.LAN1}", True, "web")
        added.EditInternalPort(8080)
        coll.Item(18080, "tcp").EditDescription("web server")
        listed = [
            (m.ExternalPort, m.Protocol, m.InternalPort, m.InternalClient, m.Enabled, m.Description)
            for m in coll
        ]
        errors = {{}}
        for name, call in (
            ("conflict", lambda: coll.Add(18080, "TCP", 80, "{lab.LAN2}", True, "theirs")),
            ("missing", lambda: coll.Item(18081, "TCP")),
            ("protocol", lambda: coll.Add(18082, "ICMP", 1, "{lab.LAN1}", True, "x")),
            ("dynamic", lambda: nat.DynamicPortMappingCollection),
        ):
            try:
                call()
            except HResultError as err:
                errors[name] = [err.hresult, err.code]
        print(json.dumps({{
            "before": before,
            "external": added.ExternalIPAddress,
            "listed": listed,
            "errors": errors,
            "enum": [m.ExternalPort for m in coll._NewEnum.Next(5)],
        }}))
        """,
    )
    assert result["before"] == 0
    assert result["external"] == lab.WAN_GW
    assert result["listed"] == [[18080, "TCP", 8080, lab.LAN1, True, "web server"]]
    assert result["enum"] == [18080]
    assert result["errors"] == {
        "conflict": [0x80040376, "upnp:718"],  # UPNP_E_ACTION_SPECIFIC_BASE + (718 - 600)
        "missing": [0x80040372, "upnp:714"],
        "protocol": [0x80070057, None],
        "dynamic": [0x80004001, None],
    }
    upnp = [m for m in gateway.client().mappings("wan0") if m["source"] == "upnp"]
    assert [(m["external_port"], m["target"], m["description"]) for m in upnp] == [
        (18080, lab.LAN1, "web server")
    ]
    assert dnat_ports(lab, gateway)[18080] == lab.LAN1
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 18080) == f"lan1 {lab.INET}"

    removed = lan_script(
        lab,
        """
        import json
        from sharewall.api.hnetcfg import CreateObject

        coll = CreateObject("HNetCfg.NATUPnP").StaticPortMappingCollection
        coll.Remove(18080, "TCP")
        print(json.dumps({"count": coll.Count}))
        """,
    )
    assert removed == {"count": 0}
    assert 18080 not in dnat_ports(lab, gateway)


def test_no_igd_gives_nothing(lab) -> None:
    """Without an IGD on the network the collection is None (a script's Nothing), quickly."""
    result = lan_script(
        lab,
        """
        import json, time
        from sharewall.api.natupnp import IUPnPNAT

        started = time.monotonic()
        nat = IUPnPNAT(search_time=1.0)
        print(json.dumps({
            "collection": nat.StaticPortMappingCollection is None,
            "events": nat.NATEventManager is None,
            "seconds": time.monotonic() - started,
        }))
        """,
    )
    assert result["collection"] and result["events"] and result["seconds"] < 5


def test_event_callbacks(lab, gateway) -> None:
    """NATEventManager: NewNumberOfEntries on a new mapping, NewExternalIPAddress on a new address."""
    share(gateway)
    code = textwrap.dedent(
        f"""
        import json, sys, threading, time
        from sharewall.api.hnetcfg import CreateObject

        seen = []
        changed = threading.Event()

        class EntriesCallback:
            def NewNumberOfEntries(self, count):
                seen.append(["entries", count])

        def on_address(reason, address):  # IDispatch style: the reason comes first
            seen.append([reason, address])
            if address == "{NEW_WAN}":
                changed.set()

        nat = CreateObject("HNetCfg.NATUPnP")
        events = nat.NATEventManager
        events.NumberOfEntriesCallback = EntriesCallback()
        events.ExternalIPAddressCallback = on_address
        nat.StaticPortMappingCollection.Add(15000, "UDP", 5000, "{lab.LAN1}", True, "game")
        print("ready", flush=True)
        changed.wait(15)
        events.NumberOfEntriesCallback = None
        events.ExternalIPAddressCallback = None
        nat.StaticPortMappingCollection.Remove(15000, "UDP")
        print(json.dumps(seen))
        """
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("lan1"), sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = proc.stdout.readline()
        assert line.strip() == "ready" and time.monotonic() < deadline, line
        # DHCP renewal with a new address: the old one goes, the new one comes.
        lab.run("gw", "ip", "addr", "del", f"{lab.WAN_GW}/24", "dev", "wan0")
        lab.run("gw", "ip", "addr", "add", f"{NEW_WAN}/24", "dev", "wan0")
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, out + err
    seen = json.loads(out.strip().splitlines()[-1])
    assert ["entries", 1] in seen
    assert ["ExternalIPAddress", NEW_WAN] in seen
