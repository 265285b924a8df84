"""Data-plane benchmark: inbound connection rate, connect latency and stream throughput through a mapping.

Six set-ups, each in its own lab, all up at once, reached from the lab's Internet host to a server on
lan2 that accepts and closes:

- ``plain``: no sharewall and no nft at all; the gateway only routes (ip_forward=1) and the Internet
  host connects to lan2:80 directly. The physical reference.
- ``ct_only``: ``plain`` plus one stateful rule (``ct state established,related accept`` in a forward
  chain of ours), i.e. connection tracking without NAT: what any stateful firewall costs.
- ``sw_1``: sharewalld sharing wan0 with lan0, one mapping tcp 198.51.100.1:8080 -> lan2:80.
- ``sw_1_again``: a second lab identical to ``sw_1``; its ratio to ``sw_1`` shows the noise floor.
- ``sw_10k``: the same plus 10,000 other mappings (one import request), all in sharewall's maps.
- ``rule_each``: sharewalld with the same 10,000 other mappings but not the measured one; that forward
  and the 10,000 others are written as one ``iifname "wan0" tcp dport N dnat ip to ...`` rule each (as
  firewalld and miniupnpd do) in a table of ours, ``ip sw_bench_rules``, the measured port LAST.

Connections: the load generator's workers are forked from this process and enter the four Internet
hosts' namespaces in turn (``setns``), so consecutive connections go to the set-ups round-robin.
Every set-up is thus measured in the same instants and under the same background load: this 2-core VM
is shared, and set-ups measured one after another drifted by ±30 %. Each connection is a blocking
``connect()`` from one of several source addresses, then ``close()`` with SO_LINGER 0 (an RST: no
TIME_WAIT on either side). Per set-up:

- rate: ``workers`` x connections / wall time those connections took (connect + close), i.e. the new
  connections per second the workers would make on that set-up alone at the observed cost. A
  connection 10x slower than the set-up's median was preempted by another process on this VM, and
  the whole stall would be charged to one set-up: such stalls are left out of ``rate`` and counted
  (``rate_all`` keeps them);
- latency: ``connect()`` duration (SYN to SYN-ACK) with one worker, one connection at a time.

Throughput: one ``iperf3`` TCP stream per set-up, set-ups taken in turn. Impure: namespaces, processes,
and nft in our own labs only; this process itself never leaves the root namespace (only its forked
workers enter lab namespaces).

Run: ``scripts/bench`` (or ``python -m bench.dataplane [--quick]``) as root.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import multiprocessing
import multiprocessing.queues
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Target,
    in_ns,
    interrupt_on_sigterm,
    lab_session,
    machine_info,
    median,
    percentile,
    print_verdicts,
    python_in_ns,
    save_results,
    stop_process,
)
from sharewall.api.client import Client
from sharewall.lab import Lab, run_in_namespace
from sharewall.lab_demo import socket_path, start_daemon

MODULE = "bench.dataplane"
WEB_PORT = 80  # the server on lan2
MAPPED_PORT = 8080  # public port mapped to lan2:80
IPERF_PORT = 5201  # mapped 1:1 to lan2:5201
BULK_FIRST_PORT = 10000  # the other mappings: tcp 10000.. (never 8080 or 5201)
RULES_TABLE = "sw_bench_rules"  # our one-rule-each table (family ip) in the gateway
SOURCE_ADDRESSES = tuple(f"198.51.100.{host}" for host in range(10, 18))
LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST: no TIME_WAIT on either side
SYN_RETRIES = 1  # a lost SYN fails the connect after ~3 s instead of ~2 minutes
SLOW_CONNECT_NS = 100_000_000  # a connect this slow means a lost SYN; counted apart
STALL_FACTOR = 10  # connect + close 10x slower than the set-up's median: a preemption, see below
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
SERVER_MAX_SECONDS = 1800  # the lab server exits by itself after this (SIGALRM)
ORDER = ("plain", "ct_only", "sw_1", "sw_1_again", "sw_10k", "rule_each")
LAB_TAGS = {
    "plain": "p",
    "ct_only": "t",
    "sw_1": "a",
    "sw_1_again": "c",
    "sw_10k": "b",
    "rule_each": "r",
}
STREAM_ORDER = ("plain", "ct_only", "sw_1", "sw_10k")


# --- the load generator (forked workers) and the server (in lan2) --------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where one set-up is reached: the Internet host's namespace, and the address and port."""

    key: str
    netns: str
    host: str
    port: int


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _enter_netns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _new_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, SYN_RETRIES)
    # Pick the port at connect() time, per destination, not at bind() time.
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((source, 0))
    return sock


def _mixed_worker(
    endpoints: Sequence[Endpoint],
    source: str,
    offset: int,
    start_at: float,
    stop_at: float,
    max_each: int,
    keep_samples: bool,
    results: multiprocessing.queues.Queue[dict[str, Any]],
) -> None:
    """Connect to the endpoints in turn until ``stop_at`` (or ``max_each`` apiece); report totals."""
    fds = [os.open(os.path.join(NETNS_RUN_DIR, e.netns), os.O_RDONLY) for e in endpoints]
    n = len(endpoints)
    counts, errors, slow = [0] * n, [0] * n, [0] * n
    samples_us: list[list[float]] = [[] for _ in endpoints]
    durations_ns: list[list[int]] = [[] for _ in endpoints]
    while time.perf_counter() < start_at:  # bounded: a fraction of a second
        time.sleep(0.001)
    # Each cycle visits every endpoint once, in a fresh random order, so that no set-up always
    # follows the same other one.
    shuffler = random.Random(offset)
    cycle = list(range(n))
    while time.perf_counter() < stop_at and min(counts) < max_each:
        shuffler.shuffle(cycle)
        for k in cycle:
            if counts[k] >= max_each or time.perf_counter() >= stop_at:
                continue
            endpoint = endpoints[k]
            _enter_netns(fds[k])
            sock = _new_socket(source)
            try:
                start = time.perf_counter_ns()
                sock.connect((endpoint.host, endpoint.port))
                connected = time.perf_counter_ns()
                sock.close()
                done = time.perf_counter_ns()
            except OSError:
                errors[k] += 1
                sock.close()
                continue
            counts[k] += 1
            durations_ns[k].append(done - start)
            if connected - start > SLOW_CONNECT_NS:
                slow[k] += 1
            if keep_samples:
                samples_us[k].append((connected - start) / 1000)
    for fd in fds:
        os.close(fd)
    results.put(
        {
            "counts": counts,
            "errors": errors,
            "slow": slow,
            "durations_ns": durations_ns,
            "samples_us": samples_us,
        }
    )


def measure_mixed(
    endpoints: Sequence[Endpoint],
    *,
    workers: int,
    seconds: float,
    max_each: int,
    keep_samples: bool,
) -> dict[str, dict[str, Any]]:
    """Run ``workers`` forked workers over the endpoints round-robin; per-endpoint results."""
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.queues.Queue[dict[str, Any]] = context.Queue()
    start_at = time.perf_counter() + 0.1  # let every worker fork first
    stop_at = start_at + seconds
    processes = [
        context.Process(
            target=_mixed_worker,
            args=(
                list(endpoints),
                SOURCE_ADDRESSES[i % len(SOURCE_ADDRESSES)],
                i,
                start_at,
                stop_at,
                max_each,
                keep_samples,
                queue,
            ),
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        reports = [queue.get(timeout=seconds + 30) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
    results: dict[str, dict[str, Any]] = {}
    for k, endpoint in enumerate(endpoints):
        durations = [d for r in reports for d in r["durations_ns"][k]]
        samples = [x for r in reports for x in r["samples_us"][k]]
        count, busy_s = len(durations), sum(durations) / 1e9
        # A connection that took STALL_FACTOR x the typical one was preempted (this VM is shared),
        # not slowed by the data path; its whole stall would land on one set-up, so it is left out
        # of ``rate`` (and kept in ``rate_all``).
        limit = STALL_FACTOR * percentile(durations, 0.5) if durations else 0.0
        stalls = [d for d in durations if d > limit]
        kept_s = busy_s - sum(stalls) / 1e9
        results[endpoint.key] = {
            "connections": count,
            "errors": sum(r["errors"][k] for r in reports),
            "slow": sum(r["slow"][k] for r in reports),
            "stalls": len(stalls),
            "stall_seconds": round(sum(stalls) / 1e9, 4),
            "rate": round(workers * (count - len(stalls)) / kept_s, 1) if kept_s else 0.0,
            "rate_all": round(workers * count / busy_s, 1) if busy_s else 0.0,
            "samples_us": samples,
        }
    return results


def serve(port: int, max_seconds: int) -> None:
    """Accept connections on ``port`` and close them at once; exit after ``max_seconds``."""
    signal.alarm(max_seconds)  # the default SIGALRM action ends us even if nobody stops us
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4096)
    print("ready", flush=True)
    while True:  # bounded by the alarm above
        try:
            conn, _ = listener.accept()
        except OSError:  # a connection reset while queued, for example
            continue
        conn.close()


# --- set-ups -------------------------------------------------------------------------------------


@dataclass
class Setup:
    """One configuration under test, in its own lab."""

    key: str
    label: str
    lab: Lab
    host: str
    port: int
    client: Client | None = None
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.key, self.lab.ns("inet"), self.host, self.port)


def _ip(lab: Lab, role: str, *argv: str) -> None:
    lab.run(role, "ip", *argv)


def _start_servers(setup: Setup) -> None:
    """The accept-and-close server on lan2:80 and an iperf3 server on lan2:5201."""
    server = subprocess.Popen(
        python_in_ns(setup.lab, "lan2", MODULE, "serve", str(WEB_PORT), str(SERVER_MAX_SECONDS)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    setup.processes.append(server)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the test server in {setup.lab.ns('lan2')} did not start")
    server.stdout.close()
    iperf = subprocess.Popen(
        in_ns(setup.lab, "lan2", "iperf3", "-s", "-p", str(IPERF_PORT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    setup.processes.append(iperf)
    _wait_listening(setup.lab, "lan2", IPERF_PORT)


def _wait_listening(lab: Lab, role: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.run(role, "ss", "-Hltn", f"sport = :{port}", check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} in {lab.ns(role)} after {timeout} s")


def _prepare_client_side(lab: Lab) -> None:
    """Extra source addresses and the whole port range on the Internet host (its namespace only)."""
    for address in SOURCE_ADDRESSES:
        _ip(lab, "inet", "address", "add", f"{address}/24", "dev", Lab.HOST_IF)
    lab.run("inet", "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")


def setup_plain(lab: Lab) -> Setup:
    """No sharewall: the gateway routes; the Internet host has a route to the LAN."""
    _ip(lab, "gw", "address", "add", f"{Lab.LAN_GW}/24", "dev", Lab.GW_LAN_IF)
    lab.run("gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.route_lan_via_gateway()
    _prepare_client_side(lab)
    setup = Setup("plain", "plain routing (no sharewall, no nft)", lab, Lab.LAN2, WEB_PORT)
    _start_servers(setup)
    return setup


CONNTRACK_ONLY_TABLE = """table inet sw_bench_ct {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
  }
}
"""


def setup_conntrack_only(lab: Lab) -> Setup:
    """Plain routing plus one stateful rule: the cost of connection tracking alone, no NAT."""
    setup = setup_plain(lab)
    run_in_namespace(lab.ns("gw"), "nft", "-f", "-", input=CONNTRACK_ONLY_TABLE, timeout=60)
    setup.key = "ct_only"
    setup.label = "plain routing + conntrack (one 'ct state established' rule), no NAT"
    return setup


def _add_forward(client: Client, name: str, external: int, internal: int) -> None:
    client.add_mapping(
        Lab.GW_WAN_IF,
        name=name,
        protocol="tcp",
        external_port=external,
        internal_port=internal,
        target=Lab.LAN2,
    )


def setup_sharewall(
    lab: Lab, key: str, label: str, *, measured_mapping: bool, others: int
) -> tuple[Setup, float]:
    """sharewalld in the gateway, sharing wan0 with lan0, with the 5201 mapping for iperf3, the
    measured 8080 -> lan2:80 mapping if asked, and ``others`` more in one import. Returns the set-up
    and how long the import took."""
    daemon = start_daemon(lab)
    client = Client(str(socket_path(lab.prefix)), timeout=120)
    setup = Setup(key, label, lab, Lab.WAN_GW, MAPPED_PORT, client=client, processes=[daemon])
    client.share(Lab.GW_WAN_IF, [Lab.GW_LAN_IF])
    _add_forward(client, "iperf", IPERF_PORT, IPERF_PORT)
    if measured_mapping:
        _add_forward(client, "web", MAPPED_PORT, WEB_PORT)
    import_seconds = 0.0
    if others:
        start = time.perf_counter()
        client.import_mappings(Lab.GW_WAN_IF, bulk_mappings(others))
        import_seconds = time.perf_counter() - start
    _prepare_client_side(lab)
    _start_servers(setup)
    return setup, import_seconds


def bulk_mappings(count: int) -> list[dict[str, object]]:
    """``count`` mappings on ports other than the measured ones, all to lan2:80."""
    return [
        {
            "name": f"bulk{port}",
            "protocol": "tcp",
            "external_port": port,
            "internal_port": WEB_PORT,
            "target": Lab.LAN2,
            "enabled": True,
        }
        for port in range(BULK_FIRST_PORT, BULK_FIRST_PORT + count)
    ]


def rules_table_text(count: int) -> str:
    """``count`` other forwards, then the measured one, one nft rule each (the last one counts)."""
    rules = [
        f'    iifname "{Lab.GW_WAN_IF}" tcp dport {port} dnat ip to {Lab.LAN2}:{WEB_PORT}'
        for port in range(BULK_FIRST_PORT, BULK_FIRST_PORT + count)
    ]
    rules.append(
        f'    iifname "{Lab.GW_WAN_IF}" tcp dport {MAPPED_PORT} counter dnat ip to '
        f"{Lab.LAN2}:{WEB_PORT}"
    )
    body = "\n".join(rules)
    return (
        f"table ip {RULES_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"{body}\n"
        "  }\n"
        "}\n"
    )


def install_rules_table(lab: Lab, count: int) -> float:
    """Load our one-rule-each table into the lab's gateway (one nft transaction); seconds taken."""
    text = rules_table_text(count)
    start = time.perf_counter()
    run_in_namespace(lab.ns("gw"), "nft", "-f", "-", input=text, timeout=120)
    return time.perf_counter() - start


def last_rule_packets(lab: Lab) -> int:
    """Packets counted by the measured (last) rule of our table: proof that it did the DNAT."""
    out = run_in_namespace(lab.ns("gw"), "nft", "list", "table", "ip", RULES_TABLE, timeout=60)
    for line in out.stdout.splitlines():
        if f"dport {MAPPED_PORT} " in line and "packets" in line:
            words = line.split()
            return int(words[words.index("packets") + 1])
    return 0


def flush_conntrack(lab: Lab) -> bool:
    """Empty the gateway's conntrack table so each round starts alike; False without the tool."""
    if shutil.which("conntrack") is None:
        return False
    lab.run("gw", "conntrack", "-F", check=False, timeout=60)
    return True


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    rounds: int
    seconds: float
    latency_count: int
    latency_seconds: float
    workers: int
    mappings: int
    stream_rounds: int
    stream_seconds: int


def measure_round(setups: Sequence[Setup], params: Params) -> dict[str, dict[str, Any]]:
    """One round: latency (one worker, one connection at a time), then rate (all workers)."""
    for setup in setups:
        if setup.key != "plain":
            flush_conntrack(setup.lab)
    endpoints = [setup.endpoint for setup in setups]
    latency = measure_mixed(
        endpoints,
        workers=1,
        seconds=params.latency_seconds,
        max_each=params.latency_count,
        keep_samples=True,
    )
    rate = measure_mixed(
        endpoints,
        workers=params.workers,
        seconds=params.seconds,
        max_each=10**9,
        keep_samples=False,
    )
    results: dict[str, dict[str, Any]] = {}
    for setup in setups:
        samples = latency[setup.key]["samples_us"]
        results[setup.key] = {
            "rate": rate[setup.key]["rate"],
            "rate_all": rate[setup.key]["rate_all"],
            "rate_connections": rate[setup.key]["connections"],
            "rate_stalls": rate[setup.key]["stalls"],
            "rate_stall_seconds": rate[setup.key]["stall_seconds"],
            "latency_p50_us": round(percentile(samples, 0.5), 1) if samples else None,
            "latency_p95_us": round(percentile(samples, 0.95), 1) if samples else None,
            "latency_connections": len(samples),
            "errors": rate[setup.key]["errors"] + latency[setup.key]["errors"],
            "slow_connects": rate[setup.key]["slow"] + latency[setup.key]["slow"],
        }
    return results


def measure_stream(setup: Setup, params: Params) -> float:
    """One iperf3 TCP stream from the Internet host to lan2:5201 (through the mapping); Gbit/s."""
    out = subprocess.run(
        in_ns(
            setup.lab,
            "inet",
            "iperf3",
            "-c",
            setup.host,
            "-p",
            str(IPERF_PORT),
            "-t",
            str(params.stream_seconds),
            "-J",
        ),
        capture_output=True,
        text=True,
        timeout=params.stream_seconds + 30,
        check=False,
    )
    report = json.loads(out.stdout)
    if "error" in report:
        raise RuntimeError(f"iperf3 in {setup.lab.ns('inet')}: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9


def _rotated(items: Sequence[str], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def _per_round_ratios(
    rounds: dict[str, list[dict[str, Any]]], top: str, bottom: str, key: str
) -> list[float]:
    return [t[key] / b[key] for t, b in zip(rounds[top], rounds[bottom], strict=True)]


def _ratio_summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "per_round": [round(v, 4) for v in values],
    }


def run_benchmark(params: Params, log: Callable[[str], None]) -> dict[str, Any]:
    """Build the labs, measure everything, always take the labs down; the results."""
    began = time.perf_counter()
    machine = machine_info()
    setup_info: dict[str, Any] = {}
    setups: dict[str, Setup] = {}
    with contextlib.ExitStack() as stack:
        labs = {key: stack.enter_context(lab_session(LAB_TAGS[key])) for key in ORDER}
        try:
            log(
                "setting up six labs: plain, conntrack only, sharewall 1 mapping (twice), 10k, rule each"
            )
            setups["plain"] = setup_plain(labs["plain"])
            setups["ct_only"] = setup_conntrack_only(labs["ct_only"])
            setups["sw_1"], _ = setup_sharewall(
                labs["sw_1"], "sw_1", "sharewall, 1 mapping", measured_mapping=True, others=0
            )
            setups["sw_1_again"], _ = setup_sharewall(
                labs["sw_1_again"],
                "sw_1_again",
                "sharewall, 1 mapping, a second identical lab (the noise floor)",
                measured_mapping=True,
                others=0,
            )
            setups["sw_10k"], seconds = setup_sharewall(
                labs["sw_10k"],
                "sw_10k",
                f"sharewall, 1 + {params.mappings:,} mappings",
                measured_mapping=True,
                others=params.mappings,
            )
            setup_info["import_seconds"] = round(seconds, 3)
            setups["rule_each"], _ = setup_sharewall(
                labs["rule_each"],
                "rule_each",
                f"one nft rule per forward ({params.mappings + 1:,} rules, measured one last)",
                measured_mapping=False,
                others=params.mappings,
            )
            setup_info["rule_each_install_seconds"] = round(
                install_rules_table(labs["rule_each"], params.mappings), 3
            )
            for key in ("sw_10k", "rule_each"):
                client = setups[key].client
                assert client is not None
                setup_info[f"{key}_sharewall_mappings"] = client.status()["mappings"]

            rounds: dict[str, list[dict[str, Any]]] = {key: [] for key in ORDER}
            for number in range(params.rounds):
                ordered = [setups[key] for key in _rotated(ORDER, number)]
                results = measure_round(ordered, params)
                for key in ORDER:
                    rounds[key].append(results[key])
                log(
                    f"round {number + 1}/{params.rounds}: "
                    + "  ".join(
                        f"{key} {results[key]['rate']:,.0f}/s {results[key]['latency_p50_us']}us"
                        for key in ORDER
                    )
                )
            setup_info["rule_each_last_rule_packets"] = last_rule_packets(labs["rule_each"])
            setup_info["rule_each_connections_made"] = sum(
                r["rate_connections"] + r["latency_connections"] + r["errors"]
                for r in rounds["rule_each"]
            )

            stream_order = STREAM_ORDER
            streams: dict[str, list[dict[str, Any]]] = {key: [] for key in stream_order}
            for number in range(params.stream_rounds):
                for key in _rotated(stream_order, number):
                    gbit = measure_stream(setups[key], params)
                    streams[key].append({"gbit": gbit})
                log(
                    f"stream {number + 1}/{params.stream_rounds}: "
                    + "  ".join(
                        f"{key} {streams[key][-1]['gbit']:.2f} Gbit/s" for key in stream_order
                    )
                )
        finally:
            for setup in setups.values():
                if setup.client is not None:
                    setup.client.close()
                for process in reversed(setup.processes):
                    stop_process(process)

    scenarios = {
        key: {
            "label": setups[key].label,
            "median_rate": median([r["rate"] for r in results]),
            "median_rate_all": median([r["rate_all"] for r in results]),
            "stalls": sum(r["rate_stalls"] for r in results),
            "median_latency_p50_us": median([r["latency_p50_us"] for r in results]),
            "median_latency_p95_us": median([r["latency_p95_us"] for r in results]),
            "errors": sum(r["errors"] for r in results),
            "slow_connects": sum(r["slow_connects"] for r in results),
            "rounds": results,
        }
        for key, results in rounds.items()
    }
    throughput = {
        key: {
            "label": setups[key].label,
            "median_gbit": round(median([r["gbit"] for r in results]), 3),
            "rounds_gbit": [round(r["gbit"], 3) for r in results],
        }
        for key, results in streams.items()
    }
    ratios = {
        "rate_sw10k_over_sw1": _ratio_summary(_per_round_ratios(rounds, "sw_10k", "sw_1", "rate")),
        "rate_sw10k_over_rule_each": _ratio_summary(
            _per_round_ratios(rounds, "sw_10k", "rule_each", "rate")
        ),
        "rate_sw1_over_plain": _ratio_summary(_per_round_ratios(rounds, "sw_1", "plain", "rate")),
        "rate_sw1_again_over_sw1 (A/A: noise floor)": _ratio_summary(
            _per_round_ratios(rounds, "sw_1_again", "sw_1", "rate")
        ),
        "rate_all_sw10k_over_sw1 (stalls kept)": _ratio_summary(
            _per_round_ratios(rounds, "sw_10k", "sw_1", "rate_all")
        ),
        "latency_p50_sw10k_over_sw1": _ratio_summary(
            _per_round_ratios(rounds, "sw_10k", "sw_1", "latency_p50_us")
        ),
        "latency_p50_rule_each_over_sw10k": _ratio_summary(
            _per_round_ratios(rounds, "rule_each", "sw_10k", "latency_p50_us")
        ),
        "throughput_sw1_over_plain": _ratio_summary(
            _per_round_ratios(streams, "sw_1", "plain", "gbit")
        ),
        "throughput_ct_only_over_plain": _ratio_summary(
            _per_round_ratios(streams, "ct_only", "plain", "gbit")
        ),
        "throughput_sw1_over_ct_only": _ratio_summary(
            _per_round_ratios(streams, "sw_1", "ct_only", "gbit")
        ),
        "rate_ct_only_over_plain": _ratio_summary(
            _per_round_ratios(rounds, "ct_only", "plain", "rate")
        ),
        "rate_sw1_over_ct_only": _ratio_summary(
            _per_round_ratios(rounds, "sw_1", "ct_only", "rate")
        ),
        "throughput_sw10k_over_plain": _ratio_summary(
            _per_round_ratios(streams, "sw_10k", "plain", "gbit")
        ),
    }
    targets = [
        Target(
            f"connection rate, {params.mappings:,} mappings / 1 mapping",
            ratios["rate_sw10k_over_sw1"]["median"],
            ">=",
            0.95,
            "",
            "10,000 mappings cost at most 5 % of the rate",
        ),
        Target(
            f"connection rate, sharewall's maps / one rule each ({params.mappings:,} forwards)",
            ratios["rate_sw10k_over_rule_each"]["median"],
            ">=",
            4.0,
            "x",
        ),
        Target(
            "long-stream TCP throughput, sharewall / plain routing",
            ratios["throughput_sw1_over_plain"]["median"],
            ">=",
            0.95,
            "",
        ),
    ]
    return {
        "benchmark": "dataplane",
        "machine": machine,
        "method": {
            "load_generator": (
                f"python -m {MODULE}: {params.workers} forked workers, each entering the four "
                "Internet-host namespaces in turn (setns), one blocking connect() + RST close per "
                f"connection, {len(SOURCE_ADDRESSES)} source addresses; a server on lan2 accepts "
                "and closes"
            ),
            "rate": "workers x connections / wall time of those connections (connect + close), "
            f"{params.seconds} s per round; connections {STALL_FACTOR}x slower than the set-up's "
            "median (preemptions) are left out; rate_all keeps them",
            "latency": f"connect() with one worker, one at a time, up to {params.latency_count} "
            f"per set-up or {params.latency_seconds} s per round",
            "stream": f"iperf3 -t {params.stream_seconds}, one TCP stream, "
            f"{params.stream_rounds} rounds, set-ups in turn",
            "ratios": "median over rounds of the per-round ratio",
            "rounds": params.rounds,
            "mappings": params.mappings,
        },
        "setup": setup_info,
        "scenarios": scenarios,
        "throughput": throughput,
        "ratios": ratios,
        "targets": [target.as_dict() for target in targets],
        "duration_seconds": round(time.perf_counter() - began, 1),
    }


# --- command line --------------------------------------------------------------------------------


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dataplane", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="the whole benchmark (the default)")
    run.add_argument("--rounds", type=int, default=8)
    run.add_argument("--seconds", type=float, default=2.0, help="length of one rate run")
    run.add_argument("--latency-count", type=int, default=2000)
    run.add_argument("--latency-seconds", type=float, default=1.5)
    run.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    run.add_argument("--mappings", type=int, default=10000)
    run.add_argument("--stream-rounds", type=int, default=10)
    run.add_argument("--stream-seconds", type=int, default=2)
    run.add_argument(
        "--quick", action="store_true", help="a small, fast run for checking the harness"
    )
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result file (default bench/results/dataplane.json; --quick writes none unless given)",
    )

    serve_cmd = sub.add_parser("serve", help="(in a lab) accept and close connections")
    serve_cmd.add_argument("port", type=int)
    serve_cmd.add_argument("max_seconds", type=int)

    arguments = list(argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "run")  # the whole benchmark is the default command
    return parser.parse_args(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        serve(args.port, args.max_seconds)
        return 0
    if os.geteuid() != 0:
        print("the data-plane benchmark needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    if args.quick:
        params = Params(2, 1.0, 500, 0.5, args.workers, 2000, 1, 2)
    else:
        params = Params(
            args.rounds,
            args.seconds,
            args.latency_count,
            args.latency_seconds,
            args.workers,
            args.mappings,
            args.stream_rounds,
            args.stream_seconds,
        )
    interrupt_on_sigterm()
    results = run_benchmark(params, lambda line: print(line, flush=True))
    save_results("dataplane", results, args.out, quick=args.quick)
    print_verdicts(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
