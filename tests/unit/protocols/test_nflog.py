"""NFLOG netlink codec: config requests byte for byte, packet round trips, framing, garbage, and
decoding the copied IP headers into security log records (golden against Windows log lines)."""

from __future__ import annotations

import datetime
import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharewall.errors import ValidationError
from sharewall.protocols.nflog import (
    AF_INET,
    AF_INET6,
    MAX_MESSAGE_BYTES,
    NFULNL_CFG_F_SEQ,
    NFULNL_COPY_META,
    LossCounter,
    NetlinkAck,
    NflogPacket,
    NflogParseError,
    NflogStream,
    build_bind,
    build_copy_mode,
    build_flags,
    build_unbind,
    encode_packet,
    packet_to_record,
    parse_messages,
    parse_packets,
)
from sharewall.seclog.record import LogAction, LogPath
from sharewall.seclog.w3c import render_line

NLMSG = struct.Struct("=IHHII")
ULOG_PACKET = 0x0400
ULOG_CONFIG = 0x0401
REQUEST_ACK = 0x01 | 0x04


def nlmsg(kind: int, body: bytes, *, seq: int = 0, flags: int = 0) -> bytes:
    length = NLMSG.size + len(body)
    return NLMSG.pack(length, kind, flags, seq, 0) + body + b"\0" * (-length % 4)


def attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


# --- config requests ---------------------------------------------------------------------------------


def test_bind_request_bytes() -> None:
    """NFULNL_MSG_CONFIG, REQUEST|ACK, nfgenmsg(AF_UNSPEC, v0, htons(7)), NFULA_CFG_CMD = BIND."""
    expected = NLMSG.pack(28, ULOG_CONFIG, REQUEST_ACK, 1, 0) + bytes(
        [0, 0, 0, 7, 5, 0, 1, 0, 1, 0, 0, 0]
    )
    assert build_bind(7, seq=1) == expected


def test_unbind_request_bytes() -> None:
    assert build_unbind(300, seq=9)[16:] == bytes([0, 0, 1, 44, 5, 0, 1, 0, 2, 0, 0, 0])


def test_copy_mode_request_bytes() -> None:
    """NFULA_CFG_MODE = be32 copy_range, u8 COPY_PACKET, pad; the attribute padded to 12 bytes."""
    expected = NLMSG.pack(32, ULOG_CONFIG, REQUEST_ACK, 2, 0) + bytes(
        [0, 0, 0, 7, 10, 0, 2, 0, 0, 0, 0, 128, 2, 0, 0, 0]
    )
    assert build_copy_mode(7, 128, seq=2) == expected
    assert build_copy_mode(7, 0, seq=2, mode=NFULNL_COPY_META)[-4:-2] == bytes([1, 0])


def test_flags_request_bytes() -> None:
    expected = NLMSG.pack(28, ULOG_CONFIG, REQUEST_ACK, 3, 0) + bytes(
        [0, 0, 0, 7, 6, 0, 6, 0, 0, 1, 0, 0]
    )
    assert build_flags(7, NFULNL_CFG_F_SEQ, seq=3) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_bind(-1, seq=0),
        lambda: build_bind(65536, seq=0),
        lambda: build_copy_mode(1, 65536, seq=0),
        lambda: build_copy_mode(1, 128, seq=0, mode=7),
        lambda: build_flags(1, 0x10000, seq=0),
    ],
)
def test_builders_validate(call: object) -> None:
    with pytest.raises(ValidationError):
        call()  # type: ignore[operator]


# --- packets: round trip, framing ------------------------------------------------------------------

_u32 = st.integers(min_value=0, max_value=2**32 - 1)
_optional_u32 = st.none() | _u32


@st.composite
def nflog_packets(draw: st.DrawFn) -> NflogPacket:
    header = draw(
        st.none() | st.tuples(st.integers(min_value=0, max_value=0xFFFF), st.integers(0, 255))
    )
    return NflogPacket(
        group=draw(st.integers(min_value=0, max_value=0xFFFF)),
        family=draw(st.sampled_from([0, AF_INET, AF_INET6, 7])),
        hw_protocol=None if header is None else header[0],
        hook=None if header is None else header[1],
        mark=draw(_optional_u32),
        timestamp_us=draw(st.none() | st.integers(min_value=0, max_value=2**63)),
        indev=draw(_optional_u32),
        outdev=draw(_optional_u32),
        payload=draw(st.none() | st.binary(max_size=200)),
        prefix=draw(
            st.none()
            | st.text(
                st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=40
            )
        ),
        uid=draw(_optional_u32),
        gid=draw(_optional_u32),
        seq=draw(_optional_u32),
        seq_global=draw(_optional_u32),
    )


@given(nflog_packets(), _u32)
def test_encoded_packet_round_trips(packet: NflogPacket, seq: int) -> None:
    """Whatever our encoder writes, the parser reads back unchanged."""
    data = encode_packet(packet, seq=seq)
    assert len(data) % 4 == 0
    assert parse_messages(data) == [packet]


@given(st.lists(nflog_packets(), max_size=5), st.data())
def test_stream_is_split_invariant(packets: list[NflogPacket], data: st.DataObject) -> None:
    """Feeding the bytes at once or cut at any points yields the same packets, in order."""
    blob = b"".join(encode_packet(p) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=8)))
    stream = NflogStream()
    received: list[object] = []
    start = 0
    for cut in [*cuts, len(blob)]:
        received += stream.feed(blob[start:cut])
        start = cut
    assert received == packets == parse_packets(blob)
    assert stream.pending_bytes == 0


def test_byte_at_a_time() -> None:
    packets = [
        NflogPacket(group=7, family=AF_INET, prefix="ICF-DROP ", payload=b"\x45" * 30, seq=n)
        for n in range(3)
    ]
    blob = b"".join(encode_packet(p) for p in packets)
    stream = NflogStream()
    received = [message for byte in blob for message in stream.feed(bytes([byte]))]
    assert received == packets


@given(st.binary(max_size=300))
def test_garbage_gives_a_list_or_our_error(data: bytes) -> None:
    """Arbitrary bytes never raise anything but NflogParseError."""
    try:
        messages = parse_messages(data)
    except NflogParseError:
        return
    assert all(isinstance(m, NflogPacket | NetlinkAck) for m in messages)


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4))
def test_garbage_through_the_stream_gives_a_list_or_our_error(data: bytes, cuts: list[int]) -> None:
    stream = NflogStream()
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        try:
            stream.feed(data[start:cut])
        except NflogParseError:
            assert stream.pending_bytes == 0  # the stream drops what it cannot frame
        start = cut
    assert stream.pending_bytes <= MAX_MESSAGE_BYTES


@given(nflog_packets(), st.data())
def test_corrupted_messages_give_a_list_or_our_error(
    packet: NflogPacket, data: st.DataObject
) -> None:
    """A valid message with some bytes overwritten still only ever raises NflogParseError."""
    blob = bytearray(encode_packet(packet))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse_messages(bytes(blob))
    except NflogParseError:
        pass


def test_acks_and_errors() -> None:
    """NLMSG_ERROR carries 0 (an ACK) or -errno; it keeps the request's sequence number."""
    original = build_bind(7, seq=5)[:16]
    ok = nlmsg(2, struct.pack("=i", 0) + original, seq=5)
    busy = nlmsg(2, struct.pack("=i", -16) + original, seq=6)
    assert parse_messages(ok + busy) == [NetlinkAck(seq=5, error=0), NetlinkAck(seq=6, error=-16)]
    assert parse_packets(ok) == []


def test_noop_and_done_are_skipped() -> None:
    packet = NflogPacket(group=1, family=AF_INET)
    assert parse_messages(nlmsg(1, b"") + encode_packet(packet) + nlmsg(3, b"\0" * 4)) == [packet]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (nlmsg(0x0402, b"\0" * 4), "unexpected netlink message type"),
        (nlmsg(ULOG_PACKET, b""), "without nfgenmsg"),
        (nlmsg(2, b""), "short NLMSG_ERROR"),
        (nlmsg(2, struct.pack("=i", 5)), "positive code"),
        (NLMSG.pack(8, ULOG_PACKET, 0, 0, 0), "bad netlink message length"),
        (NLMSG.pack(MAX_MESSAGE_BYTES + 4, ULOG_PACKET, 0, 0, 0), "bad netlink message length"),
        (encode_packet(NflogPacket(group=1))[:-1] + b"", "trailing bytes"),
        (nlmsg(ULOG_PACKET, b"\0" * 4 + struct.pack("=HH", 2, 9)), "bad attribute length"),
        (nlmsg(ULOG_PACKET, b"\0" * 4 + struct.pack("=HH", 40, 9)), "bad attribute length"),
        (nlmsg(ULOG_PACKET, b"\0" * 4 + attr(12, b"\0\0")), "NFULA_SEQ"),
        (nlmsg(ULOG_PACKET, b"\0" * 4 + attr(3, b"\0" * 8)), "NFULA_TIMESTAMP"),
        (nlmsg(ULOG_PACKET, b"\0" * 4 + attr(1, b"\0\0")), "NFULA_PACKET_HDR"),
    ],
)
def test_malformed_messages(data: bytes, reason: str) -> None:
    with pytest.raises(NflogParseError, match=reason):
        parse_messages(data)


def test_truncated_attribute_header() -> None:
    """Two stray bytes after the last attribute are not an attribute."""
    body = b"\0" * 4 + attr(12, b"\0\0\0\1") + b"\1\0"
    data = NLMSG.pack(16 + len(body), ULOG_PACKET, 0, 0, 0) + body + b"\0\0"
    with pytest.raises(NflogParseError, match="truncated attribute header"):
        parse_messages(data)


def test_unknown_attributes_are_ignored_and_flag_bits_masked() -> None:
    """Attributes we do not use (hardware address, conntrack) are skipped; NLA_F_* bits are ignored."""
    body = (
        bytes([AF_INET, 0, 0, 7])
        + attr(8, b"\0\6\0\0" + b"\xaa" * 8)  # NFULA_HWADDR
        + attr(18 | 0x8000, attr(1, b"\0" * 4))  # NFULA_CT, nested
        + attr(10 | 0x4000, b"ICF-DROP uplink\0")
        + attr(12, struct.pack("!I", 42))
    )
    (packet,) = parse_packets(nlmsg(ULOG_PACKET, body))
    assert packet == NflogPacket(group=7, family=AF_INET, prefix="ICF-DROP uplink", seq=42)


def test_kernel_style_packet() -> None:
    """A message laid out as nfnetlink_log builds it: header, timestamp, ifindex, payload, prefix."""
    payload = bytes.fromhex("4500001c000100004011") + b"\0" * 18
    body = (
        bytes([AF_INET, 0, 0, 7])
        + attr(1, bytes.fromhex("08000100"))
        + attr(4, struct.pack("!I", 3))
        + attr(3, struct.pack("!QQ", 1_700_000_000, 250_000))
        + attr(9, payload)
        + attr(10, b"ICF-DROP \0")
        + attr(12, struct.pack("!I", 0))
    )
    (packet,) = parse_packets(nlmsg(ULOG_PACKET, body))
    assert packet.hw_protocol == 0x0800
    assert packet.hook == 1
    assert packet.indev == 3
    assert packet.outdev is None
    assert packet.timestamp == 1_700_000_000.25
    assert packet.payload == payload
    assert packet.prefix == "ICF-DROP "
    assert packet.seq == 0


# --- payload → LogRecord ------------------------------------------------------------------------------


def ipv4(
    src: str, dst: str, protocol: int, l4: bytes, *, total: int | None = None, frag: int = 0
) -> bytes:
    length = 20 + len(l4) if total is None else total
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        length,
        1,
        frag,
        64,
        protocol,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + l4


def ipv6(
    src: str, dst: str, next_header: int, rest: bytes, *, payload_length: int | None = None
) -> bytes:
    length = len(rest) if payload_length is None else payload_length
    return (
        struct.pack("!IHBB", 6 << 28, length, next_header, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + rest
    )


def tcp(
    sport: int, dport: int, seq: int, ack: int, flags: int, window: int, *, options: int = 0
) -> bytes:
    offset = (20 + options) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, window, 0, 0) + (
        b"\1" * options
    )


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp(kind: int, code: int, data: bytes) -> bytes:
    return struct.pack("!BBHHH", kind, code, 0, 1, 1) + data


def timestamp_us(text: str) -> int:
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.UTC)
    return int(moment.timestamp()) * 1_000_000


def rendered(payload: bytes, when: str, *, copy_range: int = 128) -> str:
    """Run a payload through encode → parse → packet_to_record → render, as the daemon will."""
    packet = NflogPacket(
        group=7, family=AF_INET, payload=payload[:copy_range], timestamp_us=timestamp_us(when)
    )
    (parsed,) = parse_packets(encode_packet(packet))
    record = packet_to_record(parsed, action=LogAction.DROP, received_at=0, path=LogPath.RECEIVE)
    return render_line(record, datetime.UTC).rstrip("\n")


def test_tcp_syn_matches_windows_sample() -> None:
    """The networkuptime.com SYN sample: a 48-byte packet (20 IP + 20 TCP + 8 options)."""
    payload = ipv4(
        "192.168.0.7", "192.168.0.6", 6, tcp(1172, 3389, 1640769051, 0, 0x02, 65535, options=8)
    )
    assert rendered(payload, "2005-11-20 11:43:41") == (
        "2005-11-20 11:43:41 DROP TCP 192.168.0.7 192.168.0.6 1172 3389 48 S 1640769051 0 65535"
        " - - - RECEIVE"
    )


def test_udp_matches_windows_sample() -> None:
    payload = ipv4("5.5.3.197", "224.0.0.251", 17, udp(5353, 5353, b"m" * 31))
    assert rendered(payload, "2019-11-06 12:35:19") == (
        "2019-11-06 12:35:19 DROP UDP 5.5.3.197 224.0.0.251 5353 5353 59 - - - - - - - RECEIVE"
    )


def test_udp_over_ipv6_matches_windows_sample() -> None:
    """IPv6 size is the whole packet: 40-byte header + payload length (89 = 40 + 8 + 41)."""
    payload = ipv6("fe80::3680:dff:fe01:9e88", "ff02::fb", 17, udp(5353, 5353, b"m" * 41))
    assert rendered(payload, "2019-11-06 12:35:19") == (
        "2019-11-06 12:35:19 DROP UDP fe80::3680:dff:fe01:9e88 ff02::fb 5353 5353 89"
        " - - - - - - - RECEIVE"
    )


def test_ping_matches_windows_sample_even_when_cut_by_copy_range() -> None:
    """Size comes from the IP header, so a payload cut at the copy range still logs 60 bytes."""
    payload = ipv4("192.168.11.3", "192.168.11.2", 1, icmp(8, 0, b"a" * 32))
    assert rendered(payload, "2016-03-06 02:55:08", copy_range=30) == (
        "2016-03-06 02:55:08 DROP ICMP 192.168.11.3 192.168.11.2 - - 60 - - - - 8 0 - RECEIVE"
    )


def test_tcp_fields_fade_out_as_the_copy_shrinks() -> None:
    """Each TCP field needs its bytes; what the copy does not reach is ``-``."""
    payload = ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1000, 80, 7, 9, 0x18, 512))
    expected = {
        20: "6 10.0.0.1 10.0.0.2 - - 40 - - - - - - - RECEIVE",
        24: "6 10.0.0.1 10.0.0.2 1000 80 40 - - - - - - - RECEIVE",
        28: "6 10.0.0.1 10.0.0.2 1000 80 40 - 7 - - - - - RECEIVE",
        32: "6 10.0.0.1 10.0.0.2 1000 80 40 - 7 9 - - - - RECEIVE",
        34: "6 10.0.0.1 10.0.0.2 1000 80 40 AP 7 9 - - - - RECEIVE",
        36: "6 10.0.0.1 10.0.0.2 1000 80 40 AP 7 9 512 - - - RECEIVE",
    }
    for copy_range, tail in expected.items():
        line = rendered(payload, "2024-01-01 00:00:00", copy_range=copy_range)
        assert line == "2024-01-01 00:00:00 DROP " + tail.replace("6 ", "TCP ", 1)


def test_truncated_ip_headers() -> None:
    payload = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b""))
    assert rendered(payload, "2024-01-01 00:00:00", copy_range=3).split(" ")[3:9] == ["-"] * 6
    assert rendered(payload, "2024-01-01 00:00:00", copy_range=12).split(" ")[3:9] == [
        "UDP",
        "-",
        "-",
        "-",
        "-",
        "28",
    ]
    assert rendered(payload, "2024-01-01 00:00:00", copy_range=16).split(" ")[4:6] == [
        "10.0.0.1",
        "-",
    ]
    v6 = ipv6("2001:db8::1", "2001:db8::2", 58, icmp(128, 0, b""))
    assert rendered(v6, "2024-01-01 00:00:00", copy_range=5).split(" ")[3:9] == ["-"] * 6
    assert rendered(v6, "2024-01-01 00:00:00", copy_range=30).split(" ")[3:9] == [
        "ICMP",
        "2001:db8::1",
        "-",
        "-",
        "-",
        "48",
    ]


def test_non_first_ipv4_fragment_has_no_ports() -> None:
    payload = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"x" * 8), frag=185)
    fields = rendered(payload, "2024-01-01 00:00:00").split(" ")
    assert fields[3:9] == ["UDP", "10.0.0.1", "10.0.0.2", "-", "-", "36"]


def test_ipv6_extension_headers_are_walked() -> None:
    """Hop-by-hop options before an MLDv2 report: the log shows ICMP type 143 (as Windows does)."""
    hop_by_hop = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    payload = ipv6("fe80::1", "ff02::16", 0, hop_by_hop + icmp(143, 0, b""))
    fields = rendered(payload, "2024-01-01 00:00:00").split(" ")
    assert fields[3:15] == ["ICMP", "fe80::1", "ff02::16", "-", "-", "56"] + ["-"] * 4 + [
        "143",
        "0",
    ]


def test_ipv6_fragments_and_ah() -> None:
    first = bytes([6, 0, 0, 1, 0, 0, 0, 9]) + tcp(5, 6, 1, 2, 0x02, 3)
    fields = rendered(ipv6("2001:db8::1", "2001:db8::2", 44, first), "2024-01-01 00:00:00").split(
        " "
    )
    assert fields[3] == "TCP"
    assert fields[6:8] == ["5", "6"]
    later = bytes([6, 0, 0, 0x19, 0, 0, 0, 9]) + b"\0" * 20
    fields = rendered(ipv6("2001:db8::1", "2001:db8::2", 44, later), "2024-01-01 00:00:00").split(
        " "
    )
    assert fields[3] == "TCP"
    assert fields[6:8] == ["-", "-"]
    ah = bytes([17, 1, 0, 0]) + b"\0" * 8  # (1 + 2) * 4 = 12 bytes
    fields = rendered(
        ipv6("2001:db8::1", "2001:db8::2", 51, ah + udp(7, 8, b"")), "2024-01-01 00:00:00"
    ).split(" ")
    assert fields[3] == "UDP"
    assert fields[6:8] == ["7", "8"]
    endless = bytes([60, 0]) + b"\0" * 6
    fields = rendered(
        ipv6("2001:db8::1", "2001:db8::2", 60, endless * 10), "2024-01-01 00:00:00", copy_range=200
    ).split(" ")
    assert fields[3] == "60"  # gave up after eight extension headers
    for cut in (41, 45):  # a cut inside an extension header
        fields = rendered(
            ipv6("2001:db8::1", "2001:db8::2", 44, first), "2024-01-01 00:00:00", copy_range=cut
        ).split(" ")
        assert fields[6:8] == ["-", "-"]
    fields = rendered(
        ipv6("2001:db8::1", "2001:db8::2", 51, ah), "2024-01-01 00:00:00", copy_range=41
    ).split(" ")
    assert fields[3] == "51"
    fields = rendered(
        ipv6("2001:db8::1", "2001:db8::2", 0, endless), "2024-01-01 00:00:00", copy_range=41
    ).split(" ")
    assert fields[3] == "0"


def test_not_ip_or_no_payload() -> None:
    """A payload that is not IPv4/IPv6 (or none at all) still gives a record, with fields ``-``."""
    for payload in (None, b"", b"\x00" * 40):
        packet = NflogPacket(group=7, payload=payload)
        record = packet_to_record(packet, action=LogAction.DROP, received_at=12.5)
        assert record.timestamp == 12.5  # no kernel timestamp: the receive time
        assert (record.protocol, record.src_ip, record.size) == (None, None, None)


def test_gso_total_length_zero_is_unknown_size() -> None:
    payload = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b""), total=0)
    assert rendered(payload, "2024-01-01 00:00:00").split(" ")[8] == "-"


def test_record_carries_connection_and_path() -> None:
    packet = NflogPacket(group=7, payload=ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"")))
    record = packet_to_record(
        packet, action=LogAction.DROP, received_at=1.0, path=LogPath.FORWARD, connection="uplink"
    )
    assert record.connection == "uplink"
    assert record.path is LogPath.FORWARD


@given(st.binary(max_size=120), st.sampled_from([None, 0, 1_000_000]))
def test_any_payload_gives_a_renderable_record(payload: bytes, stamp: int | None) -> None:
    """packet_to_record never raises, and its record always renders."""
    packet = NflogPacket(group=1, payload=payload, timestamp_us=stamp)
    record = packet_to_record(packet, action=LogAction.DROP, received_at=5.0)
    assert len(render_line(record, datetime.UTC).split(" ")) == 17


@given(st.binary(max_size=80), st.sampled_from([0x45, 0x46, 0x4F, 0x60]))
def test_any_ip_looking_payload_gives_a_renderable_record(rest: bytes, first: int) -> None:
    packet = NflogPacket(group=1, payload=bytes([first]) + rest)
    record = packet_to_record(packet, action=LogAction.DROP, received_at=5.0)
    assert len(render_line(record, datetime.UTC).split(" ")) == 17


# --- loss accounting ---------------------------------------------------------------------------------


def seq_packet(group: int, seq: int | None) -> NflogPacket:
    return NflogPacket(group=group, seq=seq)


def test_sequence_gaps_count_lost_packets_per_group() -> None:
    counter = LossCounter()
    assert [counter.observe(seq_packet(7, s)) for s in (0, 1, 2, 5, 6)] == [0, 0, 0, 2, 0]
    assert counter.observe(seq_packet(8, 100)) == 0  # first of another group: no history
    assert counter.observe(seq_packet(8, 103)) == 2
    assert counter.observe(seq_packet(7, 7)) == 0


def test_sequence_wraps_and_restarts() -> None:
    counter = LossCounter()
    assert counter.observe(seq_packet(1, 2**32 - 2)) == 0
    assert counter.observe(seq_packet(1, 2**32 - 1)) == 0
    assert counter.observe(seq_packet(1, 1)) == 1  # 0 was lost across the wrap
    assert counter.observe(seq_packet(1, 0)) == 0  # going back: a restart, not a loss


def test_overrun_waits_for_a_gap() -> None:
    """ENOBUFS arrives before the queued packets that preceded the loss: the gap, once seen, counts."""
    counter = LossCounter()
    counter.observe(seq_packet(1, 0))
    counter.overrun()
    assert counter.observe(seq_packet(1, 1)) == 0  # queued before the loss
    assert counter.observe(seq_packet(1, 5)) == 3  # the gap says exactly how many
    assert counter.settle() == 0  # explained: nothing more to report


def test_unexplained_overrun_counts_one() -> None:
    """Without sequence numbers, or at close with no gap seen, an overrun counts as one lost event."""
    counter = LossCounter()
    counter.overrun()
    assert counter.observe(seq_packet(1, None)) == 1
    assert counter.observe(seq_packet(1, None)) == 0
    counter.observe(seq_packet(1, 0))
    counter.overrun()
    assert counter.observe(seq_packet(1, 1)) == 0
    assert counter.settle() == 1
    assert counter.settle() == 0
