"""The NFLOG reader against the real kernel: ``log group 7`` drops in a namespace reach our callback.

Two namespaces joined by a veth pair: ``gw`` carries a tiny nft table that logs and drops probes
(UDP 9999, TCP 9998, and a counted UDP 9997 for the flood), and runs the reader (a small script under
``ip netns exec``); ``peer`` sends the probes. Nothing is created in the root namespace.
"""

from __future__ import annotations

import json
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

GROUP = 7
PROBES = 20
GW_ADDRESS = "10.231.7.1"
PEER_ADDRESS = "10.231.7.2"
FIRST_SOURCE_PORT = 40000
TCP_SOURCE_PORT = 41000

RULESET = f"""
table inet swtest {{
    chain input {{
        type filter hook input priority 0;
        udp dport 9999 log group {GROUP} drop
        tcp dport 9998 log prefix "ICF-DROP " group {GROUP} drop
        udp dport 9997 counter log group {GROUP} drop
    }}
}}
"""

# Runs inside the gw namespace: prints READY once bound, then one JSON line per logged packet (unless
# quiet) and per loss report, an "idle" line once it has drained (0.5 s without news), then the
# reader's counters. It stops once packets + losses reach the expected count, or after 20 s. With a
# stall, the first callback blocks the event loop that long, as a daemon busy elsewhere would, so the
# socket buffer overflows.
READER_SCRIPT = """
import asyncio, dataclasses, json, sys, time
from sharewall.backends.nflog import NflogReader
from sharewall.protocols.nflog import packet_to_record
from sharewall.seclog.record import LogAction

async def main(want, group, stall_s, quiet):
    progress = asyncio.Event()
    seen = lost = 0

    def on_packet(packet):
        nonlocal seen
        if seen == 0 and stall_s:
            time.sleep(stall_s)
        record = packet_to_record(packet, action=LogAction.DROP, received_at=time.time())
        if not quiet:
            extra = {"prefix": packet.prefix, "indev": packet.indev, "seq": packet.seq}
            print(json.dumps({"record": record.to_json(), **extra}), flush=True)
        seen += 1
        progress.set()

    def on_lost(count):
        nonlocal lost
        lost += count
        print(json.dumps({"lost": count}), flush=True)
        progress.set()

    async with NflogReader(group, on_packet=on_packet, on_lost=on_lost) as reader:
        assert reader.receive_buffer_bytes >= 1 << 20, reader.receive_buffer_bytes
        print("READY", flush=True)
        deadline = time.monotonic() + 20
        idle_reported = False
        while seen + lost < want and time.monotonic() < deadline:
            progress.clear()
            quiet_spell = 0.5 if seen and not idle_reported else deadline - time.monotonic()
            try:
                await asyncio.wait_for(progress.wait(), timeout=max(quiet_spell, 0))
            except TimeoutError:
                if seen and not idle_reported:
                    idle_reported = True  # drained: tell the test, then keep reading
                    print(json.dumps({"idle": seen}), flush=True)
                    continue
                break
        print(json.dumps({"stats": dataclasses.asdict(reader.stats)}), flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "quiet"))
"""

# Runs inside the peer namespace: one datagram per source port, each a different size, then one
# TCP SYN (its connect times out; retransmissions come too late to matter).
PROBE_SCRIPT = f"""
import socket
for index in range({PROBES}):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("{PEER_ADDRESS}", {FIRST_SOURCE_PORT} + index))
        sock.sendto(b"p" * index, ("{GW_ADDRESS}", 9999))
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("{PEER_ADDRESS}", {TCP_SOURCE_PORT}))
    sock.settimeout(0.3)
    try:
        sock.connect(("{GW_ADDRESS}", 9998))
    except OSError:
        pass
"""


FLOOD = 20000
FLOOD_SCRIPT = f"""
import socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for _ in range({FLOOD}):
        sock.sendto(b"f", ("{GW_ADDRESS}", 9997))
"""


MARKER_SCRIPT = f"""
import socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.sendto(b"m", ("{GW_ADDRESS}", 9997))
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


def ifindex(netns: Netns, name: str) -> int:
    links = json.loads(netns.run("ip", "-j", "link", "show", "dev", name).stdout)
    index: int = links[0]["ifindex"]
    return index


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns, str]]:
    """``gw`` (with the logging table) and ``peer`` on one veth link; yields them and gw's veth name."""
    require_root()
    require_binary("ip")
    require_binary("nft")
    prefix = unique_prefix("s")
    with namespaces(f"{prefix}-gw", f"{prefix}-pr") as (gw, peer):
        veth(gw, f"{prefix}g", peer, f"{prefix}p")
        gw.run("ip", "addr", "add", f"{GW_ADDRESS}/24", "dev", f"{prefix}g")
        peer.run("ip", "addr", "add", f"{PEER_ADDRESS}/24", "dev", f"{prefix}p")
        gw.run("nft", "-f", "-", input=RULESET)
        assert peer.ping(GW_ADDRESS), "the veth link did not come up"
        yield gw, peer, f"{prefix}g"


def run_reader(
    gw: Netns,
    peer: Netns,
    probe_script: str,
    *,
    want: int,
    stall_s: float = 0,
    quiet: bool = False,
    when_idle: str | None = None,
) -> list[dict[str, Any]]:
    """Start the reader in ``gw``, run ``probe_script`` in ``peer``, return the reader's JSON lines.

    ``when_idle`` runs in ``peer`` once the reader says it has drained everything sent so far.
    """
    reader = gw.popen(
        sys.executable,
        "-c",
        READER_SCRIPT,
        str(want),
        str(GROUP),
        str(stall_s),
        "quiet" if quiet else "loud",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    deadline = time.monotonic() + 30
    first = read_line(reader.stdout, deadline)
    assert first == "READY\n", f"reader did not start: {first!r} {reader.stderr.read()}"
    peer.python(probe_script)
    lines: list[dict[str, Any]] = []
    while True:
        line = read_line(reader.stdout, deadline)
        if not line:
            break
        lines.append(json.loads(line))
        if "idle" in lines[-1] and when_idle is not None:
            peer.python(when_idle)
            when_idle = None
        if "stats" in lines[-1]:
            break
    assert reader.wait(timeout=10) == 0, reader.stderr.read()
    return lines


def test_drops_arrive_as_records(pair: tuple[Netns, Netns, str]) -> None:
    """20 dropped UDP probes and a TCP SYN give 21 records with the probes' fields, none lost."""
    gw, peer, gw_link = pair
    sent_at = time.time()
    lines = run_reader(gw, peer, PROBE_SCRIPT, want=PROBES + 1)

    stats = [line["stats"] for line in lines if "stats" in line]
    lost = [line["lost"] for line in lines if "lost" in line]
    packets = [line for line in lines if "record" in line]
    assert len(packets) == PROBES + 1, lines
    assert lost == []
    assert stats == [
        {"packets": PROBES + 1, "lost": 0, "overruns": 0, "parse_errors": 0, "callback_errors": 0}
    ]

    gw_ifindex = ifindex(gw, gw_link)
    by_port = {packet["record"]["src_port"]: packet for packet in packets}
    syn = by_port.pop(TCP_SOURCE_PORT)
    assert sorted(by_port) == list(range(FIRST_SOURCE_PORT, FIRST_SOURCE_PORT + PROBES))
    for index in range(PROBES):
        packet = by_port[FIRST_SOURCE_PORT + index]
        record = packet["record"]
        assert record["action"] == "DROP"
        assert record["protocol"] == 17
        assert record["src_ip"] == PEER_ADDRESS
        assert record["dst_ip"] == GW_ADDRESS
        assert record["dst_port"] == 9999
        assert record["size"] == 20 + 8 + index
        assert record["tcpflags"] is None and record["icmptype"] is None
        assert sent_at - 1 <= record["timestamp"] <= time.time() + 1
        assert packet["indev"] == gw_ifindex
        assert packet["prefix"] in (None, "")
    assert syn["prefix"] == "ICF-DROP "
    record = syn["record"]
    assert (record["protocol"], record["src_ip"], record["dst_ip"]) == (6, PEER_ADDRESS, GW_ADDRESS)
    assert record["dst_port"] == 9998
    assert record["tcpflags"] == "S"
    assert record["tcpack"] == 0
    assert record["tcpwin"] > 0
    assert record["tcpsyn"] is not None
    assert record["size"] == 60  # Linux SYN: 20 IP + 20 TCP + 20 options (MSS, SACK, TS, WS)
    # Per-group sequence numbers are on and consecutive: nothing was lost in between.
    sequence = [packet["seq"] for packet in packets]
    assert sequence == list(range(sequence[0], sequence[0] + PROBES + 1))


def test_overflow_is_counted_not_silent(pair: tuple[Netns, Netns, str]) -> None:
    """A stalled reader loses messages; received + reported lost equals what the log rule matched.

    The losses fall at the end of the burst, so the sequence gap that counts them shows on the next
    packet: one more probe after the reader has drained.
    """
    gw, peer, _ = pair
    lines = run_reader(
        gw, peer, FLOOD_SCRIPT, want=FLOOD + 1, stall_s=1.5, quiet=True, when_idle=MARKER_SCRIPT
    )
    (stats,) = [line["stats"] for line in lines if "stats" in line]
    reported = sum(line["lost"] for line in lines if "lost" in line)
    chain = json.loads(gw.run("nft", "-j", "list", "chain", "inet", "swtest", "input").stdout)
    matched = next(
        expr["counter"]["packets"]
        for item in chain["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    )
    assert stats["overruns"] >= 1
    assert stats["lost"] == reported > 0
    assert matched == FLOOD + 1
    assert stats["packets"] + stats["lost"] == matched
    assert stats["parse_errors"] == 0


BUSY_SCRIPT = f"""
import asyncio
from sharewall.backends.nflog import NflogReader
from sharewall.errors import KernelError

async def main():
    async with NflogReader({GROUP}, on_packet=print):
        try:
            async with NflogReader({GROUP}, on_packet=print):
                print("second bind accepted")
        except KernelError as error:
            print("refused:", error)

asyncio.run(main())
"""


def test_group_owned_by_another_socket_is_refused(pair: tuple[Netns, Netns, str]) -> None:
    """The kernel gives a group to one socket; a second reader fails with KernelError, not silence."""
    gw, _, _ = pair
    output = gw.python(BUSY_SCRIPT)
    assert output == f"refused: NFLOG: the kernel refused to bind group {GROUP}: EPERM\n"
