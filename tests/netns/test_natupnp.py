"""The NAT Traversal client (HNetCfg.NATUPnP) on a LAN host, against sharewall's IGD and miniupnpd.

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

from tests.support.env import require_binary
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


MINIUPNPD_CONF = """\
ext_ifname=wan0
listening_ip=lan0
port=0
enable_natpmp=no
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
upnp_table_name=filter
upnp_nat_table_name=filter
allow 1024-65535 192.168.137.0/24 1-65535
deny 0-65535 0.0.0.0/0 0-65535
"""
# The chains miniupnpd fills in (what Debian's nft_init.sh creates), in the gateway namespace only.
MINIUPNPD_NFT = """\
table inet filter {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
"""


def test_static_port_mappings_on_miniupnpd(lab, tmp_path) -> None:
    """The same client against Debian's miniupnpd (IGD:2) as the gateway; the mapping carries traffic."""
    require_binary("miniupnpd")
    # miniupnpd will not forward for a reserved external address (the lab's is TEST-NET-2).
    lab.run("gw", "ip", "addr", "del", f"{lab.WAN_GW}/24", "dev", "wan0")
    lab.run("gw", "ip", "addr", "add", "11.0.0.1/24", "dev", "wan0")
    lab.run("gw", "ip", "route", "replace", "default", "via", "11.0.0.2")
    lab.run("inet", "ip", "addr", "del", f"{lab.INET}/24", "dev", "eth0")
    lab.run("inet", "ip", "addr", "add", "11.0.0.2/24", "dev", "eth0")
    lab.run("gw", "ip", "addr", "add", f"{lab.LAN_GW}/24", "dev", "lan0")
    lab.run("gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    (tmp_path / "miniupnpd.conf").write_text(MINIUPNPD_CONF)
    (tmp_path / "miniupnpd.nft").write_text(MINIUPNPD_NFT)
    lab.run("gw", "nft", "-f", str(tmp_path / "miniupnpd.nft"))
    daemon = subprocess.Popen(
        [
            *("ip", "netns", "exec", lab.ns("gw"), "miniupnpd", "-d"),
            *("-f", str(tmp_path / "miniupnpd.conf"), "-P", str(tmp_path / "miniupnpd.pid")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        start_server(lab.ns("lan1"), "tcp", 8080, "lan1")
        # Discovery retries within the script until miniupnpd answers (it starts in well under 10 s).
        result = lan_script(
            lab,
            f"""
            import json, time
            from sharewall.api.hnetcfg import CreateObject

            deadline = time.monotonic() + 10
            coll = None
            while coll is None and time.monotonic() < deadline:
                coll = CreateObject("HNetCfg.NATUPnP").StaticPortMappingCollection
            mapping = coll.Add(18080, "TCP", 8080, "{lab.LAN1}", True, "web")
            print(json.dumps({{
                "external": mapping.ExternalIPAddress,
                "listed": [(m.ExternalPort, m.Protocol, m.InternalClient, m.InternalPort,
                            m.Description) for m in coll],
                "item": coll.Item(18080, "TCP").InternalPort,
            }}))
            """,
        )
        assert result == {
            "external": "11.0.0.1",
            "listed": [[18080, "TCP", lab.LAN1, 8080, "web"]],
            "item": 8080,
        }
        assert probe(lab.ns("inet"), "tcp", "11.0.0.1", 18080) == "lan1 11.0.0.2"
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
        assert (
            "dnat"
            not in lab.run(
                "gw", "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"
            ).stdout
        )
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
