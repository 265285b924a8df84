"""The conntrack backend against the real kernel: events of NATed connections, the mark filter, dumps.

Three namespaces: ``cl`` (client, 10.233.1.2 / fd00:233:1::2) -- ``rt`` (router, masquerades IPv4
out of its server-side link, routes IPv6) -- ``sv`` (server, 10.233.2.2 / fd00:233:2::2). The router's
``inet`` table marks new TCP connections: to port 8080 with ``ct mark 0x100000`` (the bit the daemon
uses for "logged as OPEN"), to 8081 with ``0x1`` (a mark without that bit), 8082 not at all. The
backend only ever runs inside ``rt`` (a script under ``ip netns exec``); no conntrack socket is
opened in the root namespace. The router's TIME_WAIT timeout is 1 s so a closed connection is
destroyed promptly (the default is 120 s).
"""

from __future__ import annotations

import json
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest

from tests.support.env import require_binary, require_root
from tests.support.netns import Netns, namespaces, unique_prefix, veth

pytestmark = pytest.mark.netns

CLIENT_V4, ROUTER_CLIENT_V4 = "10.233.1.2", "10.233.1.1"
SERVER_V4, ROUTER_SERVER_V4 = "10.233.2.2", "10.233.2.1"
CLIENT_V6, ROUTER_CLIENT_V6 = "fd00:233:1::2", "fd00:233:1::1"
SERVER_V6, ROUTER_SERVER_V6 = "fd00:233:2::2", "fd00:233:2::1"
LOGGED_MARK = 0x100000
MARKED_PORT, OTHER_MARK_PORT, UNMARKED_PORT = 8080, 8081, 8082
IPS_SRC_NAT = 0x10
TCP_TIME_WAIT = 7


def ruleset(server_link: str) -> str:
    return f"""
table inet swtc {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ct state new tcp dport {MARKED_PORT} ct mark set {LOGGED_MARK:#x}
        ct state new tcp dport {OTHER_MARK_PORT} ct mark set 0x1
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        meta nfproto ipv4 oifname "{server_link}" masquerade
    }}
}}
"""


# Runs in ``sv``: a dual-stack TCP server on the given ports. Each connection: read the client's
# bytes, answer them twice, report the peer it saw (after NAT), close. Bounded to 60 s.
SERVER_SCRIPT = """
import json, selectors, socket, sys, time
selector = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", port))
    listener.listen()
    selector.register(listener, selectors.EVENT_READ)
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    for key, _ in selector.select(timeout=1):
        connection, peer = key.fileobj.accept()
        with connection:
            connection.settimeout(5)
            data = connection.recv(100)
            connection.sendall(data * 2)
            host = peer[0].removeprefix("::ffff:")
            print(json.dumps({"port": key.fileobj.getsockname()[1], "peer": [host, peer[1]]}), flush=True)
"""

# Runs in ``cl``: one connection, "hello" out, read to EOF, close; report our port and the time.
CLIENT_SCRIPT = """
import json, socket, sys, time
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as sock:
    sock.sendall(b"hello")
    reply = b""
    while chunk := sock.recv(100):
        reply += chunk
    sport = sock.getsockname()[1]
print(json.dumps({"sport": sport, "reply": reply.decode(), "closed_at": time.time()}))
"""

# Runs in ``rt``: three readers side by side. "kernel" filters on the mark with the BPF filter,
# "python" with the filter off (only the Python test), "all" takes everything (the witness). Prints
# READY, then one JSON line per entry, and each reader's stats once "all" has seen the DESTROY of
# ``want`` connections to the test ports and the filtered readers ``want_marked`` of theirs.
READER_SCRIPT = """
import asyncio, dataclasses, json, sys, time
from sharewall.backends.conntrack import ConntrackEvent, ConntrackEvents

async def main(want, want_marked, mask):
    destroyed = {"kernel": 0, "python": 0, "all": 0}
    progress = asyncio.Event()

    def on_entry(name):
        def handle(entry):
            if entry.protocol != 6 or entry.original.dst_port not in (8080, 8081, 8082):
                return
            if entry.event is ConntrackEvent.DESTROY:
                destroyed[name] += 1
            print(json.dumps({"reader": name, "at": time.time(), "entry": entry.to_json()}), flush=True)
            progress.set()
        return handle

    events = (ConntrackEvent.NEW, ConntrackEvent.DESTROY)
    async with (
        ConntrackEvents(on_entry("kernel"), events=events, mark_mask=mask, reap_interval_s=0.2) as kernel,
        ConntrackEvents(on_entry("python"), events=events, mark_mask=mask, kernel_filter=False) as python,
        ConntrackEvents(on_entry("all"), events=events) as everything,
    ):
        print("READY", flush=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            destroyed["all"] >= want and destroyed["kernel"] >= want_marked
            and destroyed["python"] >= want_marked
        ):
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), timeout=deadline - time.monotonic())
            except TimeoutError:
                break
        for name, reader in (("kernel", kernel), ("python", python), ("all", everything)):
            print(json.dumps({"reader": name, "stats": dataclasses.asdict(reader.stats)}), flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3], 0)))
"""


def read_line(stream: IO[str], deadline: float) -> str | None:
    """The next line of ``stream``, or ``None`` once ``deadline`` (monotonic) has passed."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if selector.select(timeout=remaining):
                return stream.readline()


class Topology:
    def __init__(self, client: Netns, router: Netns, server: Netns, server_output: IO[str]) -> None:
        self.client, self.router, self.server = client, router, server
        self._server_output = server_output

    def sysctl(self, key: str, value: int) -> None:
        """Set a sysctl in the router namespace (ours: created by this test)."""
        self.router.run("sysctl", "-qw", f"{key}={value}")

    def connect(self, host: str, port: int) -> dict[str, Any]:
        """One client connection; returns its source port, close time and the peer the server saw."""
        out = self.client.run(sys.executable, "-c", CLIENT_SCRIPT, host, str(port), timeout=15)
        result: dict[str, Any] = json.loads(out.stdout)
        assert result["reply"] == "hello" * 2, result
        deadline = time.monotonic() + 10
        while (line := read_line(self._server_output, deadline)) is not None:
            report = json.loads(line)
            if report["port"] == port:  # skips reports of connections other tests left behind
                result["peer"] = tuple(report["peer"])
                return result
        raise AssertionError(f"the server did not report the connection to port {port}")

    def router_python(self, code: str, timeout: float = 30) -> str:
        return self.router.python(code, timeout=timeout)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    require_root()
    require_binary("ip")
    require_binary("nft")
    require_binary("conntrack")
    prefix = unique_prefix("c")
    with namespaces(f"{prefix}-cl", f"{prefix}-rt", f"{prefix}-sv") as (client, router, server):
        veth(client, f"{prefix}c", router, f"{prefix}r1")
        veth(server, f"{prefix}s", router, f"{prefix}r2")
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        for netns, link, v4, v6 in (
            (client, f"{prefix}c", f"{CLIENT_V4}/24", f"{CLIENT_V6}/64"),
            (router, f"{prefix}r1", f"{ROUTER_CLIENT_V4}/24", f"{ROUTER_CLIENT_V6}/64"),
            (router, f"{prefix}r2", f"{ROUTER_SERVER_V4}/24", f"{ROUTER_SERVER_V6}/64"),
            (server, f"{prefix}s", f"{SERVER_V4}/24", f"{SERVER_V6}/64"),
        ):
            netns.run("ip", "addr", "add", v4, "dev", link)
            netns.run("ip", "-6", "addr", "add", v6, "dev", link, "nodad")
        client.run("ip", "route", "add", "default", "via", ROUTER_CLIENT_V4)
        client.run("ip", "-6", "route", "add", "default", "via", ROUTER_CLIENT_V6)
        server.run("ip", "-6", "route", "add", "default", "via", ROUTER_SERVER_V6)
        router.run("nft", "-f", "-", input=ruleset(f"{prefix}r2"))
        for key, value in (
            ("net.netfilter.nf_conntrack_tcp_timeout_time_wait", 1),
            ("net.netfilter.nf_conntrack_timestamp", 1),
        ):
            router.run("sysctl", "-qw", f"{key}={value}")
        assert client.ping(SERVER_V4), "no IPv4 path client → server"
        server_process = server.popen(
            sys.executable,
            "-c",
            SERVER_SCRIPT,
            str(MARKED_PORT),
            str(OTHER_MARK_PORT),
            str(UNMARKED_PORT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert server_process.stdout is not None
        assert read_line(server_process.stdout, time.monotonic() + 15) == "ready\n"
        yield Topology(client, router, server, server_process.stdout)


def test_destroy_of_marked_connections_arrives_filtered(topology: Topology) -> None:
    """NEW and DESTROY of the marked connections arrive with the NATed tuples and the mark; the rest
    are filtered out, by the kernel filter and by the Python test alike; counters follow acct."""
    topology.sysctl("net.netfilter.nf_conntrack_acct", 0)
    reader = topology.router.popen(
        sys.executable,
        "-c",
        READER_SCRIPT,
        "4",
        "2",
        hex(LOGGED_MARK),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    deadline = time.monotonic() + 40
    first = read_line(reader.stdout, deadline)
    assert first == "READY\n", f"reader did not start: {first!r}"

    without_counters = topology.connect(SERVER_V4, MARKED_PORT)
    topology.sysctl("net.netfilter.nf_conntrack_acct", 1)
    with_counters = topology.connect(SERVER_V4, MARKED_PORT)
    other_mark = topology.connect(SERVER_V4, OTHER_MARK_PORT)
    unmarked = topology.connect(SERVER_V4, UNMARKED_PORT)

    lines: list[dict[str, Any]] = []
    while True:
        line = read_line(reader.stdout, deadline)
        if not line:
            break
        lines.append(json.loads(line))
        if sum("stats" in item for item in lines) == 3:
            break
    assert reader.wait(timeout=10) == 0, reader.stderr.read()
    topology.sysctl("net.netfilter.nf_conntrack_acct", 0)

    stats = {item["reader"]: item["stats"] for item in lines if "stats" in item}
    seen: dict[str, list[dict[str, Any]]] = {"kernel": [], "python": [], "all": []}
    for item in lines:
        if "entry" in item:
            seen[item["reader"]].append({**item["entry"], "received_at": item["at"]})

    def events_of(name: str, sport: int) -> list[str]:
        return [e["event"] for e in seen[name] if e["original"]["src_port"] == sport]

    marked = (without_counters["sport"], with_counters["sport"])
    for name in ("kernel", "python"):
        assert sorted({e["original"]["src_port"] for e in seen[name]}) == sorted(marked), seen[name]
        for sport in marked:
            assert events_of(name, sport) == ["NEW", "DESTROY"], seen[name]
        assert all(e["mark"] == LOGGED_MARK for e in seen[name])

    # The witness saw the other two connections, with their marks, so they were there to filter.
    def marks_seen_by_all(sport: int) -> list[int]:
        return [e["mark"] for e in seen["all"] if e["original"]["src_port"] == sport]

    assert marks_seen_by_all(other_mark["sport"]) == [1, 1]  # NEW, DESTROY
    assert marks_seen_by_all(unmarked["sport"]) == [0, 0]
    # The kernel filter dropped them before Python saw them; without it, Python dropped them.
    assert stats["kernel"]["filtered"] == 0
    assert stats["kernel"]["delivered"] == 4
    assert stats["python"]["delivered"] == 4
    assert stats["python"]["filtered"] >= 4
    for reader_stats in stats.values():
        assert reader_stats["overruns"] == reader_stats["parse_errors"] == 0
        assert reader_stats["callback_errors"] == 0

    # Tuples: the client's connection as it entered, and the reply as NAT rewrote it (the server
    # saw the router's public address and the masqueraded port).
    for client_run, acct in ((without_counters, False), (with_counters, True)):
        (new,) = [
            e
            for e in seen["kernel"]
            if e["original"]["src_port"] == client_run["sport"] and e["event"] == "NEW"
        ]
        (destroy,) = [
            e
            for e in seen["kernel"]
            if e["original"]["src_port"] == client_run["sport"] and e["event"] == "DESTROY"
        ]
        for entry in (new, destroy):
            assert entry["family"] == 4 and entry["protocol"] == 6
            assert entry["original"]["src"] == CLIENT_V4
            assert entry["original"]["dst"] == SERVER_V4
            assert entry["original"]["dst_port"] == MARKED_PORT
            assert entry["reply"]["src"] == SERVER_V4
            assert entry["reply"]["src_port"] == MARKED_PORT
            assert (entry["reply"]["dst"], entry["reply"]["dst_port"]) == client_run["peer"]
            assert client_run["peer"][0] == ROUTER_SERVER_V4  # masqueraded
            assert entry["status"] & IPS_SRC_NAT
            assert entry["id"] == new["id"]
        assert destroy["tcp_state"] == TCP_TIME_WAIT
        assert destroy["timeout"] is None
        assert destroy["start_ns"] <= destroy["stop_ns"]
        # Closed → TIME_WAIT (1 s) → reaped (every 0.2 s) → DESTROY: well within 5 s.
        assert destroy["received_at"] - client_run["closed_at"] < 5.0
        if acct:
            assert destroy["orig_packets"] >= 3 and destroy["reply_packets"] >= 3
            assert destroy["orig_bytes"] >= len("hello") + 3 * 40
            assert destroy["reply_bytes"] >= 2 * len("hello") + 3 * 40
        else:
            # Accounting was off when the connection started: the kernel sends no counters.
            assert destroy["orig_packets"] is None and destroy["orig_bytes"] is None
            assert destroy["reply_packets"] is None and destroy["reply_bytes"] is None


CONNTRACK_FIELD = re.compile(r"(\w+)=(\S+)")


def parse_conntrack_list(output: str) -> set[tuple[Any, ...]]:
    """``conntrack -L -o extended`` lines as (family, protocol, original tuple, reply tuple, mark)."""
    entries: set[tuple[Any, ...]] = set()
    for line in output.splitlines():
        words = line.split()
        if len(words) < 4 or words[0] not in ("ipv4", "ipv6"):
            continue
        family = 4 if words[0] == "ipv4" else 6
        protocol = int(words[3])
        pairs = CONNTRACK_FIELD.findall(line)
        sides: list[dict[str, str]] = [{}, {}]
        side = 0
        for key, value in pairs:
            if key == "src" and "src" in sides[0]:
                side = 1
            if key in ("src", "dst", "sport", "dport", "type", "code", "id"):
                sides[side].setdefault(key, value)
        marks = [value for key, value in pairs if key == "mark"]

        def as_tuple(side_fields: dict[str, str]) -> tuple[Any, ...]:
            ports = tuple(
                int(side_fields[key]) if key in side_fields else None for key in ("sport", "dport")
            )
            return (side_fields["src"], side_fields["dst"], *ports)

        entries.add(
            (
                family,
                protocol,
                as_tuple(sides[0]),
                as_tuple(sides[1]),
                int(marks[0]) if marks else 0,
            )
        )
    return entries


def entry_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    def as_tuple(side: dict[str, Any]) -> tuple[Any, ...]:
        return (side["src"], side["dst"], side["src_port"], side["dst_port"])

    return (
        entry["family"],
        entry["protocol"],
        as_tuple(entry["original"]),
        as_tuple(entry["reply"]),
        entry["mark"],
    )


UDP_FLOWS_V4 = 1000
UDP_FLOWS_V6 = 20

FLOWS_SCRIPT = f"""
import socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for port in range(30000, 30000 + {UDP_FLOWS_V4}):
        sock.sendto(b"x", ("{SERVER_V4}", port))
with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
    for port in range(30000, 30000 + {UDP_FLOWS_V6}):
        sock.sendto(b"x", ("{SERVER_V6}", port))
"""

# Runs in ``rt``: our dumps (timed), then ``conntrack -L`` (timed) right after, as JSON.
DUMP_SCRIPT = """
import asyncio, json, subprocess, time
from sharewall.backends import conntrack

async def main():
    started = time.perf_counter()
    entries = await conntrack.dump()
    dump_s = time.perf_counter() - started
    started = time.perf_counter()
    listing = subprocess.run(["conntrack", "-L", "-o", "extended"], capture_output=True, text=True, check=True)
    cli_s = time.perf_counter() - started
    result = {
        "entries": [entry.to_json() for entry in entries],
        "count": conntrack.count(),
        "conntrack_l": listing.stdout,
        "dump_s": dump_s,
        "cli_s": cli_s,
        "udp": len(await conntrack.dump(protocol=17)),
        "udp6": len(await conntrack.dump(protocol=17, family=6)),
        "tcp_marked": [e.to_json() for e in await conntrack.dump(protocol=6, mark_mask=0x100000)],
        "marked": len(await conntrack.dump(mark_mask=0x100000)),
        "marked_wide": len(await conntrack.dump(mark_mask=0x100001)),
        "v6": len(await conntrack.dump(family=6)),
        "limited": len(await conntrack.dump(limit=10)),
    }
    print(json.dumps(result))

asyncio.run(main())
"""

# Runs in ``cl``: holds one TCP connection to the marked port open until stdin closes.
HOLD_SCRIPT = f"""
import socket, sys
with socket.create_connection(("{SERVER_V4}", {MARKED_PORT}), timeout=5) as sock:
    print(sock.getsockname()[1], flush=True)
    sock.sendall(b"hello")
    sys.stdin.read()
"""


def test_dump_agrees_with_conntrack_list(topology: Topology) -> None:
    """``dump()`` returns the same entries as ``conntrack -L`` in the same namespace, ~1,000 of them."""
    topology.router.run("conntrack", "-F", check=False)
    holder = topology.client.popen(
        sys.executable,
        "-c",
        HOLD_SCRIPT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    held_line = read_line(holder.stdout, time.monotonic() + 15)
    assert held_line, "the held connection did not open"
    held_port = int(held_line)
    topology.client.python(FLOWS_SCRIPT)

    result = json.loads(topology.router_python(DUMP_SCRIPT))
    holder.stdin.close()

    ours = {entry_key(entry) for entry in result["entries"]}
    theirs = parse_conntrack_list(result["conntrack_l"])
    assert len(result["entries"]) == len(ours)  # no duplicates
    assert ours == theirs
    total = UDP_FLOWS_V4 + UDP_FLOWS_V6 + 1
    assert len(ours) == result["count"] == total
    assert result["udp"] == UDP_FLOWS_V4 + UDP_FLOWS_V6
    assert result["udp6"] == UDP_FLOWS_V6
    assert result["v6"] == UDP_FLOWS_V6
    assert result["marked"] == result["marked_wide"] == 1
    assert result["limited"] == 10
    (held,) = result["tcp_marked"]
    assert held["original"]["src_port"] == held_port
    assert held["mark"] == LOGGED_MARK
    assert held["tcp_state"] in (3, 5)  # ESTABLISHED, or CLOSE_WAIT once the server has closed
    assert held["timeout"] > 0
    # Not a benchmark (the machine is shared), only a guard against a pathological slowdown.
    print(
        f"\ndump of {total} entries: {result['dump_s'] * 1000:.1f} ms; conntrack -L: {result['cli_s'] * 1000:.1f} ms"
    )
    assert result["dump_s"] < 2.0


# Runs in ``rt``: a reader with a tiny receive buffer whose first callback stalls the loop, while
# the test flushes the table (one DESTROY per entry). Then one more flow is flushed to show it
# keeps working. Prints the stats and the number of losses reported through on_lost.
OVERRUN_SCRIPT = """
import asyncio, dataclasses, json, subprocess, sys, time
from sharewall.backends.conntrack import ConntrackEvents

async def main():
    delivered = []
    lost = []
    stalled = False

    def on_entry(entry):
        nonlocal stalled
        if not stalled:
            stalled = True
            time.sleep(1.0)  # a daemon busy elsewhere: the socket buffer overflows meanwhile
        delivered.append(entry)

    async with ConntrackEvents(on_entry, on_lost=lost.append, receive_buffer_bytes=4096) as reader:
        print("READY", flush=True)
        sys.stdin.readline()  # the test flushed the table
        deadline = time.monotonic() + 10
        quiet_since = time.monotonic()
        seen = 0
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
            await asyncio.sleep(0.05)
            if len(delivered) != seen:
                seen, quiet_since = len(delivered), time.monotonic()
        before = len(delivered)
        subprocess.run(["conntrack", "-I", "-p", "udp", "-s", "192.0.2.1", "-d", "192.0.2.2",
                        "--sport", "1", "--dport", "2", "-t", "60"], check=True, capture_output=True)
        subprocess.run(["conntrack", "-D", "-p", "udp", "-s", "192.0.2.1"], check=True, capture_output=True)
        while time.monotonic() < deadline and len(delivered) == before:
            await asyncio.sleep(0.05)
        print(json.dumps({"stats": dataclasses.asdict(reader.stats), "lost_reports": sum(lost),
                          "delivered": len(delivered), "after": len(delivered) - before}), flush=True)

asyncio.run(main())
"""


def test_overrun_is_counted(topology: Topology) -> None:
    """A stalled reader with a small buffer loses DESTROY events: counted, reported, and it recovers."""
    topology.router.run("conntrack", "-F", check=False)
    reader = topology.router.popen(
        sys.executable,
        "-c",
        OVERRUN_SCRIPT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stdin is not None and reader.stderr is not None
    deadline = time.monotonic() + 30
    assert read_line(reader.stdout, deadline) == "READY\n"
    # Flows made after the reader subscribed: with nf_conntrack_events=2 ("auto", the default)
    # only those carry the event extension, so only those send DESTROY.
    topology.client.python(FLOWS_SCRIPT)
    flows = int(topology.router.run("cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)
    assert flows >= UDP_FLOWS_V4
    topology.router.run("conntrack", "-F")
    reader.stdin.write("go\n")
    reader.stdin.flush()
    line = read_line(reader.stdout, deadline)
    assert line, reader.stderr.read()
    result = json.loads(line)
    assert reader.wait(timeout=10) == 0, reader.stderr.read()
    stats = result["stats"]
    assert stats["overruns"] >= 1, (flows, result)
    assert result["lost_reports"] == stats["overruns"]  # one report per overflow (a lower bound)
    assert stats["delivered"] == result["delivered"]
    assert result["delivered"] - result["after"] < flows  # some of the flushed entries were lost
    assert result["after"] == 1  # it keeps reading after an overflow
    assert stats["parse_errors"] == 0
