"""Crash safety and convergence: SIGKILL during a burst, restarts, and a kernel edited behind our back."""

from __future__ import annotations

import threading
import time

import pytest

from sharewall.errors import SharewallError
from tests.support.nftmaps import map_items, slot
from tests.support.traffic import probe, start_server

pytestmark = pytest.mark.netns


def kernel_map_keys(lab, conn_id: str, suffix: str) -> list[tuple[str, int]]:
    return list(map_items(lab, slot(conn_id) + suffix))


def test_sigkill_during_a_burst_loses_nothing_acknowledged(lab, gateway) -> None:
    """Every mapping the API acknowledged is present exactly once, in the store and in the kernel."""
    c = gateway.client()
    c.share("wan0", ["lan0"])
    wan_id = c.connection("wan0")["id"]
    acknowledged: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        from sharewall.api.client import Client

        with Client(str(gateway.socket), timeout=10) as writer:
            for port in range(20000, 20400):  # bounded: at most 400 adds
                if stop.is_set():
                    return
                try:
                    writer.add_mapping(
                        "wan0",
                        name=f"m{port}",
                        protocol="tcp",
                        external_port=port,
                        internal_port=80,
                        target=lab.LAN2,
                    )
                except SharewallError:
                    return  # the daemon died mid-request: not acknowledged
                acknowledged.append(port)

    thread = threading.Thread(target=burst)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    gateway.kill()  # SIGKILL, in the middle of the burst
    stop.set()
    thread.join(timeout=20)
    assert len(acknowledged) >= 60
    gateway.start()
    c = gateway.client()
    listed = [m["name"] for m in c.mappings("wan0") if not m["builtin"]]
    assert len(listed) == len(set(listed))
    assert {f"m{p}" for p in acknowledged} <= set(listed)
    keys = kernel_map_keys(lab, wan_id, "_dnat_addr")
    assert (
        len(keys) == len(set(keys)) == len(listed)
    )  # exactly once, and nothing unacknowledged-and-lost
    assert {("tcp", p) for p in acknowledged} <= set(keys)
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, acknowledged[-1]) == f"lan2 {lab.INET}"


def test_restart_keeps_ids_and_converges_without_duplicates(lab, gateway) -> None:
    c = gateway.client()
    c.share("wan0", ["lan0"])
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    ids = {x["name"]: x["id"] for x in c.connections()}
    ruleset = lab.run("gw", "nft", "list", "ruleset").stdout
    for _ in range(2):
        gateway.kill()
        gateway.start()
    c = gateway.client()
    assert {x["name"]: x["id"] for x in c.connections()} == ids
    assert lab.run("gw", "nft", "list", "ruleset").stdout == ruleset


def test_a_table_edited_behind_our_back_is_repaired(lab, gateway) -> None:
    """If someone deletes one of our map elements, the next change that touches it still succeeds
    (nft refuses the element delete; sharewall replaces its table in one transaction)."""
    c = gateway.client()
    c.share("wan0", ["lan0"])
    wan_id = c.connection("wan0")["id"]
    slot = "c" + wan_id.strip("{}").lower().replace("-", "")[:8]
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    c.add_mapping(
        "wan0", name="app", protocol="tcp", external_port=8081, internal_port=80, target=lab.LAN2
    )
    lab.run(
        "gw", "nft", "delete", "element", "inet", "sharewall", f"{slot}_dnat_addr", "{ tcp . 8080 }"
    )
    c.remove_mapping("wan0", "web")
    assert kernel_map_keys(lab, wan_id, "_dnat_addr") == [("tcp", 8081)]
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 8081) == f"lan2 {lab.INET}"
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 8080) == "timeout"


def test_a_bad_config_file_keeps_the_last_good_state(lab, gateway) -> None:
    """SIGHUP with an invalid TOML: the error names the key, nothing changes, status reports it."""
    import signal

    gateway.config.write_text(
        '[connections.wan0]\nfirewall = true\n\n[[connections.wan0.mappings]]\nname = "web"\n'
        f'protocol = "tcp"\nexternal_port = 8080\ninternal_port = 80\ntarget = "{lab.LAN2}"\n'
    )
    gateway.send_signal(signal.SIGHUP)
    c = gateway.client()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(m["name"] == "web" for m in c.mappings("wan0")):
        time.sleep(0.05)
    assert any(m["name"] == "web" for m in c.mappings("wan0"))
    assert c.connection("wan0")["firewall"] is True
    before = lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout
    gateway.config.write_text('[connections.wan0]\nfirewall = "yes please"\n')
    gateway.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not c.status()["problems"]:
        time.sleep(0.05)
    problems = " ".join(c.status()["problems"])
    assert "firewall" in problems and "connections.wan0" in problems
    assert lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout == before
