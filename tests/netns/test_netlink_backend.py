"""backends.netlink against a real kernel, inside throwaway namespaces.

Each check runs a small asyncio script in a namespace (the watcher acts on the namespace it runs
in, as the daemon does) and prints JSON for the test to judge.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.env import require_binary, require_root
from tests.support.netns import Netns, namespaces, unique_prefix, veth

pytestmark = pytest.mark.netns

# Quotes, braces, a dollar and a non-UTF-8 byte: legal in the kernel, hostile to text interpolation.
ODD_NAME = 'x";{$'
NON_UTF8_NAME_BYTES = b"\xc3\xa9\xff"


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns]]:
    require_root()
    require_binary("ip")
    prefix = unique_prefix("l")
    with namespaces(f"{prefix}-a", f"{prefix}-b") as (a, b):
        for ns in (a, b):
            # No IPv6 duplicate address detection: its completion, about a second after a link
            # comes up, would be a stray address event in the middle of the wait_change tests.
            ns.python("open('/proc/sys/net/ipv6/conf/default/accept_dad', 'w').write('0')")
        veth(a, "veth-a", b, "veth-b")
        yield a, b


def run_script(ns: Netns, body: str) -> Any:
    """Run ``body`` (the inside of ``async def main()``, which returns a JSON-able value) in ``ns``."""
    code = "\n".join(
        [
            "import asyncio, json, os, sys",
            "from sharewall.backends.netlink import NetlinkWatcher, snapshot",
            "async def main():",
            textwrap.indent(textwrap.dedent(body), "    "),
            "print(json.dumps(asyncio.run(main())))",
        ]
    )
    return json.loads(ns.python(code))


def test_snapshot_reports_veth_with_its_addresses(pair: tuple[Netns, Netns]) -> None:
    """A veth shows kind, MAC, flags, MTU and both address families exactly as `ip` set them."""
    a, _ = pair
    a.run("ip", "address", "add", "10.77.0.1/24", "dev", "veth-a")
    a.run("ip", "address", "add", "2001:db8:77::1/64", "dev", "veth-a", "nodad")
    a.run("ip", "link", "set", "veth-a", "mtu", "1400")
    mac = json.loads(a.run("ip", "-json", "link", "show", "veth-a").stdout)[0]["address"]

    result = run_script(
        a,
        """
        async with NetlinkWatcher() as watcher:
            links = await watcher.snapshot()
        out = {}
        for name, link in links.items():
            out[name] = {
                "index": link.index, "kind": link.kind, "mac": link.mac, "up": link.up,
                "carrier": link.carrier, "mtu": link.mtu, "wireless": link.wireless,
                "ipv4": [str(i) for i in link.ipv4], "ipv6": [str(i) for i in link.ipv6],
                "loopback": link.is_loopback,
            }
        return out
        """,
    )
    assert set(result) == {"lo", "veth-a"}
    veth_a = result["veth-a"]
    assert veth_a["kind"] == "veth"
    assert veth_a["mac"] == mac
    assert veth_a["up"] is True
    assert veth_a["carrier"] is True  # the peer in b is up too
    assert veth_a["mtu"] == 1400
    assert veth_a["wireless"] is False
    assert veth_a["ipv4"] == ["10.77.0.1/24"]
    assert "2001:db8:77::1/64" in veth_a["ipv6"]
    assert all(addr.startswith(("2001:db8:77::", "fe80:")) for addr in veth_a["ipv6"])
    assert result["lo"]["loopback"] is True
    assert result["lo"]["ipv4"] == ["127.0.0.1/8"]


def test_snapshot_helper_accepts_an_ipr_and_sees_link_state(pair: tuple[Netns, Netns]) -> None:
    """The module-level snapshot() works on a caller's AsyncIPRoute; a downed peer clears carrier."""
    a, b = pair
    b.run("ip", "link", "set", "veth-b", "down")
    result = run_script(
        a,
        """
        from pyroute2 import AsyncIPRoute
        async with AsyncIPRoute() as ipr:
            links = await snapshot(ipr)
        return {"up": links["veth-a"].up, "carrier": links["veth-a"].carrier}
        """,
    )
    assert result == {"up": True, "carrier": False}


def test_wait_change_fires_after_another_process_adds_an_address(pair: tuple[Netns, Netns]) -> None:
    """An `ip addr add` run by another process wakes wait_change; with no change it times out."""
    a, _ = pair
    result = run_script(
        a,
        """
        async with NetlinkWatcher() as watcher:
            await watcher.snapshot()
            quiet = await watcher.wait_change(timeout=0.2)
            proc = await asyncio.create_subprocess_exec(
                "ip", "address", "add", "10.77.0.9/24", "dev", "veth-a")
            assert await proc.wait() == 0
            loop = asyncio.get_running_loop()
            started = loop.time()
            changed = await watcher.wait_change(timeout=5)
            elapsed = loop.time() - started
            links = await watcher.snapshot()
            # The burst was consumed: nothing further is pending.
            after = await watcher.wait_change(timeout=0.2)
        return {
            "quiet": quiet, "changed": changed, "elapsed": elapsed, "after": after,
            "ipv4": [str(i) for i in links["veth-a"].ipv4],
        }
        """,
    )
    assert result["quiet"] is False
    assert result["changed"] is True
    assert result["elapsed"] < 2
    assert result["after"] is False
    assert result["ipv4"] == ["10.77.0.9/24"]


def test_wait_change_sees_a_change_made_before_the_call(pair: tuple[Netns, Netns]) -> None:
    """A change between snapshot() and wait_change() is not lost: the call returns at once."""
    a, _ = pair
    result = run_script(
        a,
        """
        async with NetlinkWatcher() as watcher:
            await watcher.snapshot()
            proc = await asyncio.create_subprocess_exec("ip", "link", "set", "veth-a", "down")
            assert await proc.wait() == 0
            return await watcher.wait_change(timeout=1)
        """,
    )
    assert result is True


def test_add_and_remove_address_are_idempotent(pair: tuple[Netns, Netns]) -> None:
    """Adding twice and removing twice succeed; IPv4 gets a broadcast address like `brd +`."""
    a, _ = pair
    result = run_script(
        a,
        """
        async with NetlinkWatcher() as watcher:
            await watcher.add_address("veth-a", "192.168.137.1/24")
            await watcher.add_address("veth-a", "192.168.137.1/24")
            await watcher.add_address("veth-a", "2001:db8:137::1/64")
            added = await watcher.snapshot()
            proc = await asyncio.create_subprocess_exec(
                "ip", "-json", "address", "show", "dev", "veth-a",
                stdout=asyncio.subprocess.PIPE)
            shown, _ = await proc.communicate()
            await watcher.remove_address("veth-a", "192.168.137.1/24")
            await watcher.remove_address("veth-a", "192.168.137.1/24")
            await watcher.remove_address("veth-a", "2001:db8:137::1/64")
            await watcher.remove_address("no-such-if", "10.0.0.1/8")
            removed = await watcher.snapshot()
        return {
            "added4": [str(i) for i in added["veth-a"].ipv4],
            "added6": [str(i) for i in added["veth-a"].ipv6],
            "removed4": [str(i) for i in removed["veth-a"].ipv4],
            "removed6": [str(i) for i in removed["veth-a"].ipv6],
            "shown": json.loads(shown),
        }
        """,
    )
    assert result["added4"] == ["192.168.137.1/24"]
    assert "2001:db8:137::1/64" in result["added6"]
    assert result["removed4"] == []
    assert "2001:db8:137::1/64" not in result["removed6"]
    inet = [entry for entry in result["shown"][0]["addr_info"] if entry["family"] == "inet"]
    assert inet[0].get("broadcast") == "192.168.137.255"


def test_errors_are_sharewall_errors(pair: tuple[Netns, Netns]) -> None:
    """A bad CIDR is a ValidationError and a missing interface a NotFoundError."""
    a, _ = pair
    result = run_script(
        a,
        """
        from sharewall.errors import NotFoundError, ValidationError
        out = []
        async with NetlinkWatcher() as watcher:
            for call in (
                watcher.add_address("veth-a", "not-an-address"),
                watcher.add_address("no-such-if", "10.0.0.1/8"),
                watcher.set_up("no-such-if"),
            ):
                try:
                    await call
                    out.append("no error")
                except (NotFoundError, ValidationError) as error:
                    out.append(type(error).__name__)
        return out
        """,
    )
    assert result == ["ValidationError", "NotFoundError", "NotFoundError"]


def test_set_up_brings_a_link_up(pair: tuple[Netns, Netns]) -> None:
    a, _ = pair
    a.run("ip", "link", "set", "veth-a", "down")
    result = run_script(
        a,
        """
        async with NetlinkWatcher() as watcher:
            await watcher.set_up("veth-a")
            await watcher.set_up("veth-a")
            return (await watcher.snapshot())["veth-a"].up
        """,
    )
    assert result is True


def test_odd_interface_names_are_reported_exactly(pair: tuple[Netns, Netns]) -> None:
    """Names with quotes, braces, '$' and non-UTF-8 bytes round-trip through snapshot and add_address."""
    a, b = pair
    veth(a, ODD_NAME, b, "odd-peer")
    # ip takes argv bytes; surrogateescape carries the invalid byte through subprocess unchanged.
    non_utf8 = NON_UTF8_NAME_BYTES.decode("utf-8", "surrogateescape")
    veth(a, non_utf8, b, "raw-peer")
    result = run_script(
        a,
        f"""
        odd = {ODD_NAME!r}
        raw = os.fsdecode({NON_UTF8_NAME_BYTES!r})
        async with NetlinkWatcher() as watcher:
            await watcher.add_address(odd, "10.88.0.1/24")
            await watcher.add_address(raw, "10.89.0.1/24")
            links = await watcher.snapshot()
        return {{
            "names": sorted(os.fsencode(name).hex() for name in links),
            "odd": [str(i) for i in links[odd].ipv4],
            "raw": [str(i) for i in links[raw].ipv4],
        }}
        """,
    )
    expected = {"lo", "veth-a", ODD_NAME}
    assert sorted(result["names"]) == sorted(
        [name.encode().hex() for name in expected] + [NON_UTF8_NAME_BYTES.hex()]
    )
    assert result["odd"] == ["10.88.0.1/24"]
    assert result["raw"] == ["10.89.0.1/24"]
