"""The ported Microsoft samples in examples/ run against a real sharewalld and do what their originals do.

Each example runs as a script, as a user would run it, with ``SHAREWALL_SOCKET`` naming the lab
daemon's socket; its effect is then checked in the kernel (nft) and, where it matters, with real
packets from the Internet host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nftmaps import chains, dnat_ports, gateway_tcp_ports, slot
from tests.support.traffic import ping, probe, start_server

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(gateway, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SHAREWALL_SOCKET=str(gateway.socket))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


def test_connection_properties_and_enable_icf(lab, gateway) -> None:
    """§4.2/4.3 list every connection; §4.1 enables ICF on the named one (and only that one)."""
    conns = {c["name"]: c for c in gateway.client().connections()}

    vbscript = ok(run_example(gateway, "connection_properties.py"))
    for name, info in conns.items():
        assert f"Name: {name}\nGuid: {info['id']}\nDeviceName: {info['device']}\n" in vbscript
    jscript = ok(run_example(gateway, "connection_properties.py", "--jscript"))
    assert sorted(jscript.splitlines()) == sorted(
        f"Name: {n}, Guid: {c['id']}, DeviceName: {c['device']}, Status: 2, MediaType: 3"
        for n, c in conns.items()
    )

    usage = run_example(gateway, "enable_icf.py")
    assert usage.returncode == 1 and "Invalid usage!" in usage.stdout
    missing = run_example(gateway, "enable_icf.py", "nosuch0")
    assert missing.returncode == 1 and 'Connection "nosuch0" was not found' in missing.stdout

    start_server(lab.ns("gw"), "tcp", 22, "gw")
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == f"gw {lab.INET}"
    out = ok(run_example(gateway, "enable_icf.py", "WAN0"))  # the name matches case-insensitively
    assert "0 objects for connection type public" in out
    assert "2 objects for connection type all" in out
    assert f"Enabling Firewall on connection:\nName: wan0\nGuid: {conns['wan0']['id']}" in out
    assert f"fwd_{slot(conns['wan0']['id'])}" in chains(lab)
    assert f"fwd_{slot(conns['lan0']['id'])}" not in chains(lab)
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == "timeout"

    gateway.client().share("wan0", ["lan0"])
    shared = ok(run_example(gateway, "enable_icf.py", "wan0"))
    assert "1 objects for connection type public" in shared
    assert "1 objects for connection type private" in shared


def test_port_mapping_samples(lab, gateway) -> None:
    """§4.4 (JScript) and §4.5 (C++): add Ben's 555 -> 444 mapping, enabled, and remove it again."""
    gateway.client().share("wan0", ["lan0"])
    wan_id = gateway.client().connection("wan0")["id"]
    start_server(lab.ns("lan2"), "tcp", 444, "lan2")
    inet = lab.ns("inet")

    def bens() -> list[dict]:
        return [m for m in gateway.client().mappings("wan0") if m["name"] == "Ben's Port Mapping"]

    kept = ok(run_example(gateway, "port_mappings_jscript.py", "--target-ip", lab.LAN2, "--keep"))
    assert "just added NAT_PROTOCOL_TCP, 555, 444!\njust enabled port mapping!" in kept
    assert kept.count("added a port mapping named") == 1  # only wan0 is shared or firewalled
    assert [(m["enabled"], m["target"]) for m in bens()] == [(True, lab.LAN2)]
    assert dnat_ports(lab, wan_id)[555] == lab.LAN2
    assert probe(inet, "tcp", lab.WAN_GW, 555) == f"lan2 {lab.INET}"

    # Again, as published: the old copy is deleted first, the new one (by computer name) is
    # added, and the clean-up at the end deletes it.
    full = ok(run_example(gateway, "port_mappings_jscript.py"))
    assert full.count("just deleted 6, 555, 444!") == 2 and "cleaning up" in full
    assert bens() == [] and 555 not in dnat_ports(lab, wan_id)

    kept = ok(run_example(gateway, "port_mappings_cpp.py", "--target-ip", lab.LAN2, "--keep"))
    assert "failed to find a valid connection" not in kept
    assert "just added NAT_PROTOCOL_TCP, 555, 444!\njust enabled port mapping!" in kept
    assert dnat_ports(lab, wan_id)[555] == lab.LAN2
    assert probe(inet, "tcp", lab.WAN_GW, 555) == f"lan2 {lab.INET}"

    full = ok(run_example(gateway, "port_mappings_cpp.py"))
    assert full.count("just deleted a port mapping!") == 2
    assert bens() == [] and 555 not in dnat_ports(lab, wan_id)


def test_windows_firewall_samples(lab, gateway) -> None:
    """§4.6: verify enabled, add a port, allow echo, enable a service, IsPortAllowed, dump."""
    ids = {c["name"]: c["id"] for c in gateway.client().connections()}
    inet = lab.ns("inet")

    out = ok(run_example(gateway, "wf_verify_enabled.py"))
    assert "sharewalld is running: True\nFirewall Enabled: True\n" in out
    assert "Firewall Exceptions Not Allowed: False" in out
    assert {f"fwd_{slot(ids['wan0'])}", f"fwd_{slot(ids['lan0'])}"} <= chains(lab)

    start_server(lab.ns("gw"), "tcp", 80, "gw")
    assert probe(inet, "tcp", lab.WAN_GW, 80) == "timeout"
    assert ok(run_example(gateway, "wf_add_port.py")) == ""
    assert 80 in gateway_tcp_ports(lab, ids["wan0"]) & gateway_tcp_ports(lab, ids["lan0"])
    assert probe(inet, "tcp", lab.WAN_GW, 80) == f"gw {lab.INET}"

    assert not ping(inet, lab.WAN_GW)
    assert ok(run_example(gateway, "wf_allow_echo_requests.py")) == ""
    assert ping(inet, lab.WAN_GW)

    assert ok(run_example(gateway, "wf_enable_service.py")) == ""
    assert 3389 in gateway_tcp_ports(lab, ids["wan0"])

    answers = ok(
        run_example(
            gateway,
            "wf_is_port_allowed.py",
            "--ipv4",
            lab.WAN_GW,
            "--ipv6",
            lab.WAN_GW6,
            "--port",
            "80",
        )
    ).splitlines()
    assert answers == [
        f"Is TCP port 80 allowed on interface {lab.WAN_GW}? Allowed: True  Restricted: False",
        "Is Windows Media Player allowed on all interfaces? Allowed: False  Restricted: False",
        "Is Windows Media Player allowed on TCP port 8800 on all interfaces? "
        "Allowed: False  Restricted: False",
        f"Is Windows Media Player allowed on interface {lab.WAN_GW6}? "
        "Allowed: False  Restricted: False",
    ]

    dump = ok(run_example(gateway, "wf_display_all_properties.py"))
    for expected in (
        "Type: Standard",
        "Firewall Enabled: True",
        "AllowInboundEchoRequest:             True",
        "Globally Open Ports: 1",
        "  Name:               HTTP\n  Port Number:        80\n  IP Protocol:        TCP",
        "Services: 9",
        "  Name:                Remote Desktop\n  Type:                2",
        "Service: Remote Desktop Globally Open Ports: 1\n    Name:               Remote Desktop\n"
        "    Port Number:        3389",
        "Authorized Applications: 0",
    ):
        assert expected in dump
    assert dump.count("  Enabled:             True") == 1  # Remote Desktop, and only it

    # The undo lines of the samples.
    ok(run_example(gateway, "wf_enable_service.py", "--disable"))
    ok(run_example(gateway, "wf_allow_echo_requests.py", "--disable"))
    assert 3389 not in gateway_tcp_ports(lab, ids["wan0"])
    assert not ping(inet, lab.WAN_GW)
