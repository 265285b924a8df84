"""Control-plane benchmark: the cost of one more port mapping as their number grows, bulk import, memory.

Three measurements, each in its own lab (namespaces ``sw-tb*``), against a real sharewalld or a real
engine in the lab's gateway namespace:

- **API and CLI** (one daemon): at 0, 1,000 and 10,000 existing mappings (topped up with one import
  request each time), ``--adds`` single adds through :class:`sharewall.api.client.Client` (one kept-alive
  Unix-socket connection; the time of ``add_mapping`` as the caller sees it) and ``--cli-adds`` through
  ``python -m sharewall.cli.main mappings add`` (process start included, measured from a ``subprocess``
  call). Python's own start-up is measured alongside for reference.
- **Bulk import** (a fresh daemon per repeat): 10,000 mappings in ONE import request; the daemon's RSS
  before and after, after a restart with the 10,000 loaded from its store, and the restart's time.
- **Inside the daemon** (``engine``, run in the gateway namespace): the daemon's own pieces built in
  this process (``Engine`` + SQLite ``Store`` on a scratch directory + ``NftBackend`` + the netlink
  watcher, exactly as ``sharewalld`` wires them, without the HTTP layer), timing ``Engine.add_mappings``
  for one mapping: validation and model change, the durable store commit (fsync'd) and the one-element nft
  transaction, each also timed on its own. The same for a 10,000-mapping import, and a ``tracemalloc``
  view of what 10,000 mappings keep in memory.

Impure: namespaces, processes, files under ``/run/sharewall-lab`` and a scratch directory.
Run: ``scripts/bench`` (or ``python -m bench.controlplane [--quick]``) as root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Target,
    distribution,
    filesystem_of,
    interrupt_on_sigterm,
    lab_session,
    machine_info,
    median,
    print_verdicts,
    python_in_ns,
    run_json,
    save_results,
    stop_process,
    vm_rss_kib,
)
from sharewall.api.client import Client
from sharewall.lab import Lab
from sharewall.lab_demo import lab_dir, socket_path, start_daemon

MODULE = "bench.controlplane"
FIRST_PORT = 1024  # mappings use tcp ports FIRST_PORT.. upwards, each once
WARMUP_ADDS = 10
FLAT_RATIO = 1.5  # "flat": p50 with 10,000 mappings within 1.5x of p50 with none (noise is ±20 %)
MIB = 1024


@dataclass
class PortCounter:
    """Hands out fresh external ports, so that no mapping collides with another."""

    next_port: int = FIRST_PORT

    def take(self, count: int) -> range:
        ports = range(self.next_port, self.next_port + count)
        if ports.stop > 65536:
            raise RuntimeError("out of tcp ports for mappings")
        self.next_port = ports.stop
        return ports


def mapping_body(port: int) -> dict[str, object]:
    return {
        "name": f"m{port}",
        "protocol": "tcp",
        "external_port": port,
        "internal_port": 80,
        "target": Lab.LAN2,
        "enabled": True,
    }


def _ms(seconds: float) -> float:
    return seconds * 1000


# --- through the API and the CLI -----------------------------------------------------------------


def time_api_adds(client: Client, ports: Iterable[int]) -> list[float]:
    """One ``add_mapping`` per port; milliseconds each, as the caller sees them."""
    samples: list[float] = []
    for port in ports:
        body = mapping_body(port)
        start = time.perf_counter()
        client.add_mapping(
            Lab.GW_WAN_IF,
            name=str(body["name"]),
            protocol="tcp",
            external_port=port,
            internal_port=80,
            target=Lab.LAN2,
        )
        samples.append(_ms(time.perf_counter() - start))
    return samples


def time_cli_adds(socket: Path, ports: Iterable[int]) -> list[float]:
    """One ``sharewall mappings add`` process per port; milliseconds each, process start included."""
    env = dict(os.environ, SHAREWALL_SOCKET=str(socket), NO_COLOR="1")
    samples: list[float] = []
    for port in ports:
        argv = [
            sys.executable,
            "-m",
            "sharewall.cli.main",
            "mappings",
            "add",
            Lab.GW_WAN_IF,
            f"m{port}",
            "--protocol",
            "tcp",
            "--external-port",
            str(port),
            "--internal-port",
            "80",
            "--target",
            Lab.LAN2,
        ]
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=REPO, capture_output=True, check=True, timeout=60)
        samples.append(_ms(time.perf_counter() - start))
    return samples


def time_processes(argv: Sequence[str], count: int) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run(list(argv), cwd=REPO, capture_output=True, check=True, timeout=60)
        samples.append(_ms(time.perf_counter() - start))
    return samples


def _share(client: Client) -> None:
    client.share(Lab.GW_WAN_IF, [Lab.GW_LAN_IF])


def measure_api_and_cli(
    levels: Sequence[int], adds: int, cli_adds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """One daemon; at each level, top up with one import, then time single adds (API, CLI)."""
    ports = PortCounter()
    results: dict[str, Any] = {"levels": []}
    with lab_session("c") as lab:
        daemon = start_daemon(lab)
        try:
            socket = socket_path(lab.prefix)
            results["state_dir_filesystem"] = filesystem_of(lab_dir(lab.prefix))
            with Client(str(socket), timeout=60) as client:
                _share(client)
                # The first requests after start-up pay one-off costs (imports, caches): not timed.
                time_api_adds(client, ports.take(WARMUP_ADDS))
                existing = WARMUP_ADDS
                results["warmup_adds"] = WARMUP_ADDS
                for level in levels:
                    existing_at_start = max(level, existing)
                    topup_seconds = None
                    if level > existing:
                        start = time.perf_counter()
                        client.import_mappings(
                            Lab.GW_WAN_IF, [mapping_body(p) for p in ports.take(level - existing)]
                        )
                        topup_seconds = round(time.perf_counter() - start, 3)
                        existing = level
                    api = time_api_adds(client, ports.take(adds))
                    existing += adds
                    cli = time_cli_adds(socket, ports.take(cli_adds))
                    existing += cli_adds
                    entry: dict[str, Any] = {
                        "existing": level,
                        "existing_at_start": existing_at_start,
                        "topup_import_seconds": topup_seconds,
                        "api_ms": distribution(api),
                        "cli_ms": distribution(cli),
                    }
                    results["levels"].append(entry)
                    log(
                        f"{level:>6,} existing: API add p50 {entry['api_ms']['p50']} ms "
                        f"p95 {entry['api_ms']['p95']} ms; CLI add p50 {entry['cli_ms']['p50']} ms"
                    )
                start = time.perf_counter()
                listed = len(client.mappings(Lab.GW_WAN_IF))
                results["list_mappings"] = {
                    "count": listed,
                    "ms": round(_ms(time.perf_counter() - start), 1),
                }
                results["daemon_rss_kib_at_end"] = vm_rss_kib(daemon.pid)
                results["mappings_at_end"] = client.status()["mappings"]
        finally:
            stop_process(daemon)
    python_start = time_processes([sys.executable, "-c", "pass"], cli_adds)
    cli_version = time_processes(
        [sys.executable, "-m", "sharewall.cli.main", "--version"], cli_adds
    )
    results["python_startup_ms"] = distribution(python_start)
    results["cli_version_ms"] = distribution(cli_version)
    return results


def measure_bulk_import(count: int, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """A fresh daemon per repeat: import ``count`` at once; RSS; restart with them; tear down."""
    runs: list[dict[str, Any]] = []
    with lab_session("d") as lab:
        state = lab_dir(lab.prefix) / "state"
        for number in range(repeats):
            shutil.rmtree(state, ignore_errors=True)
            daemon = start_daemon(lab)
            try:
                run: dict[str, Any] = {}
                with Client(str(socket_path(lab.prefix)), timeout=120) as client:
                    _share(client)
                    run["rss_kib_before"] = vm_rss_kib(daemon.pid)
                    bodies = [mapping_body(p) for p in PortCounter().take(count)]
                    start = time.perf_counter()
                    client.import_mappings(Lab.GW_WAN_IF, bodies)
                    run["import_seconds"] = round(time.perf_counter() - start, 3)
                    run["rss_kib_after_import"] = vm_rss_kib(daemon.pid)
                stop_process(daemon, grace_s=10)
                start = time.perf_counter()
                daemon = start_daemon(lab, timeout=60)
                run["restart_seconds"] = round(time.perf_counter() - start, 3)
                with Client(str(socket_path(lab.prefix)), timeout=120) as client:
                    run["mappings_after_restart"] = client.status()["mappings"]
                    run["rss_kib_after_restart"] = vm_rss_kib(daemon.pid)
                    client.teardown()  # the daemon removes its table and exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.wait(timeout=10)
            finally:
                stop_process(daemon)
            runs.append(run)
            log(
                f"import {count:,} at once #{number + 1}: {run['import_seconds']} s; "
                f"RSS {run['rss_kib_before'] // MIB} -> {run['rss_kib_after_import'] // MIB} MiB, "
                f"{run['rss_kib_after_restart'] // MIB} MiB after a restart "
                f"({run['restart_seconds']} s)"
            )
    return {
        "count": count,
        "runs": runs,
        "median_import_seconds": median([r["import_seconds"] for r in runs]),
        "median_rss_kib_after_import": median([r["rss_kib_after_import"] for r in runs]),
        "median_rss_kib_after_restart": median([r["rss_kib_after_restart"] for r in runs]),
        "median_rss_kib_before": median([r["rss_kib_before"] for r in runs]),
        "median_restart_seconds": median([r["restart_seconds"] for r in runs]),
    }


# --- inside the daemon (run in the gateway namespace) --------------------------------------------


def engine_benchmark(
    state_root: Path, levels: Sequence[int], adds: int, import_count: int, import_repeats: int
) -> dict[str, Any]:
    return asyncio.run(_engine_benchmark(state_root, levels, adds, import_count, import_repeats))


async def _engine_benchmark(
    state_root: Path, levels: Sequence[int], adds: int, import_count: int, import_repeats: int
) -> dict[str, Any]:
    # Imported here: only this helper (in the gateway namespace) needs the daemon's pieces.
    from sharewall.backends.netlink import NetlinkWatcher
    from sharewall.backends.nft import NftBackend
    from sharewall.backends.store import Store
    from sharewall.backends.sysctl import read_sysctl, write_sysctl
    from sharewall.compiler.ruleset import Json
    from sharewall.daemon.engine import Engine
    from sharewall.model.mapping import PortMapping, make_mapping

    class TimedStore(Store):
        """The real store; remembers how long each durable commit took."""

        def __init__(self, state_dir: Path) -> None:
            super().__init__(state_dir)
            self.seconds: list[float] = []

        def save(self, **changes: Any) -> None:
            start = time.perf_counter()
            super().save(**changes)
            self.seconds.append(time.perf_counter() - start)

    class TimedNft:
        """The real nft backend; remembers how long each transaction took."""

        def __init__(self, inner: NftBackend) -> None:
            self.inner = inner
            self.seconds: list[float] = []

        async def apply(self, commands: list[Json]) -> None:
            start = time.perf_counter()
            await self.inner.apply(commands)
            self.seconds.append(time.perf_counter() - start)

        async def delete_table(self, family: str, name: str) -> None:
            await self.inner.delete_table(family, name)

    def mappings(ports: Iterable[int]) -> list[PortMapping]:
        return [
            make_mapping(
                name=f"m{port}",
                protocol="tcp",
                external_port=port,
                internal_port=80,
                target=Lab.LAN2,
            )
            for port in ports
        ]

    backend = NftBackend()
    result: dict[str, Any] = {
        "nft_uses_library": backend.uses_library,
        "store_filesystem": filesystem_of(state_root),
        "rss_kib_at_start": vm_rss_kib(os.getpid()),
    }
    try:
        async with NetlinkWatcher() as netlink:

            async def fresh_engine(name: str) -> tuple[Engine, TimedStore, TimedNft]:
                store = TimedStore(state_root / name)
                nft = TimedNft(backend)
                engine = Engine(
                    store=store,
                    nft=nft,
                    netlink=netlink,
                    read_sysctl=read_sysctl,
                    write_sysctl=write_sysctl,
                )
                await engine.start()
                await engine.share(Lab.GW_WAN_IF, [Lab.GW_LAN_IF], None)
                store.seconds.clear()
                nft.seconds.clear()
                return engine, store, nft

            imports: list[dict[str, float]] = []
            for number in range(import_repeats):
                engine, store, nft = await fresh_engine(f"import{number}")
                batch = mappings(PortCounter().take(import_count))
                start = time.perf_counter()
                await engine.add_mappings(Lab.GW_WAN_IF, batch)
                total = time.perf_counter() - start
                imports.append(
                    {
                        "seconds": round(total, 4),
                        "store_seconds": round(sum(store.seconds), 4),
                        "nft_seconds": round(sum(nft.seconds), 4),
                        "model_seconds": round(total - sum(store.seconds) - sum(nft.seconds), 4),
                    }
                )
                store.close()
                del engine, store, nft, batch
                gc.collect()
            result["import"] = {
                "count": import_count,
                "runs": imports,
                "median_seconds": median([run["seconds"] for run in imports]),
            }

            engine, store, nft = await fresh_engine("levels")
            ports = PortCounter()
            existing = 0
            result["levels"] = []
            for level in levels:
                if level > existing:
                    await engine.add_mappings(Lab.GW_WAN_IF, mappings(ports.take(level - existing)))
                    existing = level
                store.seconds.clear()
                nft.seconds.clear()
                totals: list[float] = []
                for mapping in mappings(ports.take(adds)):
                    start = time.perf_counter()
                    await engine.add_mappings(Lab.GW_WAN_IF, [mapping])
                    totals.append(_ms(time.perf_counter() - start))
                existing += adds
                store_ms = [_ms(s) for s in store.seconds]
                nft_ms = [_ms(s) for s in nft.seconds]
                rest_ms = [t - s - n for t, s, n in zip(totals, store_ms, nft_ms, strict=True)]
                result["levels"].append(
                    {
                        "existing": level,
                        "add_ms": distribution(totals),
                        "store_commit_ms": distribution(store_ms),
                        "nft_transaction_ms": distribution(nft_ms),
                        "model_and_compile_ms": distribution(rest_ms),
                    }
                )
            result["rss_kib_at_end"] = vm_rss_kib(os.getpid())
            result["mappings_at_end"] = sum(
                len(c.mappings) for c in engine.config.connections.values()
            )
            store.close()
            del engine, store, nft
            gc.collect()

            # What 10,000 mappings keep alive in memory (tracemalloc slows this step down).
            engine, store, _ = await fresh_engine("memory")
            batch = mappings(PortCounter().take(import_count))
            gc.collect()
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            await engine.add_mappings(Lab.GW_WAN_IF, batch)
            del batch
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            kept = after.compare_to(before, "lineno")
            result["memory_kept_by_import"] = {
                "total_kib": round(sum(stat.size_diff for stat in kept) / 1024),
                "top": [
                    {
                        "where": f"{_short_path(stat.traceback[0].filename)}:"
                        f"{stat.traceback[0].lineno}",
                        "kib": round(stat.size_diff / 1024),
                        "blocks": stat.count_diff,
                    }
                    for stat in kept[:8]
                ],
            }
            store.close()
    finally:
        await backend.aclose()
    return result


def memory_benchmark(state_dir: Path, import_count: int) -> dict[str, Any]:
    return asyncio.run(_memory_benchmark(state_dir, import_count))


async def _memory_benchmark(state_dir: Path, import_count: int) -> dict[str, Any]:
    """Where the daemon's memory goes with ``import_count`` mappings: RSS after each step of the
    daemon's own import path, after giving freed heap back (glibc ``malloc_trim``) and after freeing
    the libnftables context (its cache holds every set element)."""
    import ctypes

    from sharewall.backends.netlink import NetlinkWatcher
    from sharewall.backends.nft import NftBackend
    from sharewall.backends.store import Store
    from sharewall.backends.sysctl import read_sysctl, write_sysctl
    from sharewall.daemon.engine import Engine
    from sharewall.model.mapping import make_mapping

    libc = ctypes.CDLL(None)
    trim = getattr(libc, "malloc_trim", None)
    steps: list[dict[str, Any]] = []

    def step(what: str, **extra: float) -> None:
        steps.append({"step": what, "rss_mib": round(vm_rss_kib(os.getpid()) / MIB, 1), **extra})

    def trimmed() -> float:
        """Run malloc_trim(0); milliseconds it took."""
        assert trim is not None
        start = time.perf_counter()
        trim(0)
        return round(_ms(time.perf_counter() - start), 2)

    step("python with the daemon's modules imported")
    backend = NftBackend()
    try:
        async with NetlinkWatcher() as netlink:
            engine = Engine(
                store=Store(state_dir),
                nft=backend,
                netlink=netlink,
                read_sysctl=read_sysctl,
                write_sysctl=write_sysctl,
            )
            await engine.start()
            await engine.share(Lab.GW_WAN_IF, [Lab.GW_LAN_IF], None)
            step("engine started, sharing")
            batch = [
                make_mapping(
                    name=f"m{port}",
                    protocol="tcp",
                    external_port=port,
                    internal_port=80,
                    target=Lab.LAN2,
                )
                for port in PortCounter().take(import_count)
            ]
            await engine.add_mappings(Lab.GW_WAN_IF, batch)
            del batch
            gc.collect()
            step(f"{import_count:,} mappings imported (one transaction)")
            if trim is not None:
                step("after malloc_trim(0): freed heap returned to the system", ms=trimmed())
            engine.applied = None  # the restart path: a full table replace
            await engine.start()
            gc.collect()
            step("after a full table replace (what a restart does)")
            if trim is not None:
                step("after malloc_trim(0) again", ms=trimmed())
            engine.store.close()
    finally:
        await backend.aclose()
    if trim is not None:
        trim(0)
    step("after freeing the libnftables context (its cache) and trimming")
    return {"count": import_count, "steps": steps}


def _short_path(filename: str) -> str:
    for marker in ("/src/sharewall/", "/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) + 1 :]
    return filename


def measure_engine(
    levels: Sequence[int],
    adds: int,
    import_count: int,
    import_repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The engine in a helper process inside a lab's gateway namespace, store on the disk."""
    # /var/tmp is on disk on every machine we run on; a tmpfs would hide the fsync cost.
    scratch = Path(tempfile.mkdtemp(prefix="sw-tb-store-", dir="/var/tmp"))
    try:
        with lab_session("e") as lab:
            result = run_json(
                python_in_ns(
                    lab,
                    "gw",
                    MODULE,
                    "engine",
                    "--state-root",
                    str(scratch),
                    "--levels",
                    ",".join(str(level) for level in levels),
                    "--adds",
                    str(adds),
                    "--import-count",
                    str(import_count),
                    "--import-repeats",
                    str(import_repeats),
                ),
                timeout=600,
            )
            result["memory_steps"] = run_json(
                python_in_ns(
                    lab,
                    "gw",
                    MODULE,
                    "memory",
                    "--state-dir",
                    str(scratch / "rss"),
                    "--import-count",
                    str(import_count),
                ),
                timeout=300,
            )["steps"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for entry in result["levels"]:
        log(
            f"engine, {entry['existing']:>6,} existing: add p50 {entry['add_ms']['p50']} ms "
            f"(store {entry['store_commit_ms']['p50']}, nft {entry['nft_transaction_ms']['p50']}, "
            f"model {entry['model_and_compile_ms']['p50']})"
        )
    log(f"engine, import {import_count:,}: {result['import']['median_seconds']} s")
    for entry in result["memory_steps"]:
        log(f"memory: {entry['rss_mib']:6.1f} MiB  {entry['step']}")
    return result


# --- the whole benchmark -------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    levels: tuple[int, ...]
    adds: int
    cli_adds: int
    import_count: int
    import_repeats: int


def _level(entries: list[dict[str, Any]], existing: int) -> dict[str, Any]:
    return next(entry for entry in entries if entry["existing"] == existing)


def run_benchmark(params: Params, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    machine = machine_info()
    log("API and CLI adds at each level")
    api = measure_api_and_cli(params.levels, params.adds, params.cli_adds, log)
    log("bulk import into a fresh daemon")
    bulk = measure_bulk_import(params.import_count, params.import_repeats, log)
    log("inside the daemon: the engine on its own")
    engine = measure_engine(
        params.levels, params.adds, params.import_count, params.import_repeats, log
    )

    low, high = params.levels[0], params.levels[-1]
    api_low = _level(api["levels"], low)["api_ms"]["p50"]
    api_high = _level(api["levels"], high)["api_ms"]["p50"]
    engine_low = _level(engine["levels"], low)["add_ms"]["p50"]
    engine_high = _level(engine["levels"], high)["add_ms"]["p50"]
    rss_mib = bulk["median_rss_kib_after_import"] / MIB
    targets = [
        Target(f"API: one more mapping with {high:,} existing, p50", api_high, "<=", 5.0, "ms"),
        Target(
            f"inside the daemon: one more mapping with {high:,} existing, p50",
            engine_high,
            "<=",
            1.0,
            "ms",
        ),
        Target(
            f"API: {params.import_count:,} mappings in one import request",
            bulk["median_import_seconds"],
            "<=",
            1.0,
            "s",
        ),
        Target(
            f"flat: API add p50 with {high:,} / with {low:,}",
            api_high / api_low,
            "<=",
            FLAT_RATIO,
            "x",
            f"'flat' taken as within {FLAT_RATIO}x; run-to-run noise here is about ±20 %",
        ),
        Target(
            f"flat: engine add p50 with {high:,} / with {low:,}",
            engine_high / engine_low,
            "<=",
            FLAT_RATIO,
            "x",
        ),
        Target(
            f"daemon RSS with {params.import_count:,} mappings (after the import request)",
            rss_mib,
            "<=",
            80.0,
            "MiB",
        ),
    ]
    return {
        "benchmark": "controlplane",
        "machine": machine,
        "method": {
            "levels": list(params.levels),
            "api_adds_per_level": params.adds,
            "cli_adds_per_level": params.cli_adds,
            "import_count": params.import_count,
            "import_repeats": params.import_repeats,
            "api": "Client.add_mapping over one kept-alive Unix-socket connection, caller's clock",
            "cli": "python -m sharewall.cli.main mappings add, one process each, caller's clock",
            "engine": "Engine.add_mappings in a helper process in the gateway namespace: Engine + "
            "Store (SQLite WAL, synchronous=FULL, on disk) + NftBackend (libnftables) + "
            "NetlinkWatcher, no HTTP",
            "rss": "VmRSS of sharewalld from /proc/PID/status",
        },
        "api_and_cli": api,
        "bulk_import": bulk,
        "engine": engine,
        "targets": [target.as_dict() for target in targets],
        "duration_seconds": round(time.perf_counter() - began, 1),
    }


# --- command line --------------------------------------------------------------------------------


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(part) for part in text.split(",") if part)
    if not levels or list(levels) != sorted(levels):
        raise argparse.ArgumentTypeError("levels must be increasing, e.g. 0,1000,10000")
    return levels


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.controlplane", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole benchmark (the default)")
    run.add_argument("--levels", type=_levels, default=(0, 1000, 10000))
    run.add_argument("--adds", type=int, default=200, help="API adds per level")
    run.add_argument("--cli-adds", type=int, default=20, help="CLI adds per level")
    run.add_argument("--import-count", type=int, default=10000)
    run.add_argument("--import-repeats", type=int, default=3)
    run.add_argument("--quick", action="store_true", help="a small, fast run of the harness")
    run.add_argument("--out", type=Path, default=None)

    engine = sub.add_parser("engine", help="(in a lab's gateway namespace) time the engine")
    engine.add_argument("--state-root", type=Path, required=True)
    engine.add_argument("--levels", type=_levels, default=(0, 1000, 10000))
    engine.add_argument("--adds", type=int, default=200)
    engine.add_argument("--import-count", type=int, default=10000)
    engine.add_argument("--import-repeats", type=int, default=3)

    memory = sub.add_parser("memory", help="(in a lab's gateway namespace) where memory goes")
    memory.add_argument("--state-dir", type=Path, required=True)
    memory.add_argument("--import-count", type=int, default=10000)

    arguments = list(argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "run")
    return parser.parse_args(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("the control-plane benchmark needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.command == "engine":
        result = engine_benchmark(
            args.state_root, args.levels, args.adds, args.import_count, args.import_repeats
        )
        print(json.dumps(result))
        return 0
    if args.command == "memory":
        print(json.dumps(memory_benchmark(args.state_dir, args.import_count)))
        return 0
    if args.quick:
        params = Params((0, 500), 30, 3, 2000, 1)
    else:
        params = Params(
            args.levels, args.adds, args.cli_adds, args.import_count, args.import_repeats
        )
    interrupt_on_sigterm()
    results = run_benchmark(params, lambda line: print(line, flush=True))
    save_results("controlplane", results, args.out, quick=args.quick)
    print_verdicts(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
