"""The pure half of the conntrack backend: ctnetlink parsing (golden kernel bytes, round trips, the
fast path against the general one, garbage), dump requests, and the BPF mark filter run by a small
classic-BPF interpreter. No sockets."""

from __future__ import annotations

import json
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharewall.backends import conntrack
from sharewall.backends.conntrack import (
    IPS_SRC_NAT,
    ConntrackEntry,
    ConntrackEvent,
    ConntrackEvents,
    ConntrackParseError,
    ConntrackTuple,
    NetlinkDone,
    NetlinkError,
    TcpState,
    build_dump_request,
    encode_entry,
    mark_filter_program,
    parse_messages,
)
from sharewall.errors import ValidationError

NLMSG = struct.Struct("=IHHII")

# Captured from Linux 6.18 in a test namespace: a masqueraded TCP connection 10.232.1.2:57902 →
# 10.232.2.2:8080 with ct mark 0x100000, nf_conntrack_acct and nf_conntrack_timestamp on.
KERNEL_NEW = bytes.fromhex(
    "d8000000000100060000000000000000020000003400018014000180080001000ae80102080002000ae80202"
    "1c000280050001000600000006000200e22e0000060003001f9000003400028014000180080001000ae80202"
    "080002000ae802011c0002800500010006000000060002001f90000006000300e22e000008000c00ddd6ba7c"
    "08000300000001980800070000000078300004802c0001800500010001000000050002000a00000005000300"
    "000000000600040003000000060005000000000008000800001000000c001b0018ebbda7797679c9"
)
KERNEL_DESTROY = bytes.fromhex(
    "04010000020100000000000000000000020000003400018014000180080001000ae80102080002000ae80202"
    "1c000280050001000600000006000200e22e0000060003001f9000003400028014000180080001000ae80202"
    "080002000ae802011c0002800500010006000000060002001f90000006000300e22e000008000c00ddd6ba7c"
    "080003000000039e1c0009800c00010000000000000000060c00020000000000000001451c000a800c000100"
    "00000000000000040c00020000000000000000e21c0014800c00010018ebbda77976ba2d0c00020018ebbda7"
    "b5232aa1100004800c000180050001000700000008000800001000000c001b0018ebbda7f5459ffb"
)
ORIGINAL = ConntrackTuple(src="10.232.1.2", dst="10.232.2.2", src_port=57902, dst_port=8080)
REPLY = ConntrackTuple(src="10.232.2.2", dst="10.232.2.1", src_port=8080, dst_port=57902)


# --- golden: what the kernel really sends ----------------------------------------------------------


def test_kernel_new_event() -> None:
    (entry,) = parse_messages(KERNEL_NEW)
    assert entry == ConntrackEntry(
        family=4,
        protocol=6,
        original=ORIGINAL,
        reply=REPLY,
        mark=0x100000,
        status=0x198,  # CONFIRMED | SRC_NAT | SRC_NAT_DONE | DST_NAT_DONE
        event=ConntrackEvent.NEW,
        id=0xDDD6BA7C,
        timeout=120,
        tcp_state=TcpState.SYN_SENT,
        event_ns=0x0018EBBDA7797679C9,
    )
    assert entry.src_nat and not entry.dst_nat


def test_kernel_destroy_event_with_counters_and_times() -> None:
    (entry,) = parse_messages(KERNEL_DESTROY)
    assert isinstance(entry, ConntrackEntry)
    assert entry.event is ConntrackEvent.DESTROY
    assert (entry.original, entry.reply, entry.mark) == (ORIGINAL, REPLY, 0x100000)
    assert entry.status & IPS_SRC_NAT
    assert entry.timeout is None  # a DESTROY carries no timeout
    assert entry.tcp_state == TcpState.TIME_WAIT
    assert (entry.orig_packets, entry.orig_bytes) == (6, 325)
    assert (entry.reply_packets, entry.reply_bytes) == (4, 226)
    assert entry.start_ns == 0x0018EBBDA77976BA2D
    assert entry.stop_ns == 0x0018EBBDA7B5232AA1
    assert entry.event_ns == 0x0018EBBDA7F5459FFB


def test_json_is_plain_data() -> None:
    (entry,) = parse_messages(KERNEL_DESTROY)
    assert isinstance(entry, ConntrackEntry)
    data = json.loads(json.dumps(entry.to_json()))
    assert data["event"] == "DESTROY"
    assert data["original"]["dst_port"] == 8080
    assert data["reply"]["dst"] == "10.232.2.1"
    assert data["mark"] == 0x100000


# --- round trips (Hypothesis) -------------------------------------------------------------------------

PORT_PROTOCOLS = (6, 17, 33, 132, 136)


@st.composite
def tuples(draw: st.DrawFn, family: int, protocol: int) -> ConntrackTuple:
    size, address_family = (4, socket.AF_INET) if family == 4 else (16, socket.AF_INET6)
    src, dst = (
        socket.inet_ntop(address_family, draw(st.binary(min_size=size, max_size=size)))
        for _ in range(2)
    )
    if protocol in PORT_PROTOCOLS:
        ports = st.none() | st.integers(0, 0xFFFF)
        return ConntrackTuple(src=src, dst=dst, src_port=draw(ports), dst_port=draw(ports))
    if protocol in (1, 58):
        small = st.none() | st.integers(0, 255)
        return ConntrackTuple(
            src=src,
            dst=dst,
            icmp_type=draw(small),
            icmp_code=draw(small),
            icmp_id=draw(st.none() | st.integers(0, 0xFFFF)),
        )
    return ConntrackTuple(src=src, dst=dst)


def optional(strategy: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    return st.none() | strategy


@st.composite
def entries(draw: st.DrawFn) -> ConntrackEntry:
    family = draw(st.sampled_from((4, 6)))
    protocol = draw(st.sampled_from((*PORT_PROTOCOLS, 1, 58, 47, 50)))
    u32, u64 = st.integers(0, 0xFFFF_FFFF), st.integers(0, 2**64 - 1)
    packets, octets = draw(optional(u64)), draw(optional(u64))
    reply_packets, reply_bytes = draw(optional(u64)), draw(optional(u64))
    return ConntrackEntry(
        family=family,
        protocol=protocol,
        original=draw(tuples(family, protocol)),
        reply=draw(tuples(family, protocol)),
        mark=draw(u32),
        status=draw(u32),
        event=draw(st.none() | st.sampled_from(ConntrackEvent)),
        id=draw(optional(u32)),
        zone=draw(st.integers(0, 0xFFFF)),
        timeout=draw(optional(u32)),
        tcp_state=draw(optional(st.integers(0, 9))) if protocol == 6 else None,
        orig_packets=packets,
        orig_bytes=octets,
        reply_packets=reply_packets,
        reply_bytes=reply_bytes,
        start_ns=draw(optional(u64)),
        stop_ns=draw(optional(u64)),
        event_ns=draw(optional(u64)),
    )


@given(st.lists(entries(), min_size=1, max_size=5))
def test_round_trip(batch: list[ConntrackEntry]) -> None:
    """What encode_entry writes (the kernel's layout), parse_messages reads back unchanged."""
    data = b"".join(encode_entry(entry, seq=index) for index, entry in enumerate(batch))
    assert parse_messages(data) == batch


@given(st.lists(entries(), min_size=1, max_size=5))
def test_fast_path_agrees_with_general_path(batch: list[ConntrackEntry]) -> None:
    """The one-unpack reading of TCP/UDP tuples gives what the attribute walk gives."""
    data = b"".join(encode_entry(entry) for entry in batch)
    fast = parse_messages(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conntrack, "_FAST_LAYOUTS", {})
        assert parse_messages(data) == fast


@given(st.lists(entries(), min_size=2, max_size=6), st.data())
def test_split_at_message_boundaries(batch: list[ConntrackEntry], data: st.DataObject) -> None:
    """Parsing datagrams one by one equals parsing them joined (messages never span datagrams)."""
    encoded = [encode_entry(entry) for entry in batch]
    cut = data.draw(st.integers(1, len(encoded) - 1))
    first, second = b"".join(encoded[:cut]), b"".join(encoded[cut:])
    assert parse_messages(first) + parse_messages(second) == parse_messages(first + second)


# --- garbage ---------------------------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_garbage_is_an_error_or_a_value(data: bytes) -> None:
    try:
        parse_messages(data)
    except ConntrackParseError:
        pass


@given(entries(), st.data())
def test_truncated_messages_are_errors(entry: ConntrackEntry, data: st.DataObject) -> None:
    encoded = encode_entry(entry)
    cut = data.draw(st.integers(1, len(encoded) - 1))
    with pytest.raises(ConntrackParseError):
        parse_messages(encoded[:cut])


@given(entries(), st.data())
def test_corrupted_messages_raise_only_parse_errors(
    entry: ConntrackEntry, data: st.DataObject
) -> None:
    encoded = bytearray(encode_entry(entry))
    for _ in range(data.draw(st.integers(1, 4))):
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse_messages(bytes(encoded))
    except ConntrackParseError:
        pass


def test_missing_tuple_is_an_error() -> None:
    entry = ConntrackEntry(family=4, protocol=6, original=ORIGINAL, reply=REPLY)
    encoded = encode_entry(entry)
    # Drop the reply tuple (the second attribute): fix the message length.
    first_len = struct.unpack_from("=H", encoded, 20)[0]
    second_len = struct.unpack_from("=H", encoded, 20 + first_len)[0]
    body = encoded[20 : 20 + first_len] + encoded[20 + first_len + second_len :]
    message = NLMSG.pack(20 + len(body), 0x0100, 0x2, 0, 0) + encoded[16:20] + body
    with pytest.raises(ConntrackParseError, match="both tuples"):
        parse_messages(message)


# --- control messages and event kinds ----------------------------------------------------------------


def test_done_and_error_messages() -> None:
    done = NLMSG.pack(20, 3, 0x2, 7, 0) + struct.pack("=i", 0)
    error = NLMSG.pack(36, 2, 0, 8, 0) + struct.pack("=i", -95) + bytes(16)
    noop = NLMSG.pack(16, 1, 0, 0, 0)
    assert parse_messages(done + error + noop) == [NetlinkDone(7, 0), NetlinkError(8, -95)]


def test_unknown_message_type_is_an_error() -> None:
    with pytest.raises(ConntrackParseError, match="unexpected"):
        parse_messages(NLMSG.pack(20, 0x0101, 0, 0, 0) + bytes(4))


@pytest.mark.parametrize(
    ("kind", "flags", "event"),
    [
        (0x0100, 0x002, None),  # a dump entry: NLM_F_MULTI
        (0x0100, 0x600, ConntrackEvent.NEW),  # NLM_F_CREATE | NLM_F_EXCL
        (0x0100, 0x000, ConntrackEvent.UPDATE),
        (0x0102, 0x000, ConntrackEvent.DESTROY),
    ],
)
def test_event_kind_from_type_and_flags(
    kind: int, flags: int, event: ConntrackEvent | None
) -> None:
    body = encode_entry(ConntrackEntry(family=4, protocol=6, original=ORIGINAL, reply=REPLY))[16:]
    (entry,) = parse_messages(NLMSG.pack(16 + len(body), kind, flags, 0, 0) + body)
    assert isinstance(entry, ConntrackEntry)
    assert entry.event is event


# --- dump requests -------------------------------------------------------------------------------


def test_plain_dump_request() -> None:
    """IPCTNL_MSG_CT_GET, REQUEST|DUMP, nfgenmsg(AF_UNSPEC, v0, 0), no attributes."""
    assert build_dump_request(seq=5) == NLMSG.pack(20, 0x0101, 0x301, 5, 0) + bytes(4)


def test_filtered_dump_request() -> None:
    request = build_dump_request(seq=1, family=6, protocol=17, mark=0x10, mark_mask=0x10)
    assert request[16] == socket.AF_INET6
    attrs = request[20:]
    assert attrs[:8] == struct.pack("=HH", 8, 8) + struct.pack("!I", 0x10)  # CTA_MARK
    assert attrs[8:16] == struct.pack("=HH", 8, 21) + struct.pack("!I", 0x10)  # CTA_MARK_MASK
    # CTA_TUPLE_ORIG { CTA_TUPLE_PROTO { CTA_PROTO_NUM = 17 } }
    assert attrs[16:32] == struct.pack("=HHHHHHB3x", 16, 0x8001, 12, 0x8002, 5, 1, 17)
    # CTA_FILTER { ORIG_FLAGS = CTA_FILTER_F_CTA_PROTO_NUM, REPLY_FLAGS = 0 } (host byte order)
    assert attrs[32:] == struct.pack("=HHHHIHHI", 20, 0x8019, 8, 1, 1 << 3, 8, 2, 0)
    assert struct.unpack_from("=I", request)[0] == len(request)


@pytest.mark.parametrize(
    "arguments",
    [
        {"protocol": 6},  # the kernel's tuple filter needs a family
        {"family": 5},
        {"family": 4, "protocol": 256},
        {"mark": -1},
        {"mark_mask": 1 << 32},
    ],
)
def test_bad_dump_requests(arguments: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        build_dump_request(seq=1, **arguments)


# --- the BPF mark filter -----------------------------------------------------------------------------

SKF_AD_NLATTR = (-0x1000 + 12) & 0xFFFF_FFFF


def nla_find(packet: bytes, start: int, kind: int) -> int:
    """The kernel's SKF_AD_NLATTR: offset of the first attribute of ``kind`` from ``start``, or 0."""
    if start > len(packet) - 4:
        return 0
    offset = start
    while len(packet) - offset >= 4:
        length, found = struct.unpack_from("=HH", packet, offset)
        if length < 4 or length > len(packet) - offset:
            return 0
        if found & 0x3FFF == kind:
            return offset
        offset += (length + 3) & ~3
    return 0


def run_filter(program: bytes, packet: bytes) -> int:
    """A classic BPF interpreter for the instructions the mark filter uses; returns the verdict."""
    instructions: list[tuple[int, int, int, int]] = [
        struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)
    ]
    a = x = pc = 0
    for _ in range(len(instructions)):
        code, jump_true, jump_false, k = instructions[pc]
        pc += 1
        if code == 0x00:  # ld #k
            a = k
        elif code == 0x01:  # ldx #k
            x = k
        elif code == 0x20:  # ld [k]
            assert k == SKF_AD_NLATTR
            a = nla_find(packet, a, x)
        elif code == 0x40:  # ld [x + k]: big-endian; out of bounds ends the program with 0
            if x + k + 4 > len(packet):
                return 0
            (a,) = struct.unpack_from("!I", packet, x + k)
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x15:  # jeq #k
            pc += jump_true if a == k else jump_false
        elif code == 0x07:  # tax
            x = a
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program did not return")


@given(entries(), st.integers(1, 0xFFFF_FFFF))
def test_mark_filter_passes_exactly_the_marked(entry: ConntrackEntry, mask: int) -> None:
    verdict = run_filter(mark_filter_program(mask), encode_entry(entry))
    assert (verdict != 0) == bool(entry.mark & mask)


def test_mark_filter_on_kernel_bytes() -> None:
    for message in (KERNEL_NEW, KERNEL_DESTROY):
        assert run_filter(mark_filter_program(0x100000), message) == 0xFFFF_FFFF
        assert run_filter(mark_filter_program(0x1), message) == 0


@pytest.mark.parametrize("mask", [0, -1, 1 << 32])
def test_bad_mark_masks(mask: int) -> None:
    with pytest.raises(ValidationError):
        mark_filter_program(mask)


# --- reader configuration (no socket until start) -------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"events": ()},
        {"mark_mask": 0},
        {"receive_buffer_bytes": 1024},
        {"reap_interval_s": 0},
    ],
)
def test_bad_reader_configuration(arguments: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ConntrackEvents(print, **arguments)  # type: ignore[arg-type]


def test_reader_defaults() -> None:
    reader = ConntrackEvents(print)
    assert reader.events == frozenset({ConntrackEvent.DESTROY})
    assert reader.receive_buffer_bytes is None  # not started
    assert reader.stats.lost == 0
