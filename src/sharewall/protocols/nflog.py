"""NFLOG over netlink, sans I/O: decode what ``nft ... log group N`` sends, and build the config requests.

The kernel sends each logged packet as one netlink message on a ``NETLINK_NETFILTER`` socket
(stack.md Appendix B; the layout is ``include/uapi/linux/netfilter/nfnetlink_log.h``)::

    struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }      host byte order
    struct nfgenmsg  { u8 family; u8 version; be16 res_id; }                  res_id = the group
    then attributes  { u16 len; u16 type; value; } each padded to 4 bytes     values big-endian

    type (4 << 8) | 0  NFULNL_MSG_PACKET  (kernel → us)
    type (4 << 8) | 1  NFULNL_MSG_CONFIG  (us → kernel: bind a group, copy mode, flags)

:func:`parse_messages` turns the bytes of one ``recv`` into :class:`NflogPacket` and
:class:`NetlinkAck` values; :class:`NflogStream` does the same for bytes split anywhere, which the
tests use to prove the framing does not depend on how the bytes arrive. :func:`packet_to_record`
reads the copied IPv4/IPv6 and TCP/UDP/ICMP headers into a security log record; a payload cut short
by the copy range (or malformed) only leaves fields ``None``, it never raises.

Contract: parsers return a value or raise :class:`NflogParseError`; any other exception is a bug.
The framing comes from the kernel, so an error means a bug or an ABI surprise, not a hostile peer:
the reader drops that datagram, counts it and goes on.

Pure: no I/O, no clock; time is an argument.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

from sharewall.errors import ValidationError
from sharewall.seclog.record import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LogAction,
    LogPath,
    LogRecord,
    tcp_flags_text,
)

__all__ = [
    "AF_INET",
    "AF_INET6",
    "AF_UNSPEC",
    "MAX_MESSAGE_BYTES",
    "NETLINK_NETFILTER",
    "NFULNL_CFG_F_CONNTRACK",
    "NFULNL_CFG_F_SEQ",
    "NFULNL_CFG_F_SEQ_GLOBAL",
    "NFULNL_COPY_META",
    "NFULNL_COPY_NONE",
    "NFULNL_COPY_PACKET",
    "LossCounter",
    "NetlinkAck",
    "NflogMessage",
    "NflogPacket",
    "NflogParseError",
    "NflogStream",
    "build_bind",
    "build_copy_mode",
    "build_flags",
    "build_unbind",
    "encode_packet",
    "packet_to_record",
    "parse_messages",
    "parse_packets",
]

NETLINK_NETFILTER = 12  # socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)

AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10

# Largest single message we accept. The kernel caps one NFLOG batch buffer at 128 KiB
# (nfnetlink_log.c, NFULNL_NLBUFSIZ upper bound) and the copy range at 0xffff bytes, so a longer
# declared length can only be garbage; it also bounds what NflogStream ever holds.
MAX_MESSAGE_BYTES = 256 * 1024

# --- netlink (include/uapi/linux/netlink.h) ----------------------------------------------------
_NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host byte order)
_NLA_HEADER = struct.Struct("=HH")  # len, type (host byte order)
_NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (big-endian)
_NLMSG_ERROR_CODE = struct.Struct("=i")
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED (0x8000) and NLA_F_NET_BYTEORDER (0x4000)

_NLMSG_NOOP = 1
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLMSG_OVERRUN = 4

_NLM_F_REQUEST = 0x01
_NLM_F_ACK = 0x04

# --- nfnetlink_log (include/uapi/linux/netfilter/nfnetlink_log.h) -------------------------------
_NFNL_SUBSYS_ULOG = 4
_NFULNL_MSG_PACKET = (_NFNL_SUBSYS_ULOG << 8) | 0
_NFULNL_MSG_CONFIG = (_NFNL_SUBSYS_ULOG << 8) | 1
_NFNETLINK_V0 = 0

_NFULA_PACKET_HDR = 1  # struct { be16 hw_protocol; u8 hook; u8 pad; }
_NFULA_MARK = 2
_NFULA_TIMESTAMP = 3  # struct { be64 sec; be64 usec; }
_NFULA_IFINDEX_INDEV = 4
_NFULA_IFINDEX_OUTDEV = 5
_NFULA_PAYLOAD = 9
_NFULA_PREFIX = 10  # NUL-terminated
_NFULA_UID = 11
_NFULA_SEQ = 12  # per-group sequence number (needs NFULNL_CFG_F_SEQ)
_NFULA_SEQ_GLOBAL = 13
_NFULA_GID = 14

_NFULA_CFG_CMD = 1  # struct { u8 command; }
_NFULA_CFG_MODE = 2  # struct { be32 copy_range; u8 copy_mode; u8 pad; }
_NFULA_CFG_FLAGS = 6  # be16

_NFULNL_CFG_CMD_BIND = 1
_NFULNL_CFG_CMD_UNBIND = 2

NFULNL_COPY_NONE = 0x00
NFULNL_COPY_META = 0x01
NFULNL_COPY_PACKET = 0x02

NFULNL_CFG_F_SEQ = 0x0001
NFULNL_CFG_F_SEQ_GLOBAL = 0x0002
NFULNL_CFG_F_CONNTRACK = 0x0004

_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_PACKET_HDR = struct.Struct("!HBx")
_TIMESTAMP = struct.Struct("!QQ")
_CFG_MODE = struct.Struct("!IBx")

_U32_MAX = 0xFFFF_FFFF
_US_PER_S = 1_000_000


class NflogParseError(ValueError):
    """The bytes are not a well-formed NFLOG netlink message (the reader drops the datagram)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NflogPacket:
    """One logged packet: the metadata the kernel attached and the copied start of the packet.

    ``None`` means the kernel did not send that attribute (``seq`` needs ``NFULNL_CFG_F_SEQ``; the
    timestamp is only present when the packet carries one; ``payload`` needs copy-packet mode).
    """

    group: int
    family: int = AF_UNSPEC  # AF_INET / AF_INET6 for an ``inet`` table
    hw_protocol: int | None = None  # ethertype, e.g. 0x0800; set together with ``hook``
    hook: int | None = None  # netfilter hook number (1 = input, 2 = forward, ...)
    mark: int | None = None
    timestamp_us: int | None = None  # microseconds since the epoch
    indev: int | None = None  # ifindex
    outdev: int | None = None
    payload: bytes | None = None  # from the network header on, cut at the copy range
    prefix: str | None = None  # the ``log prefix`` of the rule
    uid: int | None = None
    gid: int | None = None
    seq: int | None = None
    seq_global: int | None = None

    @property
    def timestamp(self) -> float | None:
        """Epoch seconds, or ``None`` when the kernel sent no timestamp."""
        return None if self.timestamp_us is None else self.timestamp_us / _US_PER_S


@dataclasses.dataclass(frozen=True, slots=True)
class NetlinkAck:
    """The kernel's answer to a request sent with ``NLM_F_ACK``: ``error`` is 0 or ``-errno``."""

    seq: int
    error: int


NflogMessage = NflogPacket | NetlinkAck


# --- parsing -------------------------------------------------------------------------------------


def _align4(length: int) -> int:
    return (length + 3) & ~3


def _u32(value: bytes, name: str) -> int:
    if len(value) != 4:
        raise NflogParseError(f"{name}: expected 4 bytes, got {len(value)}")
    result: int = _U32.unpack(value)[0]
    return result


def _parse_packet(message: bytes, group: int, family: int) -> NflogPacket:
    fields: dict[str, object] = {}
    offset = _NLMSG_HEADER.size + _NFGENMSG.size
    end = len(message)
    while offset < end:
        if end - offset < _NLA_HEADER.size:
            raise NflogParseError("truncated attribute header")
        length, raw_type = _NLA_HEADER.unpack_from(message, offset)
        if length < _NLA_HEADER.size or offset + length > end:
            raise NflogParseError(f"bad attribute length {length}")
        value = message[offset + _NLA_HEADER.size : offset + length]
        kind = raw_type & _NLA_TYPE_MASK
        if kind == _NFULA_PACKET_HDR:
            if len(value) < _PACKET_HDR.size:
                raise NflogParseError("short NFULA_PACKET_HDR")
            fields["hw_protocol"], fields["hook"] = _PACKET_HDR.unpack_from(value)
        elif kind == _NFULA_MARK:
            fields["mark"] = _u32(value, "NFULA_MARK")
        elif kind == _NFULA_TIMESTAMP:
            if len(value) != _TIMESTAMP.size:
                raise NflogParseError("bad NFULA_TIMESTAMP size")
            seconds, micros = _TIMESTAMP.unpack(value)
            fields["timestamp_us"] = seconds * _US_PER_S + micros
        elif kind == _NFULA_IFINDEX_INDEV:
            fields["indev"] = _u32(value, "NFULA_IFINDEX_INDEV")
        elif kind == _NFULA_IFINDEX_OUTDEV:
            fields["outdev"] = _u32(value, "NFULA_IFINDEX_OUTDEV")
        elif kind == _NFULA_PAYLOAD:
            fields["payload"] = bytes(value)
        elif kind == _NFULA_PREFIX:
            fields["prefix"] = value.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == _NFULA_UID:
            fields["uid"] = _u32(value, "NFULA_UID")
        elif kind == _NFULA_GID:
            fields["gid"] = _u32(value, "NFULA_GID")
        elif kind == _NFULA_SEQ:
            fields["seq"] = _u32(value, "NFULA_SEQ")
        elif kind == _NFULA_SEQ_GLOBAL:
            fields["seq_global"] = _u32(value, "NFULA_SEQ_GLOBAL")
        # Other attributes (hardware address, conntrack, VLAN, ...) are not needed for the log.
        offset += _align4(length)
    return NflogPacket(group=group, family=family, **fields)  # type: ignore[arg-type]


def _parse_message(message: bytes) -> NflogMessage | None:
    """Decode one complete netlink message (``message`` is exactly ``nlmsg_len`` bytes)."""
    _, kind, _, seq, _ = _NLMSG_HEADER.unpack_from(message)
    if kind == _NFULNL_MSG_PACKET:
        if len(message) < _NLMSG_HEADER.size + _NFGENMSG.size:
            raise NflogParseError("NFLOG message without nfgenmsg")
        family, _, group = _NFGENMSG.unpack_from(message, _NLMSG_HEADER.size)
        return _parse_packet(message, group, family)
    if kind == _NLMSG_ERROR:
        if len(message) < _NLMSG_HEADER.size + _NLMSG_ERROR_CODE.size:
            raise NflogParseError("short NLMSG_ERROR")
        (error,) = _NLMSG_ERROR_CODE.unpack_from(message, _NLMSG_HEADER.size)
        if error > 0:
            raise NflogParseError(f"NLMSG_ERROR with positive code {error}")
        return NetlinkAck(seq=seq, error=error)
    if kind in (_NLMSG_NOOP, _NLMSG_DONE, _NLMSG_OVERRUN):
        return None
    raise NflogParseError(f"unexpected netlink message type {kind:#x}")


class NflogStream:
    """Frames netlink messages out of bytes that may arrive split at any point.

    A raw netlink socket delivers whole datagrams (use :func:`parse_messages` there); this class
    exists so that the framing is tested independently of how the bytes are cut (style.md §6.7).
    It holds at most one incomplete message, never more than :data:`MAX_MESSAGE_BYTES`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[NflogMessage]:
        """Add ``data``; return every message it completes, in order.

        Raises:
            NflogParseError: the bytes are not netlink/NFLOG. The buffer is discarded, since a
                byte stream cannot be resynchronised.
        """
        self._buffer += data
        messages: list[NflogMessage] = []
        try:
            while len(self._buffer) >= _NLMSG_HEADER.size:
                length = _NLMSG_HEADER.unpack_from(self._buffer)[0]
                if length < _NLMSG_HEADER.size or length > MAX_MESSAGE_BYTES:
                    raise NflogParseError(f"bad netlink message length {length}")
                span = _align4(length)
                if len(self._buffer) < span:
                    break
                message = _parse_message(bytes(self._buffer[:length]))
                del self._buffer[:span]
                if message is not None:
                    messages.append(message)
        except NflogParseError:
            self._buffer.clear()
            raise
        return messages


def parse_messages(data: bytes) -> list[NflogMessage]:
    """Decode the netlink messages of one datagram (the bytes of one ``recv``).

    Raises:
        NflogParseError: malformed framing or attributes, or a message cut short.
    """
    stream = NflogStream()
    messages = stream.feed(data)
    if stream.pending_bytes:
        raise NflogParseError(f"{stream.pending_bytes} trailing bytes do not form a message")
    return messages


def parse_packets(data: bytes) -> list[NflogPacket]:
    """Like :func:`parse_messages`, keeping only the logged packets (acks are dropped).

    Raises:
        NflogParseError: as :func:`parse_messages`.
    """
    return [message for message in parse_messages(data) if isinstance(message, NflogPacket)]


# --- encoding --------------------------------------------------------------------------------------


def _attribute(kind: int, value: bytes) -> bytes:
    length = _NLA_HEADER.size + len(value)
    return _NLA_HEADER.pack(length, kind) + value + b"\0" * (_align4(length) - length)


def _message(kind: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
    payload = _NFGENMSG.pack(family, _NFNETLINK_V0, res_id) + body
    length = _NLMSG_HEADER.size + len(payload)
    header = _NLMSG_HEADER.pack(length, kind, flags, seq & _U32_MAX, 0)
    return header + payload + b"\0" * (_align4(length) - length)


def encode_packet(packet: NflogPacket, *, seq: int = 0) -> bytes:
    """The netlink message the kernel would send for ``packet`` (for tests and fixtures).

    ``hw_protocol`` and ``hook`` travel in one attribute: it is written when either is set
    (the other then as 0). ``prefix`` must not contain NUL.
    """
    body = bytearray()
    if packet.hw_protocol is not None or packet.hook is not None:
        body += _attribute(
            _NFULA_PACKET_HDR, _PACKET_HDR.pack(packet.hw_protocol or 0, packet.hook or 0)
        )
    if packet.mark is not None:
        body += _attribute(_NFULA_MARK, _U32.pack(packet.mark))
    if packet.timestamp_us is not None:
        seconds, micros = divmod(packet.timestamp_us, _US_PER_S)
        body += _attribute(_NFULA_TIMESTAMP, _TIMESTAMP.pack(seconds, micros))
    if packet.indev is not None:
        body += _attribute(_NFULA_IFINDEX_INDEV, _U32.pack(packet.indev))
    if packet.outdev is not None:
        body += _attribute(_NFULA_IFINDEX_OUTDEV, _U32.pack(packet.outdev))
    if packet.payload is not None:
        body += _attribute(_NFULA_PAYLOAD, packet.payload)
    if packet.prefix is not None:
        body += _attribute(_NFULA_PREFIX, packet.prefix.encode() + b"\0")
    if packet.uid is not None:
        body += _attribute(_NFULA_UID, _U32.pack(packet.uid))
    if packet.gid is not None:
        body += _attribute(_NFULA_GID, _U32.pack(packet.gid))
    if packet.seq is not None:
        body += _attribute(_NFULA_SEQ, _U32.pack(packet.seq))
    if packet.seq_global is not None:
        body += _attribute(_NFULA_SEQ_GLOBAL, _U32.pack(packet.seq_global))
    return _message(_NFULNL_MSG_PACKET, 0, seq, packet.family, packet.group, bytes(body))


def _check_group(group: int) -> None:
    if not 0 <= group <= 0xFFFF:
        raise ValidationError(f"NFLOG group must be 0..65535, got {group}")


def _config(group: int, kind: int, value: bytes, seq: int) -> bytes:
    _check_group(group)
    return _message(
        _NFULNL_MSG_CONFIG,
        _NLM_F_REQUEST | _NLM_F_ACK,
        seq,
        AF_UNSPEC,
        group,
        _attribute(kind, value),
    )


def build_bind(group: int, *, seq: int) -> bytes:
    """Request: deliver group ``group``'s packets to this socket (``NFULNL_CFG_CMD_BIND``).

    Raises:
        ValidationError: ``group`` is not 0..65535.
    """
    return _config(group, _NFULA_CFG_CMD, bytes([_NFULNL_CFG_CMD_BIND]), seq)


def build_unbind(group: int, *, seq: int) -> bytes:
    """Request: stop delivering group ``group`` (closing the socket does the same).

    Raises:
        ValidationError: ``group`` is not 0..65535.
    """
    return _config(group, _NFULA_CFG_CMD, bytes([_NFULNL_CFG_CMD_UNBIND]), seq)


def build_copy_mode(
    group: int, copy_range: int, *, seq: int, mode: int = NFULNL_COPY_PACKET
) -> bytes:
    """Request: copy the first ``copy_range`` bytes of each packet (``NFULA_CFG_MODE``).

    Raises:
        ValidationError: ``group`` or ``copy_range`` (0..65535) out of range, or an unknown mode.
    """
    if not 0 <= copy_range <= 0xFFFF:
        raise ValidationError(f"NFLOG copy range must be 0..65535, got {copy_range}")
    if mode not in (NFULNL_COPY_NONE, NFULNL_COPY_META, NFULNL_COPY_PACKET):
        raise ValidationError(f"unknown NFLOG copy mode {mode}")
    return _config(group, _NFULA_CFG_MODE, _CFG_MODE.pack(copy_range, mode), seq)


def build_flags(group: int, flags: int, *, seq: int) -> bytes:
    """Request: set ``NFULNL_CFG_F_*`` flags, e.g. :data:`NFULNL_CFG_F_SEQ` for loss detection.

    Raises:
        ValidationError: ``group`` out of range or ``flags`` not 16 bits.
    """
    if not 0 <= flags <= 0xFFFF:
        raise ValidationError(f"NFLOG flags must fit 16 bits, got {flags:#x}")
    return _config(group, _NFULA_CFG_FLAGS, _U16.pack(flags), seq)


# --- from a logged packet to a security log record --------------------------------------------------

_IPV6_EXTENSION_HOPOPT = 0
_IPV6_EXTENSION_ROUTING = 43
_IPV6_EXTENSION_FRAGMENT = 44
_IPV6_EXTENSION_AH = 51
_IPV6_EXTENSION_DSTOPTS = 60
_MAX_IPV6_EXTENSIONS = 8  # bounds the walk; real packets carry one or two


@dataclasses.dataclass(slots=True)
class _Headers:
    protocol: int | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    size: int | None = None
    transport: bytes = (
        b""  # the layer-4 header bytes we have (empty: none, or not a first fragment)
    )


def _read_ipv4(packet: bytes) -> _Headers:
    headers = _Headers()
    if len(packet) >= 4:
        total_length = _U16.unpack_from(packet, 2)[0]
        headers.size = total_length or None  # 0 on some offloaded (GSO) packets: unknown
    if len(packet) >= 10:
        headers.protocol = packet[9]
    if len(packet) >= 16:
        headers.src_ip = str(ipaddress.IPv4Address(packet[12:16]))
    if len(packet) >= 20:
        headers.dst_ip = str(ipaddress.IPv4Address(packet[16:20]))
        header_length = (packet[0] & 0x0F) * 4
        fragment_offset = _U16.unpack_from(packet, 6)[0] & 0x1FFF
        if header_length >= 20 and fragment_offset == 0:
            headers.transport = packet[header_length:]
    return headers


def _read_ipv6(packet: bytes) -> _Headers:
    headers = _Headers()
    if len(packet) >= 6:
        headers.size = 40 + _U16.unpack_from(packet, 4)[0]
    if len(packet) < 7:
        return headers
    next_header = packet[6]
    headers.protocol = next_header
    if len(packet) >= 24:
        headers.src_ip = str(ipaddress.IPv6Address(packet[8:24]))
    if len(packet) < 40:
        return headers
    headers.dst_ip = str(ipaddress.IPv6Address(packet[24:40]))
    offset = 40
    for _ in range(_MAX_IPV6_EXTENSIONS):
        if next_header in (
            _IPV6_EXTENSION_HOPOPT,
            _IPV6_EXTENSION_ROUTING,
            _IPV6_EXTENSION_DSTOPTS,
        ):
            if len(packet) < offset + 2:
                return headers
            following, extension_length = packet[offset], (packet[offset + 1] + 1) * 8
        elif next_header == _IPV6_EXTENSION_FRAGMENT:
            if len(packet) < offset + 8:
                return headers
            if _U16.unpack_from(packet, offset + 2)[0] >> 3:
                headers.protocol = packet[offset]
                return headers  # not the first fragment: no transport header here
            following, extension_length = packet[offset], 8
        elif next_header == _IPV6_EXTENSION_AH:
            if len(packet) < offset + 2:
                return headers
            following, extension_length = packet[offset], (packet[offset + 1] + 2) * 4
        else:
            headers.transport = packet[offset:]
            return headers
        next_header = following
        headers.protocol = next_header
        offset += extension_length
    return headers  # too many extension headers: protocol known, transport not decoded


def packet_to_record(
    packet: NflogPacket,
    *,
    action: LogAction,
    received_at: float,
    path: LogPath | None = None,
    connection: str = "",
) -> LogRecord:
    """The security log record for a logged packet, read from its copied headers.

    ``size`` is the IP packet's own length (IPv4 total length; IPv6 40 + payload length), so it is
    right even when the copy range cut the payload. TCP gives ports, flags, seq, ack and window;
    UDP gives ports; ICMP and ICMPv6 give type and code. Whatever the copied bytes do not reach
    (or a non-IP payload) stays ``None``. Never raises on any payload.

    Args:
        packet: the decoded NFLOG message.
        action: usually :attr:`LogAction.DROP`.
        received_at: epoch seconds, used when the kernel sent no timestamp.
        path: the packet's direction, if the caller knows it (from the rule's prefix or hook).
        connection: the sharewall connection the rule belongs to.
    """
    payload = packet.payload or b""
    version = payload[0] >> 4 if payload else 0
    if version == 4:
        headers = _read_ipv4(payload)
    elif version == 6:
        headers = _read_ipv6(payload)
    else:
        headers = _Headers()
    transport = headers.transport
    src_port = dst_port = tcpsyn = tcpack = tcpwin = icmptype = icmpcode = None
    tcpflags = None
    if headers.protocol in (IPPROTO_TCP, IPPROTO_UDP) and len(transport) >= 4:
        src_port, dst_port = struct.unpack_from("!HH", transport)
    if headers.protocol == IPPROTO_TCP:
        if len(transport) >= 8:
            tcpsyn = _U32.unpack_from(transport, 4)[0]
        if len(transport) >= 12:
            tcpack = _U32.unpack_from(transport, 8)[0]
        if len(transport) >= 14:
            tcpflags = tcp_flags_text(transport[13])
        if len(transport) >= 16:
            tcpwin = _U16.unpack_from(transport, 14)[0]
    elif headers.protocol in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if len(transport) >= 1:
            icmptype = transport[0]
        if len(transport) >= 2:
            icmpcode = transport[1]
    timestamp = packet.timestamp
    return LogRecord(
        timestamp=received_at if timestamp is None else timestamp,
        action=action,
        protocol=headers.protocol,
        src_ip=headers.src_ip,
        dst_ip=headers.dst_ip,
        src_port=src_port,
        dst_port=dst_port,
        size=headers.size,
        tcpflags=tcpflags,
        tcpsyn=tcpsyn,
        tcpack=tcpack,
        tcpwin=tcpwin,
        icmptype=icmptype,
        icmpcode=icmpcode,
        path=path,
        connection=connection,
    )


# --- loss accounting ----------------------------------------------------------------------------------


class LossCounter:
    """Counts NFLOG messages the kernel could not deliver, so losses are logged, never silent.

    With :data:`NFULNL_CFG_F_SEQ` each group numbers its messages, and a gap in the numbers is the
    exact count of lost packets. The gap shows on the *next* packet of the group: losses at the end
    of a burst are counted when the group's next packet arrives.

    ``ENOBUFS`` on the socket (its receive buffer overflowed) says that at least one message was
    lost. The kernel reports it on the first ``recv`` after the overflow, usually before the queued
    messages that preceded the loss, so it is not charged to the next packet: it waits for a gap.
    Only packets without sequence numbers (or :meth:`settle`, when the reader closes) turn an
    overrun that no gap explained into one lost event, the lower bound.
    """

    def __init__(self) -> None:
        self._expected: dict[int, int] = {}
        self._overrun_unexplained = False

    def overrun(self) -> None:
        """Note an ``ENOBUFS`` from the socket."""
        self._overrun_unexplained = True

    def observe(self, packet: NflogPacket) -> int:
        """Note a received packet; return how many packets are now known lost before it."""
        if packet.seq is None:
            lost = 1 if self._overrun_unexplained else 0
            self._overrun_unexplained = False
            return lost
        lost = 0
        expected = self._expected.get(packet.group)
        if expected is not None:
            gap = (packet.seq - expected) & _U32_MAX
            # A "gap" of more than half the space is a restart (rebind) or reordering, not loss.
            if gap < 1 << 31:
                lost = gap
        self._expected[packet.group] = (packet.seq + 1) & _U32_MAX
        if lost:
            self._overrun_unexplained = False
        return lost

    def settle(self) -> int:
        """Losses known but not yet counted (an overrun no gap explained): 1 or 0. Resets."""
        lost = 1 if self._overrun_unexplained else 0
        self._overrun_unexplained = False
        return lost
