"""dnsmasq config compiler: golden files, determinism, and the inputs it must refuse.

Each folder in ``golden_dnsmasq/`` holds ``input.json`` (networks, settings, upstreams, paths, and
optionally run_as_user and reservations), ``expected.conf`` (and ``expected.hosts`` when there are
reservations) and a one-line ``README`` stating the intent. ``SHAREWALL_UPDATE_GOLDEN=1`` rewrites
the expected files; review the diff.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sharewall.compiler.dnsmasq import (
    DnsmasqPaths,
    PrivateNetwork,
    check_dnsmasq_ifname,
    dnsmasq_argv,
    render_dnsmasq_config,
    render_hosts_file,
)
from sharewall.errors import ConflictError, ValidationError
from sharewall.model.dhcp import DhcpSettings, Reservation, make_reservation

GOLDEN = Path(__file__).parent / "golden_dnsmasq"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").is_file())
UPDATE = os.environ.get("SHAREWALL_UPDATE_GOLDEN") == "1"

PATHS = DnsmasqPaths(
    conf_file="/run/sw/dnsmasq.conf",
    lease_file="/run/sw/leases",
    hosts_file="/run/sw/hosts",
    script="/run/sw/dhcp-event",
)
LAN = PrivateNetwork("swp0", ipaddress.IPv4Interface("192.168.137.1/24"))


def _networks(raw: list[dict[str, str]]) -> list[PrivateNetwork]:
    return [PrivateNetwork(n["ifname"], ipaddress.IPv4Interface(n["gateway"])) for n in raw]


def _render(case: dict[str, Any]) -> tuple[str, str | None]:
    networks = _networks(case["networks"])
    conf = render_dnsmasq_config(
        networks,
        msgspec.convert(case["settings"], DhcpSettings),
        case["upstreams"],
        DnsmasqPaths(**case["paths"]),
        run_as_user=case.get("run_as_user", "dnsmasq"),
    )
    if "reservations" not in case:
        return conf, None
    gateways = [n.gateway for n in networks]
    reservations = [
        make_reservation(r["mac"], r["ip"], r["hostname"], gateways) for r in case["reservations"]
    ]
    return conf, render_hosts_file(reservations)


def _compare(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual)
    assert path.is_file(), f"{path} missing: run with SHAREWALL_UPDATE_GOLDEN=1 and review"
    assert actual == path.read_text()


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    """The rendered config (and reservations file) match the reviewed golden text exactly."""
    folder = GOLDEN / case
    assert (folder / "README").read_text().strip(), "each case states its intent"
    conf, hosts = _render(json.loads((folder / "input.json").read_text()))
    _compare(folder / "expected.conf", conf)
    if hosts is not None:
        _compare(folder / "expected.hosts", hosts)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 3


def test_output_does_not_depend_on_network_order() -> None:
    """The same networks in another order give byte-identical text (restart only on real change)."""
    other = PrivateNetwork("eth9", ipaddress.IPv4Interface("10.1.0.1/24"))
    one = render_dnsmasq_config([LAN, other], DhcpSettings(), ["192.0.2.1"], PATHS)
    two = render_dnsmasq_config([other, LAN], DhcpSettings(), ["192.0.2.1"], PATHS)
    assert one == two


def test_every_directive_has_a_comment_above_it() -> None:
    conf = render_dnsmasq_config([LAN], DhcpSettings(), ["192.0.2.1"], PATHS)
    lines = conf.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"directive {line!r} has no comment"


def test_argv_uses_only_the_generated_file() -> None:
    assert dnsmasq_argv(PATHS) == ["dnsmasq", "-k", "--conf-file=/run/sw/dnsmasq.conf"]


@pytest.mark.parametrize(
    "ifname", ["a,b", "a#b", "a=b", "a b", "a\tb", 'a"b', "a\\b", "eth*", "", "x" * 16, "a/b", "."]
)
def test_interface_names_dnsmasq_would_misread_are_refused(ifname: str) -> None:
    with pytest.raises(ValidationError, match="interface name"):
        check_dnsmasq_ifname(ifname)
    with pytest.raises(ValidationError):
        render_dnsmasq_config([PrivateNetwork(ifname, LAN.gateway)], DhcpSettings(), [], PATHS)


@pytest.mark.parametrize("ifname", ["eth0", "br-lan", "eth0.100", "wlp0s20f3", "veth_1@x"])
def test_ordinary_interface_names_pass(ifname: str) -> None:
    assert check_dnsmasq_ifname(ifname) == ifname


def test_no_network_is_refused() -> None:
    """Without interface= lines dnsmasq would serve every interface, the public one included."""
    with pytest.raises(ValidationError, match="at least one"):
        render_dnsmasq_config([], DhcpSettings(), [], PATHS)


def test_same_interface_twice_is_a_conflict() -> None:
    twin = PrivateNetwork("swp0", ipaddress.IPv4Interface("10.0.0.1/24"))
    with pytest.raises(ConflictError, match="twice"):
        render_dnsmasq_config([LAN, twin], DhcpSettings(), [], PATHS)


def test_overlapping_networks_are_a_conflict() -> None:
    wide = PrivateNetwork("swp1", ipaddress.IPv4Interface("192.168.0.1/16"))
    with pytest.raises(ConflictError, match="overlap"):
        render_dnsmasq_config([LAN, wide], DhcpSettings(), [], PATHS)


def test_upstream_that_is_our_own_gateway_would_loop() -> None:
    with pytest.raises(ValidationError, match="loop"):
        render_dnsmasq_config([LAN], DhcpSettings(), ["192.168.137.1"], PATHS)


@pytest.mark.parametrize("bad", ["8.8.8.8.8", "dns.example", "0.0.0.0", "fe80::1%eth0"])
def test_bad_upstreams_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="upstream"):
        render_dnsmasq_config([LAN], DhcpSettings(), [bad], PATHS)


@pytest.mark.parametrize(
    "paths",
    [
        DnsmasqPaths("relative.conf", "/l", "/h"),
        DnsmasqPaths("/c", "/my leases", "/h"),
        DnsmasqPaths("/c", "/l", "/h,x"),
        DnsmasqPaths("/c", "/l", "/h", script="/s#x"),
        DnsmasqPaths("/c", "/l", "/h", pid_file="/p\nserver=6.6.6.6"),
    ],
)
def test_paths_dnsmasq_would_misread_are_refused(paths: DnsmasqPaths) -> None:
    with pytest.raises(ValidationError):
        render_dnsmasq_config([LAN], DhcpSettings(), [], paths)


def test_run_as_user_must_be_a_plain_name() -> None:
    with pytest.raises(ValidationError, match="run_as_user"):
        render_dnsmasq_config([LAN], DhcpSettings(), [], PATHS, run_as_user="root\nno-resolv")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (DhcpSettings(lease_time_s=60), "lease time"),
        (DhcpSettings(domain="bad_domain"), "domain"),
        (DhcpSettings(range_start_offset=0), "offsets"),
        (DhcpSettings(range_start_offset=50, range_end_offset=40), "offsets"),
        (DhcpSettings(range_end_offset=255), "do not fit"),
        (DhcpSettings(range_start="192.168.137.1", range_end="192.168.137.9"), "gateway"),
        (DhcpSettings(range_start="192.168.137.0", range_end="192.168.137.9"), "host addresses"),
        (DhcpSettings(range_start="192.168.137.9"), "both"),
    ],
)
def test_bad_settings_are_refused(settings: DhcpSettings, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        render_dnsmasq_config([LAN], settings, [], PATHS)


def test_small_network_needs_an_explicit_range() -> None:
    small = PrivateNetwork("swp0", ipaddress.IPv4Interface("192.168.137.1/28"))
    with pytest.raises(ValidationError, match="do not fit"):
        render_dnsmasq_config([small], DhcpSettings(), [], PATHS)
    fitted = DhcpSettings(range_start="192.168.137.2", range_end="192.168.137.14")
    conf = render_dnsmasq_config([small], fitted, [], PATHS)
    assert "dhcp-range=set:lan0,192.168.137.2,192.168.137.14,255.255.255.240,3600" in conf


def test_hosts_file_renormalises_and_refuses_injection() -> None:
    raw = Reservation(mac="AA-BB-CC-00-00-01", ip="192.168.137.5", hostname="Box")
    assert render_hosts_file([raw]).splitlines()[1] == "aa:bb:cc:00:00:01,192.168.137.5,box"
    evil = Reservation(mac="aa:bb:cc:00:00:01", ip="192.168.137.5", hostname="x\ndhcp-range=1")
    with pytest.raises(ValidationError):
        render_hosts_file([evil])


def test_hosts_file_refuses_duplicates() -> None:
    a = Reservation(mac="aa:bb:cc:00:00:01", ip="192.168.137.5")
    b = Reservation(mac="aa:bb:cc:00:00:02", ip="192.168.137.5")
    with pytest.raises(ConflictError, match=r"192\.168\.137\.5"):
        render_hosts_file([a, b])


def test_empty_hosts_file_is_only_the_header() -> None:
    assert render_hosts_file([]).count("\n") == 1


@pytest.mark.parametrize("case", CASES)
def test_golden_config_passes_dnsmasq_syntax_check(case: str) -> None:
    """The real dnsmasq accepts every golden config (``--test`` only parses; no root needed)."""
    import subprocess

    from tests.support.env import require_binary

    binary = require_binary("dnsmasq")
    conf = GOLDEN / case / "expected.conf"
    result = subprocess.run(
        [binary, "--test", f"--conf-file={conf}"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stderr
