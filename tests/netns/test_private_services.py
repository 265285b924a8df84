"""Issue 3 end to end: DHCP allocator and DNS proxy (dnsmasq) with real clients, and mappings that
follow their host's lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharewall.lab import Lab
from sharewall.lab_demo import dhcp_client
from tests.support.daemon import Daemon
from tests.support.env import require_binary, require_root
from tests.support.netns import unique_prefix
from tests.support.nftmaps import map_items, slot
from tests.support.traffic import probe, start_server, wait_until

pytestmark = pytest.mark.netns

UPSTREAM_NAME = "www.example.test"
UPSTREAM_ADDRESS = "198.51.100.80"

RESOLVE = r"""
import json, sys
import dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.lifetime = 2.0
out = {}
for name in sys.argv[2:]:
    try:
        out[name] = sorted(a.address for a in r.resolve(name, "A"))
    except Exception as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


def resolve(lab: Lab, role: str, server: str, *names: str) -> dict[str, object]:
    out = lab.run(role, sys.executable, "-c", RESOLVE, server, *names, timeout=30).stdout
    return json.loads(out)


class DhcpWorld:
    def __init__(self, lab: Lab, daemon: Daemon, workdir: Path) -> None:
        self.lab = lab
        self.daemon = daemon
        self.workdir = workdir

    def lease(self, role: str, hostname: str) -> dict[str, str]:
        return dhcp_client(self.lab, role, hostname, self.workdir)

    def mac(self, role: str) -> str:
        out = self.lab.run(role, "ip", "-j", "link", "show", "dev", Lab.HOST_IF).stdout
        return str(json.loads(out)[0]["address"])

    def dnsmasq_pid(self) -> int | None:
        for pid in self.lab.run(
            "gw", "ip", "netns", "pids", self.lab.ns("gw"), check=False
        ).stdout.split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq":
                    return int(pid)
            except OSError:
                continue
        return None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DhcpWorld]:
    require_root()
    for tool in ("dnsmasq", "udhcpc", "dhclient", "nft"):
        require_binary(tool)
    lab = Lab(prefix=unique_prefix("dh"), static=False)
    daemon = Daemon(lab.ns("gw"), tmp_path)
    upstream: subprocess.Popen[bytes] | None = None
    try:
        lab.up()
        # The gateway's resolver is the "Internet" host (ip netns exec bind-mounts this file).
        etc = Path("/etc/netns") / lab.ns("gw")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {Lab.INET}\n")
        upstream = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("inet"), "dnsmasq", "-k", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", f"--listen-address={Lab.INET}", "--bind-interfaces",
             f"--address=/{UPSTREAM_NAME}/{UPSTREAM_ADDRESS}", "--user=root", "--pid-file="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        daemon.start()
        with daemon.client() as c:
            c.share("wan0", ["lan0"])
        yield DhcpWorld(lab, daemon, tmp_path)
    finally:
        daemon.cleanup()
        if upstream is not None:
            upstream.kill()
            upstream.wait(timeout=10)
        lab.down()


def test_clients_get_leases_and_names_resolve(world: DhcpWorld) -> None:
    """dhclient and udhcpc get an address in .100-.200 with router and DNS = the gateway; LAN names and
    Internet names resolve through the gateway."""
    host_resolv = Path("/etc/resolv.conf")
    before = (
        (host_resolv.read_bytes(), host_resolv.stat().st_mtime) if host_resolv.exists() else None
    )
    lab = world.lab
    lease1 = world.lease("lan1", "alpha")
    assert lease1["router"] == "192.168.137.1" and lease1["dns"] == "192.168.137.1"
    assert lease1["domain"] == "mshome.net"
    assert 100 <= int(lease1["ip"].rsplit(".", 1)[1]) <= 200

    # lan2 with isc-dhcp-client and a hook that never touches resolv.conf.
    hook = world.workdir / "dhclient-hook"
    hook.write_text(
        '#!/bin/sh\ncase "$reason" in\n  BOUND|RENEW|REBIND|REBOOT)\n'
        '    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"\n'
        '    ip route replace default via "$new_routers" dev "$interface" ;;\nesac\nexit 0\n'
    )
    hook.chmod(0o755)
    conf = world.workdir / "dhclient.conf"
    conf.write_text('send host-name "beta";\n')
    lab.run("lan2", "dhclient", "-4", "-1", "-sf", str(hook), "-cf", str(conf),
            "-lf", str(world.workdir / "lan2.leases"), "-pf", str(world.workdir / "lan2.pid"),
            Lab.HOST_IF, timeout=30)  # fmt: skip
    subprocess.run(["pkill", "-F", str(world.workdir / "lan2.pid")], check=False)

    def leases() -> dict[str, dict[str, object]]:
        return {str(x["hostname"]): x for x in world.daemon.client().leases()}

    # The dhcp-script reports a lease a few milliseconds after the client has it.
    assert wait_until(lambda: set(leases()) >= {"alpha", "beta"}, timeout=5)
    leases = leases()
    assert leases["alpha"]["ip"] == lease1["ip"] and leases["alpha"]["connection"] == "lan0"
    beta_ip = leases["beta"]["ip"]

    answers = resolve(
        lab, "lan1", "192.168.137.1", "beta", "beta.mshome.net", UPSTREAM_NAME, "nosuch"
    )
    assert answers["beta"] == [beta_ip] and answers["beta.mshome.net"] == [beta_ip]
    assert answers[UPSTREAM_NAME] == [UPSTREAM_ADDRESS]
    assert answers["nosuch"] == "NXDOMAIN"

    start_server(lab.ns("inet"), "tcp", 80, "inet")
    assert probe(lab.ns("lan1"), "tcp", Lab.INET, 80) == f"inet {Lab.WAN_GW}"
    after = (
        (host_resolv.read_bytes(), host_resolv.stat().st_mtime) if host_resolv.exists() else None
    )
    assert after == before, "a DHCP client changed the host's /etc/resolv.conf"


def test_mapping_by_host_name_follows_the_lease(world: DhcpWorld) -> None:
    """A mapping to `lanbox` reaches it; when lanbox gets a new address the mapping moves within a second;
    a MAC-target mapping follows too; while no lease exists the mapping is inactive."""
    lab = world.lab
    c = world.daemon.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target="lanbox"
    )
    c.add_mapping("wan0", name="bymac", protocol="tcp", external_port=8081, internal_port=80,
                  target=world.mac("lan2"))  # fmt: skip
    listed = {m["name"]: m for m in c.mappings("wan0")}
    assert listed["web"]["active"] is False and listed["web"]["target_address"] is None
    first = world.lease("lan2", "lanbox")
    start_server(lab.ns("lan2"), "tcp", 80, "lanbox")
    assert wait_until(lambda: probe(lab.ns("inet"), "tcp", Lab.WAN_GW, 8080) == f"lanbox {Lab.INET}",
                      timeout=5)  # fmt: skip
    assert probe(lab.ns("inet"), "tcp", Lab.WAN_GW, 8081) == f"lanbox {Lab.INET}"

    c.add_reservation(world.mac("lan2"), "192.168.137.50", "lanbox")
    moved = world.lease("lan2", "lanbox")
    assert moved["ip"] == "192.168.137.50" != first["ip"]
    started = time.monotonic()
    assert wait_until(
        lambda: (
            {m["name"]: m for m in c.mappings("wan0")}["web"]["target_address"] == "192.168.137.50"
        ),
        timeout=1.0,
        interval=0.02,
    ), "the mapping did not follow the host within one second"
    assert time.monotonic() - started <= 1.0
    assert probe(lab.ns("inet"), "tcp", Lab.WAN_GW, 8080) == f"lanbox {Lab.INET}"
    listed = {m["name"]: m for m in c.mappings("wan0")}
    assert listed["bymac"]["target_address"] == "192.168.137.50"
    # Nobody else is exposed: the kernel maps 8080 only to the new address.
    targets = map_items(lab, slot(c.connection("wan0")["id"]) + "_dnat_addr")
    assert targets[("tcp", 8080)] == "192.168.137.50" and targets[("tcp", 8081)] == "192.168.137.50"
    assert [r["ip"] for r in c.reservations()] == ["192.168.137.50"]


def test_leases_survive_dnsmasq_kill_and_daemon_restart(world: DhcpWorld) -> None:
    lab = world.lab
    lease = world.lease("lan1", "alpha")
    pid = world.dnsmasq_pid()
    assert pid is not None
    os.kill(pid, 9)
    assert wait_until(lambda: world.dnsmasq_pid() not in (None, pid), timeout=10)
    assert {x["hostname"]: x["ip"] for x in world.daemon.client().leases()}["alpha"] == lease["ip"]
    world.daemon.kill()
    world.daemon.start()
    assert {x["hostname"]: x["ip"] for x in world.daemon.client().leases()}["alpha"] == lease["ip"]
    assert wait_until(
        lambda: resolve(lab, "lan1", "192.168.137.1", "alpha").get("alpha") == [lease["ip"]],
        timeout=10,
    )


def test_dhcp_and_dns_are_not_reachable_from_the_public_side(world: DhcpWorld) -> None:
    lab = world.lab
    answers = resolve(lab, "inet", Lab.WAN_GW, UPSTREAM_NAME)
    assert answers[UPSTREAM_NAME] in ("LifetimeTimeout", "Timeout", "NoNameservers")
    result = lab.run("inet", "udhcpc", "-i", Lab.HOST_IF, "-s", "/bin/true", "-f", "-q", "-n",
                     "-t", "2", "-T", "1", check=False, timeout=20)  # fmt: skip
    assert result.returncode != 0, "a DHCP server answered on the public side"


def test_another_dhcp_server_on_the_private_side_is_reported(tmp_path: Path) -> None:
    """Sharing onto a segment where someone else already serves DHCP: sharewall warns in status."""
    require_root()
    lab = Lab(prefix=unique_prefix("dr"), static=True)
    daemon = Daemon(lab.ns("gw"), tmp_path)
    rogue: subprocess.Popen[bytes] | None = None
    try:
        lab.up()
        rogue = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("lan2"), "dnsmasq", "-k", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--port=0", "--interface=eth0", "--bind-interfaces",
             "--no-ping", "--dhcp-range=192.168.137.220,192.168.137.230,1h", "--user=root",
             "--pid-file=", f"--dhcp-leasefile={tmp_path / 'rogue.leases'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        daemon.start()
        c = daemon.client()
        c.share("wan0", ["lan0"])
        assert wait_until(
            lambda: any("another DHCP server" in p for p in c.status()["problems"]), timeout=10
        ), c.status()["problems"]
        assert any(Lab.LAN2 in p for p in c.status()["problems"])
    finally:
        daemon.cleanup()
        if rogue is not None:
            rogue.kill()
            rogue.wait(timeout=10)
        lab.down()
