"""The nft backend (libnftables and ``nft`` subprocess paths) and the sysctl backend against the real
kernel, inside throwaway namespaces named ``sw-tn…``.

The test process stays in the root namespace. Contexts are only ever created by
``NftBackend(netns=...)`` / ``Nft.in_netns(...)`` (a thread that setns()'d first) or by a Python
subprocess under ``ip netns exec``; an independent observer (``ip netns exec NS nft``) checks results.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sharewall.backends.nft import Nft, NftBackend, NftMode, _OwnerThread, load_libnftables
from sharewall.errors import KernelError
from tests.support.env import in_ci, require_binary, require_root

pytestmark = pytest.mark.netns

MODES: list[NftMode] = ["library", "cli"]
FAMILY = "inet"
TABLE = "sw_tn_ours"
HOSTILE_IFNAME = 'x";{$'


# --- helpers -------------------------------------------------------------------------------------


def _run(
    *argv: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, input=input, capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
    return proc


def _namespace_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


@pytest.fixture
def ns() -> Iterator[str]:
    """A fresh namespace with lo up; deleted afterwards whatever happens."""
    require_root()
    require_binary("ip")
    require_binary("nft")
    name = f"sw-tn{secrets.token_hex(3)}"
    assert not _namespace_exists(name)
    try:  # cleanup registered before creation
        _run("ip", "netns", "add", name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        if _namespace_exists(name):
            _run("ip", "netns", "del", name, check=False)


def _require_mode(mode: NftMode) -> None:
    if mode == "library" and not load_libnftables():
        if in_ci():
            pytest.fail("libnftables.so.1 cannot be loaded (CI=true)")
        pytest.skip("libnftables.so.1 cannot be loaded")


def observe(ns: str, *args: str) -> str:
    """``nft ARGS`` run in the namespace by a separate process: the independent witness."""
    return _run("ip", "netns", "exec", ns, "nft", *args).stdout


def observe_table(ns: str, family: str = FAMILY, name: str = TABLE) -> str:
    return observe(ns, "-j", "list", "table", family, name)


def observe_tables(ns: str) -> set[tuple[str, str]]:
    doc = json.loads(observe(ns, "-j", "list", "tables"))
    return {(o["table"]["family"], o["table"]["name"]) for o in doc["nftables"] if "table" in o}


def root_tables() -> set[tuple[str, str]]:
    """Tables of the root namespace (read only), to prove we never touched it."""
    doc = json.loads(_run("nft", "-j", "list", "tables").stdout)
    return {(o["table"]["family"], o["table"]["name"]) for o in doc["nftables"] if "table" in o}


def set_elements(ns: str, set_name: str) -> list[Any]:
    doc = json.loads(observe(ns, "-j", "list", "set", FAMILY, TABLE, set_name))
    for obj in doc["nftables"]:
        if "set" in obj:
            return list(obj["set"].get("elem", []))
    raise AssertionError("set not listed")


def t(**body: Any) -> dict[str, Any]:
    return {"family": FAMILY, "table": TABLE, **body}


def table_body() -> dict[str, Any]:
    return {"family": FAMILY, "name": TABLE}


def build_table(elements: list[int], *, rule_port: int = 22) -> list[dict[str, Any]]:
    """A replace batch: our table with a set, a map, a base chain and a rule."""
    commands: list[dict[str, Any]] = [
        {"add": {"table": table_body()}},
        {"delete": {"table": table_body()}},
        {"add": {"table": table_body()}},
        {"add": {"set": t(name="ports", type="inet_service")}},
        {"add": {"map": t(name="fwd_addr", type="inet_service", map="ipv4_addr")}},
        {"add": {"chain": t(name="input", type="filter", hook="input", prio=0, policy="accept")}},
        {
            "add": {
                "rule": t(
                    chain="input",
                    expr=[
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                "right": rule_port,
                            }
                        },
                        {"counter": None},
                        {"accept": None},
                    ],
                )
            }
        },
    ]
    if elements:
        commands.append({"add": {"element": t(name="ports", elem=elements)}})
    return commands


def run_async(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


@pytest.fixture(params=MODES)
def backend(request: pytest.FixtureRequest, ns: str) -> Iterator[NftBackend]:
    mode: NftMode = request.param
    _require_mode(mode)
    before_root = root_tables()
    nft = NftBackend(netns=ns, mode=mode)
    try:
        assert nft.uses_library == (mode == "library")
        yield nft
    finally:
        run_async(nft.aclose())
        # Our tables never appeared in the root namespace.
        assert (FAMILY, TABLE) not in root_tables() - before_root


# --- basic operations ----------------------------------------------------------------------------


def test_apply_list_exists_delete(backend: NftBackend, ns: str) -> None:
    """A batch creates our table in the namespace; list/exists see it; delete removes only it."""

    async def scenario() -> None:
        assert await backend.list_table(FAMILY, TABLE) is None
        assert not await backend.table_exists(FAMILY, TABLE)
        await backend.delete_table(FAMILY, TABLE)  # absent: no error

        await backend.apply(build_table([22, 80]))
        assert (FAMILY, TABLE) in observe_tables(ns)
        assert await backend.table_exists(FAMILY, TABLE)
        assert not await backend.table_exists("ip", TABLE)
        objects = await backend.list_table(FAMILY, TABLE)
        assert objects is not None
        assert not any("metainfo" in o for o in objects)
        kinds = [next(iter(o)) for o in objects]
        assert kinds.count("table") == 1 and "chain" in kinds and "rule" in kinds
        names = {o[k]["name"] for o in objects for k in ("set", "map") if k in o}
        assert names == {"ports", "fwd_addr"}
        ports = next(o["set"] for o in objects if "set" in o)
        assert sorted(ports["elem"]) == [22, 80]

        await backend.delete_table(FAMILY, TABLE)
        assert (FAMILY, TABLE) not in observe_tables(ns)
        assert await backend.list_table(FAMILY, TABLE) is None

    run_async(scenario())


def test_run_json_returns_list_output(backend: NftBackend) -> None:
    async def scenario() -> list[dict[str, Any]]:
        await backend.apply(build_table([]))
        return await backend.run_json(
            [{"list": {"tables": {"family": FAMILY}}}, {"list": {"set": t(name="ports")}}]
        )

    out = run_async(scenario())
    assert {"table", "set"} <= {next(iter(o)) for o in out}
    assert not any("metainfo" in o for o in out)


def test_error_message_comes_from_nft(backend: NftBackend) -> None:
    with pytest.raises(KernelError) as info:
        run_async(backend.apply([{"delete": {"table": table_body()}}]))
    assert info.value.message == "Error: No such file or directory" or (
        "No such file or directory" in info.value.message and "internal:" not in info.value.message
    )


def test_dry_run_applies_nothing(backend: NftBackend, ns: str) -> None:
    run_async(backend.check(build_table([1, 2])))
    assert (FAMILY, TABLE) not in observe_tables(ns)
    with pytest.raises(KernelError):
        run_async(backend.check([*build_table([1]), {"add": {"bogus": {}}}]))
    assert (FAMILY, TABLE) not in observe_tables(ns)


# --- atomicity -----------------------------------------------------------------------------------


def test_element_batch_is_atomic(backend: NftBackend, ns: str) -> None:
    """[add element ok, delete element missing] fails as a whole: the new element is not there."""
    run_async(backend.apply(build_table([22])))
    before = observe_table(ns)
    with pytest.raises(KernelError):
        run_async(
            backend.apply(
                [
                    {"add": {"element": t(name="ports", elem=[443])}},
                    {"delete": {"element": t(name="ports", elem=[9999])}},
                ]
            )
        )
    assert set_elements(ns, "ports") == [22]
    assert observe_table(ns) == before


INVALID_TAILS = {
    # refused by the kernel at commit time (ENOENT), after everything else was accepted
    "kernel": {"delete": {"element": t(name="ports", elem=[9999])}},
    # refused by the JSON parser
    "parse": {"add": {"bogus": {"family": FAMILY}}},
    # refused by evaluation (no such chain)
    "eval": {"add": {"rule": t(chain="nochain", expr=[{"accept": None}])}},
}


@pytest.mark.parametrize("failure", sorted(INVALID_TAILS))
def test_replace_batch_is_atomic(backend: NftBackend, ns: str, failure: str) -> None:
    """add table; delete table; add table ...; <invalid> leaves the previous table as it was."""
    run_async(backend.apply(build_table([22, 80])))
    before = observe_table(ns)
    batch = [*build_table([443], rule_port=8080), INVALID_TAILS[failure]]
    with pytest.raises(KernelError):
        run_async(backend.apply(batch))
    assert observe_table(ns) == before


def test_foreign_table_is_untouched(backend: NftBackend, ns: str) -> None:
    """Replacing and deleting our table never changes someone else's table in the namespace."""
    _run(
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "-f",
        "-",
        input="table ip foreign {\n chain c {\n  type filter hook input priority 0; policy accept;\n"
        "  ip saddr 192.0.2.1 counter drop\n }\n}\n",
    )
    foreign_before = observe_table(ns, "ip", "foreign")

    run_async(backend.apply(build_table([1])))
    run_async(backend.apply(build_table([2, 3], rule_port=23)))
    with pytest.raises(KernelError):
        run_async(backend.apply([*build_table([4]), INVALID_TAILS["kernel"]]))
    run_async(backend.delete_table(FAMILY, TABLE))

    assert observe_table(ns, "ip", "foreign") == foreign_before
    assert observe_tables(ns) == {("ip", "foreign")}


# --- names carried in JSON -----------------------------------------------------------------------


def test_hostile_interface_name_is_carried_safely(backend: NftBackend, ns: str) -> None:
    """``x";{$`` is a legal interface name; as a JSON string it reaches the kernel unchanged."""
    _run("ip", "-n", ns, "link", "add", HOSTILE_IFNAME, "type", "veth", "peer", "name", "sw-tnpeer")
    match = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": HOSTILE_IFNAME}}
    run_async(
        backend.apply(
            [
                *build_table([]),
                {
                    "add": {
                        "rule": t(chain="input", expr=[match, {"counter": None}, {"drop": None}])
                    }
                },
            ]
        )
    )
    doc = json.loads(observe_table(ns))
    rights = [
        expr["match"]["right"]
        for obj in doc["nftables"]
        if "rule" in obj
        for expr in obj["rule"]["expr"]
        if "match" in expr and expr["match"]["left"] == {"meta": {"key": "iifname"}}
    ]
    assert rights == [HOSTILE_IFNAME]
    # The table still holds exactly what we sent: nothing leaked out of the string.
    assert observe_tables(ns) == {(FAMILY, TABLE)}


# --- namespaces and threads ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_in_netns_context(ns: str, mode: NftMode) -> None:
    """Nft.in_netns acts on that namespace, from whichever thread calls it."""
    _require_mode(mode)
    before_root = root_tables()
    nft = Nft.in_netns(ns, mode=mode)
    try:
        nft.run_json(build_table([7]))
        assert nft.table_exists(FAMILY, TABLE)
        assert "table inet sw_tn_ours" in nft.run_text("list tables")
        objects = nft.list_table(FAMILY, TABLE)
        assert objects is not None and any("set" in o for o in objects)
        with pytest.raises(KernelError):
            nft.check_json([{"delete": {"table": {"family": "ip", "name": "absent"}}}])
        nft.delete_table(FAMILY, TABLE)
        assert not nft.table_exists(FAMILY, TABLE)
        nft.run_json(build_table([8]))
    finally:
        nft.close()
    nft.close()
    assert observe_tables(ns) == {(FAMILY, TABLE)}
    assert (FAMILY, TABLE) not in root_tables() - before_root


def test_in_netns_refuses_missing_namespace() -> None:
    require_root()
    with pytest.raises(FileNotFoundError):
        Nft.in_netns(f"sw-tn-absent-{secrets.token_hex(3)}")
    with pytest.raises(FileNotFoundError):
        NftBackend(netns=f"sw-tn-absent-{secrets.token_hex(3)}")


def test_context_refuses_other_threads(ns: str) -> None:
    """A plain Nft created in a namespace thread cannot be used from the root-namespace thread."""
    _require_mode("library")
    worker = _OwnerThread(ns, name="sw-tn-test")
    try:
        nft = worker.call(Nft)
        with pytest.raises(RuntimeError):
            nft.run_json(build_table([]))
        worker.call(nft.close)
    finally:
        worker.stop(wait=True)
    assert (FAMILY, TABLE) not in observe_tables(ns)


SUBPROCESS_SCRIPT = """
import json, sys
from sharewall.backends.nft import Nft, load_libnftables
from sharewall.errors import KernelError
nft = Nft(mode=sys.argv[1])
nft.run_json([{"add": {"table": {"family": "ip", "name": "sw_tn_sub"}}},
              {"add": {"chain": {"family": "ip", "table": "sw_tn_sub", "name": "c"}}}])
try:
    nft.run_json([{"add": {"chain": {"family": "ip", "table": "sw_tn_sub", "name": "d"}}},
                  {"delete": {"chain": {"family": "ip", "table": "sw_tn_sub", "name": "missing"}}}])
    failed = False
except KernelError:
    failed = True
objects = nft.list_table("ip", "sw_tn_sub")
print(json.dumps({"lib": load_libnftables(), "uses_library": nft.uses_library, "failed": failed,
                  "chains": sorted(o["chain"]["name"] for o in objects if "chain" in o),
                  "absent": nft.list_table("ip", "nope")}))
nft.close()
"""


@pytest.mark.parametrize("mode", MODES)
def test_whole_process_in_namespace(ns: str, mode: NftMode) -> None:
    """The daemon's way: the process runs under ``ip netns exec`` and creates Nft() itself."""
    _require_mode(mode)
    out = _run("ip", "netns", "exec", ns, sys.executable, "-c", SUBPROCESS_SCRIPT, mode).stdout
    result = json.loads(out)
    assert result["uses_library"] == (mode == "library")
    assert result["failed"] is True
    assert result["chains"] == ["c"]
    assert result["absent"] is None
    assert ("ip", "sw_tn_sub") in observe_tables(ns)
    assert ("ip", "sw_tn_sub") not in root_tables()


# --- performance (printed, not asserted) ---------------------------------------------------------


def test_add_one_element_to_10k_map_timing(backend: NftBackend, ns: str) -> None:
    """Time to add one element to a 10,000-element map through NftBackend (printed for the log)."""
    elements = [
        [port, f"10.{port >> 16 & 255}.{port >> 8 & 255}.{port & 255}"] for port in range(1, 10_001)
    ]

    async def scenario() -> tuple[float, list[float]]:
        start = time.perf_counter()
        await backend.apply(
            [*build_table([]), {"add": {"element": t(name="fwd_addr", elem=elements)}}]
        )
        load_s = time.perf_counter() - start
        samples = []
        for port in range(20_001, 20_021):
            start = time.perf_counter()
            await backend.apply(
                [{"add": {"element": t(name="fwd_addr", elem=[[port, "192.168.137.10"]])}}]
            )
            samples.append(time.perf_counter() - start)
        return load_s, samples

    load_s, samples = run_async(scenario())
    doc = json.loads(observe(ns, "-j", "list", "map", FAMILY, TABLE, "fwd_addr"))
    count = next(len(o["map"]["elem"]) for o in doc["nftables"] if "map" in o)
    assert count == 10_020
    mode = "library" if backend.uses_library else "cli"
    print(
        f"\n[nft {mode}] load 10k map: {load_s * 1000:.1f} ms; add 1 element to 10k map: "
        f"median {statistics.median(samples) * 1000:.3f} ms, max {max(samples) * 1000:.3f} ms (n=20)"
    )


# --- sysctl --------------------------------------------------------------------------------------

SYSCTL_SCRIPT = """
import json
from sharewall.backends.sysctl import read_sysctl, write_sysctl
from sharewall.errors import KernelError, ValidationError
out = {"before": read_sysctl("net/ipv4/ip_forward")}
write_sysctl("net.ipv4.ip_forward", 1)
out["after"] = read_sysctl("net/ipv4/ip_forward")
write_sysctl("net/ipv4/conf/all/forwarding", "0")
out["dotted"] = read_sysctl("net.ipv4.conf.all.forwarding")
write_sysctl("net/ipv4/ip_forward", True)
out["bool"] = read_sysctl("net/ipv4/ip_forward")
for key in ("net/sharewall_missing", "net/ipv4/ip_forward"):
    try:
        write_sysctl(key, "x" if key.endswith("missing") else "not-a-number")
        out[key] = "accepted"
    except KernelError as exc:
        out[key] = "kernel_error"
try:
    read_sysctl("kernel/hostname")
    out["outside_net"] = "read"
except ValidationError:
    out["outside_net"] = "refused"
print(json.dumps(out))
"""


def test_sysctl_in_namespace(ns: str) -> None:
    """read/write act on the namespace the process runs in; the root namespace keeps its value."""
    with open("/proc/sys/net/ipv4/ip_forward", encoding="ascii") as f:
        root_before = f.read()
    out = _run("ip", "netns", "exec", ns, sys.executable, "-c", SYSCTL_SCRIPT).stdout
    result = json.loads(out)
    assert result == {
        "before": "0",
        "after": "1",
        "dotted": "0",
        "bool": "1",
        "net/sharewall_missing": "kernel_error",
        "net/ipv4/ip_forward": "kernel_error",
        "outside_net": "refused",
    }
    assert observe(ns, "list", "ruleset") == ""  # nothing else changed there
    with open("/proc/sys/net/ipv4/ip_forward", encoding="ascii") as f:
        assert f.read() == root_before
