"""The Foundation gateway end to end: real sharewalld, real nft, real packets between lab namespaces."""

from __future__ import annotations

import json
import subprocess

import pytest

from sharewall.errors import ConflictError, NotFoundError, ValidationError
from tests.support.nftmaps import map_items, slot
from tests.support.traffic import ping, probe, start_server, wait_until

pytestmark = pytest.mark.netns


def nft_json(lab, *args: str) -> list[dict]:
    out = lab.run("gw", "nft", "-j", "list", *args).stdout
    return [o for o in json.loads(out)["nftables"] if "metainfo" not in o]


def share(gateway) -> None:
    with gateway.client() as c:
        c.share("wan0", ["lan0"])


def test_lan_reaches_internet_through_nat(lab, gateway) -> None:
    """LAN -> Internet works for TCP, UDP and ICMP, with the source rewritten to the public address."""
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    start_server(lab.ns("inet"), "udp", 5000, "inet")
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == "timeout"  # not shared yet: no forwarding
    share(gateway)
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"
    assert probe(lab.ns("lan2"), "udp", lab.INET, 5000) == f"inet {lab.WAN_GW}"
    assert ping(lab.ns("lan1"), lab.INET)
    status = gateway.client().status()
    assert status["sharing"]["active"] and status["sharing"]["public"]["name"] == "wan0"
    assert status["sharing"]["public_address"] == lab.WAN_GW
    addrs = lab.run("gw", "ip", "-4", "-o", "addr", "show", "dev", "lan0").stdout
    assert "192.168.137.1/24" in addrs
    assert lab.run("gw", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"


def test_unsolicited_inbound_is_dropped_ipv4(lab, gateway) -> None:
    """Unsolicited TCP/UDP/ICMP to the gateway and to a LAN host is dropped (not refused)."""
    share(gateway)
    lab.route_lan_via_gateway()
    start_server(lab.ns("gw"), "tcp", 22, "gw")
    start_server(lab.ns("gw"), "udp", 5353, "gw")
    start_server(lab.ns("lan1"), "tcp", 80, "lan1")
    start_server(lab.ns("lan1"), "udp", 5000, "lan1")
    inet = lab.ns("inet")
    assert probe(inet, "tcp", lab.WAN_GW, 22) == "timeout"
    assert probe(inet, "udp", lab.WAN_GW, 5353) == "timeout"
    assert probe(inet, "tcp", lab.LAN1, 80) == "timeout"
    assert probe(inet, "udp", lab.LAN1, 5000) == "timeout"
    assert not ping(inet, lab.WAN_GW)
    assert not ping(inet, lab.LAN1)
    # The drop is ours: with ICF off the same probes get through.
    gateway.client().set_firewall("wan0", False)
    assert probe(inet, "tcp", lab.WAN_GW, 22) == f"gw {lab.INET}"
    assert probe(inet, "tcp", lab.LAN1, 80) == f"lan1 {lab.INET}"
    assert ping(inet, lab.WAN_GW)


def test_unsolicited_inbound_is_dropped_ipv6(lab, gateway) -> None:
    """IPv6: replies pass, unsolicited inbound to the gateway and to a LAN host is dropped."""
    lab.run("gw", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    share(gateway)
    start_server(lab.ns("gw"), "tcp", 22, "gw", bind="::")
    start_server(lab.ns("lan1"), "tcp", 80, "lan1", bind="::")
    start_server(lab.ns("inet"), "tcp", 80, "inet", bind="::")
    inet = lab.ns("inet")
    # Outbound + reply (neighbour discovery on three links may take a moment the first time).
    assert wait_until(
        lambda: probe(lab.ns("lan1"), "tcp", lab.INET6, 80) == f"inet {lab.LAN1_6}", timeout=10
    )
    assert probe(inet, "tcp", lab.WAN_GW6, 22) == "timeout"
    assert probe(inet, "tcp", lab.LAN1_6, 80) == "timeout"
    assert not ping(inet, lab.WAN_GW6)
    assert not ping(inet, lab.LAN1_6)
    gateway.client().set_firewall("wan0", False)
    assert probe(inet, "tcp", lab.LAN1_6, 80) == f"lan1 {lab.INET6}"


def test_port_mappings_to_lan_host_and_gateway(lab, gateway) -> None:
    """Mappings open exactly their holes; disabled or removed, they are gone."""
    share(gateway)
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    start_server(lab.ns("lan2"), "udp", 5000, "lan2")
    start_server(lab.ns("gw"), "tcp", 22, "gw")
    inet = lab.ns("inet")
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    c.add_mapping(
        "wan0", name="game", protocol="udp", external_port=5000, internal_port=5000, target=lab.LAN2
    )
    c.add_mapping("wan0", name="ssh", protocol="tcp", external_port=2222, internal_port=22)
    assert probe(inet, "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"
    assert probe(inet, "udp", lab.WAN_GW, 5000) == f"lan2 {lab.INET}"
    assert probe(inet, "tcp", lab.WAN_GW, 2222) == f"gw {lab.INET}"
    assert probe(inet, "tcp", lab.WAN_GW, 22) == "timeout"  # the internal port is not a hole
    listed = {m["name"]: m for m in c.mappings("wan0")}
    assert listed["web"]["active"] and listed["web"]["target_address"] == lab.LAN2
    assert not listed["FTP Server"]["enabled"]
    c.set_mapping_enabled("wan0", "web", False)
    c.set_mapping_enabled("wan0", "ssh", False)
    assert probe(inet, "tcp", lab.WAN_GW, 8080) == "timeout"
    assert probe(inet, "tcp", lab.WAN_GW, 2222) == "timeout"
    c.set_mapping_enabled("wan0", "web", True)
    assert probe(inet, "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"
    c.remove_mapping("wan0", "web")
    assert probe(inet, "tcp", lab.WAN_GW, 8080) == "timeout"
    assert ("tcp", 8080) not in map_items(lab, slot(c.connection("wan0")["id"]) + "_dnat_addr")
    assert all(m["name"] != "web" for m in c.mappings("wan0"))


def test_identity_mapping_to_gateway_and_builtin_service(lab, gateway) -> None:
    """80 -> 80 on the gateway (no DNAT status bit) works, via the built-in Web Server service."""
    share(gateway)
    start_server(lab.ns("gw"), "tcp", 80, "gw")
    inet = lab.ns("inet")
    assert probe(inet, "tcp", lab.WAN_GW, 80) == "timeout"
    gateway.client().set_mapping_enabled("wan0", "Web Server (HTTP)", True)
    assert probe(inet, "tcp", lab.WAN_GW, 80) == f"gw {lab.INET}"
    with pytest.raises(ConflictError):
        gateway.client().remove_mapping("wan0", "Web Server (HTTP)")


def test_hairpin_from_lan_client(lab, gateway) -> None:
    """A LAN client reaches a mapped LAN server through the public address and port."""
    share(gateway)
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    start_server(lab.ns("gw"), "tcp", 22, "gw")
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    c.add_mapping("wan0", name="ssh", protocol="tcp", external_port=2222, internal_port=22)
    # The server sees the gateway's private address, so its reply returns through the gateway.
    assert probe(lab.ns("lan1"), "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.LAN_GW}"
    assert probe(lab.ns("lan1"), "tcp", lab.WAN_GW, 2222).startswith("gw ")


def test_public_address_change_is_followed(lab, gateway) -> None:
    """DHCP renew / PPP redial: a new public address keeps NAT, mappings and hairpin working."""
    share(gateway)
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    lab.run("gw", "ip", "addr", "del", f"{lab.WAN_GW}/24", "dev", "wan0")
    lab.run("gw", "ip", "addr", "add", "198.51.100.7/24", "dev", "wan0")
    lab.run("gw", "ip", "route", "replace", "default", "via", lab.INET)
    assert wait_until(lambda: c.status()["sharing"]["public_address"] == "198.51.100.7", timeout=10)
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == "inet 198.51.100.7"
    assert probe(lab.ns("inet"), "tcp", "198.51.100.7", 8080) == f"lan2 {lab.INET}"
    assert probe(lab.ns("lan1"), "tcp", "198.51.100.7", 8080) == f"lan2 {lab.LAN_GW}"


def test_private_link_deleted_and_recreated(lab, gateway) -> None:
    """A shared private link that disappears and comes back gets its address and rules back."""
    share(gateway)
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"
    lab.run("gw", "ip", "link", "del", "lan0")
    assert wait_until(
        lambda: "not present" in " ".join(gateway.client().status()["problems"]), timeout=10
    )
    lab.run(
        "gw",
        "ip",
        "link",
        "add",
        "lan0",
        "type",
        "veth",
        "peer",
        "name",
        "p0",
        "netns",
        lab.ns("sw"),
    )
    lab.run("sw", "ip", "link", "set", "p0", "master", "br0")
    lab.run("sw", "ip", "link", "set", "p0", "up")
    lab.run("gw", "ip", "link", "set", "lan0", "up")
    assert wait_until(
        lambda: probe(lab.ns("lan1"), "tcp", lab.INET, 80, timeout=0.5) == f"inet {lab.WAN_GW}",
        timeout=15,
    )
    assert (
        "192.168.137.1/24" in lab.run("gw", "ip", "-4", "-o", "addr", "show", "dev", "lan0").stdout
    )


def test_mapping_to_a_host_name(lab, tmp_path) -> None:
    """A mapping to a host name resolves it (here: the gateway namespace's /etc/hosts)."""
    from tests.support.daemon import Daemon

    etc = f"/etc/netns/{lab.ns('gw')}"
    subprocess.run(["mkdir", "-p", etc], check=True)
    with open(f"{etc}/hosts", "w") as f:
        f.write(f"127.0.0.1 localhost\n{lab.LAN2} lanbox\n")
    daemon = Daemon(lab.ns("gw"), tmp_path)
    try:
        daemon.start()
        share(daemon)
        start_server(lab.ns("lan2"), "tcp", 80, "lan2")
        c = daemon.client()
        c.add_mapping(
            "wan0",
            name="web",
            protocol="tcp",
            external_port=8080,
            internal_port=80,
            target="lanbox",
        )
        c.add_mapping(
            "wan0",
            name="ghost",
            protocol="tcp",
            external_port=8081,
            internal_port=80,
            target="nosuchhost",
        )
        assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"
        listed = {m["name"]: m for m in c.mappings("wan0")}
        assert listed["web"]["target"] == "lanbox" and listed["web"]["target_address"] == lab.LAN2
        assert listed["ghost"]["active"] is False and listed["ghost"]["target_address"] is None
    finally:
        daemon.cleanup()
        subprocess.run(["rm", "-rf", etc], check=False)


def test_foreign_table_survives_share_unshare_teardown(lab, gateway) -> None:
    """sharewall owns only table inet sharewall: another table in the namespace is never touched."""
    lab.run(
        "gw",
        "nft",
        "add table ip foreign; add chain ip foreign c { type filter hook input priority 10; };"
        " add rule ip foreign c tcp dport 9 counter accept",
    )
    before = lab.run("gw", "nft", "list", "table", "ip", "foreign").stdout
    share(gateway)
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    c.unshare()
    c.teardown()
    assert lab.run("gw", "nft", "list", "table", "ip", "foreign").stdout == before
    assert lab.run("gw", "nft", "list", "table", "inet", "sharewall", check=False).returncode != 0


def test_teardown_and_unshare_undo_exactly_what_sharing_did(lab, gateway) -> None:
    lab.run("gw", "sysctl", "-qw", "net.ipv4.ip_forward=0")
    share(gateway)
    c = gateway.client()
    c.unshare()
    assert lab.run("gw", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert (
        "192.168.137.1" not in lab.run("gw", "ip", "-4", "-o", "addr", "show", "dev", "lan0").stdout
    )
    share(gateway)
    c.teardown()
    assert wait_until(lambda: gateway.proc.poll() is not None, timeout=10)
    assert lab.run("gw", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert (
        "192.168.137.1" not in lab.run("gw", "ip", "-4", "-o", "addr", "show", "dev", "lan0").stdout
    )
    assert lab.run("gw", "nft", "list", "table", "inet", "sharewall", check=False).returncode != 0


def test_stopping_the_daemon_keeps_the_gateway_working_and_restart_converges(lab, gateway) -> None:
    share(gateway)
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    before = lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout
    gateway.stop()
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == "timeout"  # still protected
    gateway.start()
    after = lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout
    assert after == before
    assert lab.run("gw", "nft", "list", "tables").stdout.count("sharewall") == 1


def test_api_errors_change_nothing(lab, gateway) -> None:
    share(gateway)
    c = gateway.client()
    c.add_mapping(
        "wan0", name="web", protocol="tcp", external_port=8080, internal_port=80, target=lab.LAN2
    )
    before = lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout
    with pytest.raises(NotFoundError):
        c.add_mapping("nope0", name="x", protocol="tcp", external_port=1, internal_port=1)
    with pytest.raises(ConflictError):
        c.add_mapping("wan0", name="web2", protocol="tcp", external_port=8080, internal_port=80)
    with pytest.raises(ValidationError):
        c.share("wan0", ["lan0"], private_address="8.8.8.8/24")
    assert lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout == before
    for args, needle in (
        (
            (
                "mappings",
                "add",
                "nope0",
                "x",
                "--protocol",
                "tcp",
                "--external-port",
                "1",
                "--internal-port",
                "1",
            ),
            "unknown connection",
        ),
        (
            (
                "mappings",
                "add",
                "wan0",
                "x",
                "--protocol",
                "tcp",
                "--external-port",
                "70000",
                "--internal-port",
                "1",
            ),
            "65535",
        ),
        (
            (
                "mappings",
                "add",
                "wan0",
                "dup",
                "--protocol",
                "tcp",
                "--external-port",
                "8080",
                "--internal-port",
                "1",
                "--target",
                lab.LAN2,
            ),
            "already used",
        ),
        (
            (
                "mappings",
                "add",
                "wan0",
                "x",
                "--protocol",
                "tcp",
                "--external-port",
                "1",
                "--internal-port",
                "1",
                "--target",
                "1.2.3.4.5",
            ),
            "target",
        ),
    ):
        result = gateway.cli(*args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, result.stderr)
    assert lab.run("gw", "nft", "list", "table", "inet", "sharewall").stdout == before


def test_unprivileged_caller_cannot_change_state(lab, gateway) -> None:
    """Reads are open to anyone; changes need root or group sharewall (SO_PEERCRED), checked with curl."""
    share(gateway)
    sock = str(gateway.socket)

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--unix-socket", sock, *args],
            capture_output=True,
            text=True,
            timeout=20,
            user=65534,
        )

    read = curl("http://sharewall/v1/status")
    assert read.returncode == 0 and json.loads(read.stdout)["sharing"]["active"] is True
    write = curl("-X", "DELETE", "-w", "\n%{http_code}", "http://sharewall/v1/sharing")
    body, code = write.stdout.rsplit("\n", 1)
    assert code == "403" and json.loads(body)["error"]["code"] == "permission_denied"
    assert gateway.client().status()["sharing"]["active"] is True


def test_a_disabled_mapping_ends_its_existing_flows(lab, gateway) -> None:
    """A UDP stream through a mapping stops when the mapping is disabled: its conntrack entry goes
    with it, so the next datagram of the same flow is unsolicited again."""
    share(gateway)
    start_server(lab.ns("lan2"), "udp", 5000, "lan2")
    c = gateway.client()
    c.add_mapping("wan0", name="game", protocol="udp", external_port=5000, internal_port=5000,
                  target=lab.LAN2)  # fmt: skip
    inet = lab.ns("inet")
    assert probe(inet, "udp", lab.WAN_GW, 5000, src_port=41000) == f"lan2 {lab.INET}"
    assert probe(inet, "udp", lab.WAN_GW, 5000, src_port=41000) == f"lan2 {lab.INET}"  # same flow
    c.set_mapping_enabled("wan0", "game", False)
    assert probe(inet, "udp", lab.WAN_GW, 5000, src_port=41000) == "timeout"
    c.set_mapping_enabled("wan0", "game", True)
    assert probe(inet, "udp", lab.WAN_GW, 5000, src_port=41000) == f"lan2 {lab.INET}"
    c.remove_mapping("wan0", "game")
    assert probe(inet, "udp", lab.WAN_GW, 5000, src_port=41000) == "timeout"
