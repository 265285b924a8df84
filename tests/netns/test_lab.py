"""The lab topology: built outside the root namespace, connected as drawn, and removed without trace."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from sharewall.errors import ConflictError
from sharewall.lab import Lab, list_namespaces, namespace_pids
from tests.support.env import require_binary, require_root
from tests.support.netns import Netns, namespaces, unique_prefix, veth

pytestmark = pytest.mark.netns


def lab_namespaces(prefix: str) -> list[str]:
    return [name for name in list_namespaces() if name.startswith(f"{prefix}-")]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_binary("ip")
    the_lab = Lab(prefix=unique_prefix("l"))
    try:  # registered before up(): a failed or interrupted build is still removed
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()


def in_lab(lab: Lab, role: str) -> Netns:
    """A Netns handle on a lab namespace, for its ping helper (the lab, not the handle, owns it)."""
    return Netns(lab.ns(role))


def test_up_creates_every_namespace_and_leaves_root_alone(lab: Lab) -> None:
    """All five namespaces exist and the lab's interfaces are nowhere in the root namespace."""
    assert sorted(lab_namespaces(lab.prefix)) == sorted(lab.ns(role) for role in Lab.ROLES)
    assert lab.exists()
    root_links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("wan0", "lan0", "p0", "p1", "p2"):
        assert f" {name}@" not in root_links and f" {name}:" not in root_links


def test_gateway_and_internet_reach_each_other(lab: Lab) -> None:
    assert in_lab(lab, "gw").ping(Lab.INET)
    assert in_lab(lab, "inet").ping(Lab.WAN_GW)
    assert in_lab(lab, "gw").ping(Lab.INET6)
    assert in_lab(lab, "inet").ping(Lab.WAN_GW6)


def test_lan_clients_reach_each_other_through_the_switch(lab: Lab) -> None:
    assert in_lab(lab, "lan1").ping(Lab.LAN2)
    assert in_lab(lab, "lan2").ping(Lab.LAN1)
    assert in_lab(lab, "lan1").ping(Lab.LAN2_6)
    assert in_lab(lab, "lan1").ping(Lab.LAN_GW6)  # gw:lan0 hangs off the same switch


def test_gateway_lan_side_has_no_ipv4_until_sharing(lab: Lab) -> None:
    shown = lab.run("gw", "ip", "-o", "-4", "address", "show", "dev", Lab.GW_LAN_IF).stdout
    assert shown.strip() == ""


def test_internet_has_no_route_to_the_lan_until_asked(lab: Lab) -> None:
    """Like a real Internet host, inet cannot address 192.168.137.0/24 until route_lan_via_gateway()."""
    before = lab.run("inet", "ip", "route", "get", Lab.LAN1, check=False)
    assert before.returncode != 0  # "Network is unreachable"
    lab.route_lan_via_gateway()
    lab.route_lan_via_gateway()  # idempotent
    after = lab.run("inet", "ip", "route", "get", Lab.LAN1).stdout
    assert f"via {Lab.WAN_GW} " in after


def test_up_twice_is_a_conflict(lab: Lab) -> None:
    with pytest.raises(ConflictError):
        lab.up()
    assert lab.exists()  # the failed second up() did not tear down the first


def test_down_removes_everything_and_stops_processes(lab: Lab) -> None:
    """down() kills what runs in the lab, leaves no namespace of the prefix, and may be repeated."""
    sleeper = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("gw"), "sleep", "60"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 5  # the child needs a moment to enter the namespace
        while not namespace_pids(lab.ns("gw")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert namespace_pids(lab.ns("gw"))
        lab.down()
        assert sleeper.wait(timeout=5) != 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert lab_namespaces(lab.prefix) == []
    assert not lab.exists()
    lab.down()


def test_static_false_leaves_lan_ipv4_off() -> None:
    require_root()
    lab = Lab(prefix=unique_prefix("l"), static=False)
    try:
        lab.up()
        shown = lab.run("lan1", "ip", "-o", "-4", "address", "show", "dev", Lab.HOST_IF).stdout
        assert shown.strip() == ""
        assert in_lab(lab, "lan1").ping(Lab.LAN2_6)  # IPv6 stays static
    finally:
        lab.down()
    assert lab_namespaces(lab.prefix) == []


def test_support_namespaces_are_removed_even_when_the_body_fails() -> None:
    """tests.support.netns: /etc/netns files show up as /etc inside, and everything goes on error."""
    require_root()
    prefix = unique_prefix("l")
    with pytest.raises(KeyboardInterrupt), namespaces(f"{prefix}-x", f"{prefix}-y") as (x, y):
        veth(x, "ex", y, "ey")
        path = x.write_etc("resolv.conf", "nameserver 192.0.2.53\n")
        assert x.run("cat", "/etc/resolv.conf").stdout == "nameserver 192.0.2.53\n"
        x.popen("sleep", "60", stdout=subprocess.DEVNULL)
        raise KeyboardInterrupt
    assert lab_namespaces(prefix) == []
    assert not os.path.exists(os.path.dirname(path))
