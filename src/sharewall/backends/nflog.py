"""Read NFLOG groups from the kernel on the asyncio loop and hand each logged packet to a callback.

Opens ``socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)`` in the calling thread's network namespace,
binds the groups with copy-packet mode and per-group sequence numbers (stack.md Appendix B), and
reads it with ``loop.add_reader``. All decoding is in :mod:`sharewall.protocols.nflog`; this module
only moves bytes.

Losses are never silent: a gap in a group's sequence numbers (the kernel could not queue those
messages) and ``ENOBUFS`` (our receive buffer overflowed) are counted and reported through
``on_lost``, which the daemon turns into ``INFO-EVENTS-LOST`` lines. The receive buffer is at least
1 MiB (``SO_RCVBUFFORCE`` as root, so ``net.core.rmem_max`` does not cap it) to ride out bursts;
the ruleset's ``limit rate`` keeps a flood from costing more than that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

from sharewall.errors import KernelError, ValidationError
from sharewall.protocols.nflog import (
    NETLINK_NETFILTER,
    NFULNL_CFG_F_SEQ,
    LossCounter,
    NetlinkAck,
    NflogPacket,
    NflogParseError,
    build_bind,
    build_copy_mode,
    build_flags,
    parse_messages,
)

__all__ = ["DEFAULT_COPY_RANGE", "MIN_RECEIVE_BUFFER_BYTES", "NflogReader", "NflogReaderStats"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# 128 bytes hold an IPv6 header, a few extension headers and the TCP header: all the log needs.
DEFAULT_COPY_RANGE = 128
MIN_RECEIVE_BUFFER_BYTES = 1 << 20
_SO_RCVBUFFORCE = 33  # asm-generic/socket.h; Python's socket module does not export it
_RECV_BUFFER_BYTES = (
    256 * 1024
)  # larger than any one NFLOG datagram (the kernel caps a batch at 128 KiB)
_MAX_DATAGRAMS_PER_WAKEUP = 64  # yield to the loop now and then during a burst


@dataclasses.dataclass(frozen=True, slots=True)
class NflogReaderStats:
    """Counters of one reader since it started."""

    packets: int  # logged packets handed to on_packet
    lost: int  # packets the kernel logged but we never received (reported through on_lost)
    overruns: int  # ENOBUFS: the socket's receive buffer overflowed
    parse_errors: int  # datagrams dropped because they did not decode
    callback_errors: int  # exceptions raised by on_packet / on_lost (logged, then ignored)


class NflogReader:
    """Delivers the packets that ``log group N`` rules send, one callback per packet.

    Usage::

        async with NflogReader(7, on_packet=handle, on_lost=count_lost) as reader:
            ...  # packets arrive through handle() while the loop runs

    Callbacks run on the event loop and must be quick (render a line, queue it).
    """

    def __init__(
        self,
        groups: int | Iterable[int],
        *,
        on_packet: Callable[[NflogPacket], None],
        on_lost: Callable[[int], None] | None = None,
        copy_range: int = DEFAULT_COPY_RANGE,
        receive_buffer_bytes: int = MIN_RECEIVE_BUFFER_BYTES,
        config_timeout_s: float = 2.0,
    ) -> None:
        """Prepare a reader; :meth:`start` opens the socket.

        Args:
            groups: the NFLOG group number(s) of the rules, 0..65535.
            on_packet: called with every logged packet, in arrival order.
            on_lost: called with a number of lost packets as soon as it is known: a sequence gap
                shows on the group's next packet (before that packet is delivered); an overflow no
                gap explained counts as one when the reader closes.
            copy_range: bytes of each packet to copy (from the network header on).
            receive_buffer_bytes: socket receive buffer; raised to at least 1 MiB.
            config_timeout_s: how long to wait for the kernel to acknowledge the configuration.

        Raises:
            ValidationError: no group, or a group or copy range out of range.
        """
        self.groups = (groups,) if isinstance(groups, int) else tuple(dict.fromkeys(groups))
        if not self.groups:
            raise ValidationError("NflogReader needs at least one group")
        for group in self.groups:
            build_bind(group, seq=0)  # validates the group number
        build_copy_mode(0, copy_range, seq=0)  # validates the copy range
        self._on_packet = on_packet
        self._on_lost = on_lost
        self._copy_range = copy_range
        self._receive_buffer_bytes = max(receive_buffer_bytes, MIN_RECEIVE_BUFFER_BYTES)
        self._config_timeout_s = config_timeout_s
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray(_RECV_BUFFER_BYTES)
        self._losses = LossCounter()
        self._pending_acks: dict[int, asyncio.Future[None]] = {}
        self._request_names: dict[int, str] = {}
        self._next_seq = 1
        self._packets = 0
        self._lost = 0
        self._overruns = 0
        self._parse_errors = 0
        self._callback_errors = 0

    @property
    def stats(self) -> NflogReaderStats:
        """A snapshot of the counters."""
        return NflogReaderStats(
            packets=self._packets,
            lost=self._lost,
            overruns=self._overruns,
            parse_errors=self._parse_errors,
            callback_errors=self._callback_errors,
        )

    @property
    def receive_buffer_bytes(self) -> int | None:
        """The socket's receive buffer as the kernel reports it (doubled), or ``None`` when closed."""
        if self._socket is None:
            return None
        size: int = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        return size

    async def start(self) -> None:
        """Open the socket, bind the groups and start reading.

        Raises:
            KernelError: the socket could not be opened (not root, no nfnetlink_log) or the kernel
                refused the configuration (e.g. EPERM: another socket owns the group).
            RuntimeError: already started.
        """
        if self._socket is not None:
            raise RuntimeError("NflogReader already started")
        self._loop = asyncio.get_running_loop()
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as error:
            raise KernelError(f"cannot open an NFLOG netlink socket: {error}") from error
        self._socket = sock
        try:
            sock.setblocking(False)
            self._set_receive_buffer(sock)
            sock.bind((0, 0))
            self._loop.add_reader(sock.fileno(), self._on_readable)
            async with asyncio.timeout(self._config_timeout_s):
                for group in self.groups:
                    # One request at a time: each depends on the one before (mode needs the bind).
                    # EPERM on bind: another socket owns the group (nfnetlink_log allows one).
                    seq = self._take_seq()
                    await self._request(build_bind(group, seq=seq), seq, f"bind group {group}")
                    seq = self._take_seq()
                    mode = build_copy_mode(group, self._copy_range, seq=seq)
                    await self._request(mode, seq, f"set copy mode of group {group}")
                    seq = self._take_seq()
                    flags = build_flags(group, NFULNL_CFG_F_SEQ, seq=seq)
                    await self._request(flags, seq, f"set flags of group {group}")
        except KernelError:
            self.close()
            raise
        except (OSError, TimeoutError) as error:
            self.close()
            raise KernelError(f"NFLOG configuration failed: {error!r}") from error

    def close(self) -> None:
        """Stop reading and close the socket (which also unbinds the groups). Safe to repeat."""
        sock, self._socket = self._socket, None
        for future in self._pending_acks.values():
            future.cancel()
        self._pending_acks.clear()
        self._request_names.clear()
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        self._report_lost(self._losses.settle())

    async def __aenter__(self) -> NflogReader:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------

    def _take_seq(self) -> int:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return seq

    def _set_receive_buffer(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self._receive_buffer_bytes)
        except PermissionError:
            # Without CAP_NET_ADMIN the kernel caps SO_RCVBUF at net.core.rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer_bytes)

    def _request(self, message: bytes, seq: int, what: str) -> asyncio.Future[None]:
        assert self._socket is not None and self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending_acks[seq] = future
        self._request_names[seq] = what
        self._socket.sendto(message, (0, 0))
        return future

    def _on_readable(self) -> None:
        sock = self._socket
        if sock is None:
            return
        view = memoryview(self._buffer)
        for _ in range(_MAX_DATAGRAMS_PER_WAKEUP):
            try:
                size = sock.recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    self._overruns += 1
                    self._losses.overrun()
                    continue
                logger.warning("NFLOG socket read failed: %s", error)
                return
            if size == 0:
                return
            try:
                messages = parse_messages(bytes(view[:size]))
            except NflogParseError as error:
                self._parse_errors += 1
                # Its packets are not lost silently: their sequence numbers leave a gap.
                logger.warning("dropped an NFLOG datagram that did not decode: %s", error)
                continue
            for message in messages:
                if isinstance(message, NetlinkAck):
                    self._on_ack(message)
                else:
                    self._report_lost(self._losses.observe(message))
                    self._packets += 1
                    self._call(self._on_packet, message)

    def _on_ack(self, ack: NetlinkAck) -> None:
        future = self._pending_acks.pop(ack.seq, None)
        what = self._request_names.pop(ack.seq, "NFLOG request")
        if future is None or future.done():
            return
        if ack.error == 0:
            future.set_result(None)
        else:
            code = -ack.error
            name = errno.errorcode.get(code, str(code))
            future.set_exception(KernelError(f"NFLOG: the kernel refused to {what}: {name}"))

    def _report_lost(self, count: int) -> None:
        if count <= 0:
            return
        self._lost += count
        if self._on_lost is not None:
            self._call(self._on_lost, count)

    def _call(self, callback: Callable[[_T], None], argument: _T) -> None:
        try:
            callback(argument)
        except Exception:
            self._callback_errors += 1
            logger.exception("NFLOG callback failed")
