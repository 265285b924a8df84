"""`sharewall connections --active` agrees with `conntrack -L` in the gateway's namespace."""

from __future__ import annotations

import json

import pytest

from tests.support.env import require_binary
from tests.support.traffic import probe, start_server

pytestmark = pytest.mark.netns


def test_active_view_matches_conntrack(lab, gateway) -> None:
    require_binary("conntrack")
    c = gateway.client()
    c.share("wan0", ["lan0"])
    c.add_mapping("wan0", name="web", protocol="tcp", external_port=8080, internal_port=80,
                  target=lab.LAN2)  # fmt: skip
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    for _ in range(3):
        assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"
    for _ in range(2):
        assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"

    view = c.active()
    listed = lab.run("gw", "conntrack", "-L", "-o", "extended").stdout.splitlines()
    kernel = set()
    for (
        line
    ) in listed:  # "ipv4 2 tcp 6 117 TIME_WAIT src=.. dst=.. sport=.. dport=.. src=.. (reply)"
        words = line.split()
        fields: dict[str, str] = {}
        for word in words:
            key, _, value = word.partition("=")
            if value and key not in fields:  # the first occurrence is the original direction
                fields[key] = value
        kernel.add((int(words[3]), fields.get("src"), fields.get("dst"), fields.get("sport"),
                    fields.get("dport")))  # fmt: skip
    ours = set()
    for e in view["connections"]:
        o = e["original"]
        sport = None if o.get("src_port") is None else str(o["src_port"])
        dport = None if o.get("dst_port") is None else str(o["dst_port"])
        ours.add((e["protocol"], o["src"], o["dst"], sport, dport))
    assert view["total"] == len(listed)
    assert ours == kernel
    clients = {g["client"]: g for g in view["by_client"]}
    assert clients[lab.LAN1]["connections"] >= 3
    mappings = {g["mapping"]: g for g in view["by_mapping"]}
    assert mappings["web"]["connections"] == 2 and mappings["web"]["remotes"] == [lab.INET]
    out = gateway.cli("connections", "--active", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["total"] == view["total"]


def test_mapping_counters_count_connections(lab, gateway) -> None:
    """Each mapping's kernel counter counts the connections opened through it (NAT sees each
    connection's first packet once); read on demand, on a context of its own."""
    c = gateway.client()
    c.share("wan0", ["lan0"])
    c.add_mapping("wan0", name="web", protocol="tcp", external_port=8080, internal_port=80,
                  target=lab.LAN2)  # fmt: skip
    c.add_mapping("wan0", name="ssh", protocol="tcp", external_port=2222, internal_port=22)
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    start_server(lab.ns("gw"), "tcp", 22, "gw")
    for _ in range(3):
        assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 2222) == f"gw {lab.INET}"
    listed = {m["name"]: m for m in c.mappings("wan0", counters=True)}
    assert listed["web"]["hits"]["connections"] == 3 and listed["web"]["hits"]["bytes"] > 0
    assert listed["ssh"]["hits"]["connections"] == 1
    assert listed["FTP Server"]["hits"] is None
    out = gateway.cli("mappings", "list", "wan0", "--counters")
    assert out.returncode == 0 and "3 (" in out.stdout
