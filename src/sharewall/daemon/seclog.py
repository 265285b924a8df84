"""The ICF security log service: NFLOG (drops, new connections) and conntrack (ends) -> pfirewall.log.

Follows the configuration through ``Engine.after_reconcile``: the NFLOG reader runs only while some
firewalled connection logs something. Writing is buffered by ``SecurityLogWriter`` and never blocks the
daemon. Nothing is lost silently: netlink overruns (sequence gaps) and what the kernel's log rate limit
suppressed (the ``<slot>_log_lost`` counters, read every few seconds on a separate nft context so mapping
updates never wait for it) become INFO-EVENTS-LOST lines.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sharewall.backends.conntrack import ConntrackEntry, ConntrackEvent, ConntrackEvents, TcpState
from sharewall.backends.nflog import NflogReader
from sharewall.backends.nft import NftBackend
from sharewall.compiler.gateway import CT_MARK_LOGGED, LOG_GROUP_CONNECTIONS, LOG_GROUP_DROPS
from sharewall.compiler.mappings import slot_of
from sharewall.compiler.ruleset import FAMILY, TABLE
from sharewall.errors import SharewallError
from sharewall.protocols.nflog import NflogPacket, packet_to_record
from sharewall.seclog.record import LogAction, LogPath, LogRecord
from sharewall.seclog.writer import SecurityLogWriter

from .engine import Engine

log = logging.getLogger("sharewall.seclog")

RECENT_EVENTS = 1000
CLOSED_IDS_KEPT = 65536  # TCP entries already logged as CLOSE, awaiting their DESTROY
COUNTER_POLL_S = 5.0
FLUSH_POLL_S = 0.5

# NFLOG prefix "sw <slot> <kind> " -> (action, path)
KINDS = {
    "in": (LogAction.DROP, LogPath.RECEIVE),
    "fwd": (LogAction.DROP, LogPath.FORWARD),
    "open": (LogAction.OPEN, LogPath.SEND),
    "inbound": (LogAction.OPEN_INBOUND, LogPath.RECEIVE),
}


def v6_path(path: str) -> str:
    """pfirewall.log -> pfirewall-v6.log (Windows' IPv6 firewall logged to its own file)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-v6{p.suffix}"))


class SecurityLog:
    def __init__(self, engine: Engine, *, counter_nft: NftBackend | None = None) -> None:
        self.conntrack: ConntrackEvents | None = None
        self._closed_ids: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.engine = engine
        self.reader: NflogReader | None = None
        self.writers: dict[int, SecurityLogWriter] = {}
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_EVENTS)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._counter_nft = counter_nft
        self._lost_seen: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._settings: tuple[str, int] | None = None

    # --- following the configuration ---------------------------------------------------------

    def _logging_connections(self) -> dict[str, str]:
        """slot -> connection name, for firewalled connections with any logging on."""
        return {
            slot_of(c.id): c.name
            for c in self.engine.config.connections.values()
            if c.firewall and (c.log.log_dropped or c.log.log_connections)
        }

    async def sync(self) -> None:
        wanted = bool(self._logging_connections()) and not self.engine.stopped
        settings = (self.engine.config.settings.log_path, self.engine.config.settings.log_max_kb)
        if self._settings is not None and settings != self._settings:
            self._close_writers()
        self._settings = settings
        if wanted and self.reader is None:
            reader = NflogReader(
                (LOG_GROUP_DROPS, LOG_GROUP_CONNECTIONS),
                on_packet=self._on_packet,
                on_lost=self._on_lost,
            )
            await reader.start()
            self.reader = reader
            self._tasks = [
                asyncio.create_task(self._flush_loop()),
                asyncio.create_task(self._counter_loop()),
            ]
            log.info("security log on: %s", ", ".join(sorted(self._logging_connections().values())))
        elif not wanted and self.reader is not None:
            await self.stop()
        await self._follow_closes(wanted)

    async def _follow_closes(self, wanted: bool) -> None:
        """CLOSE lines come from conntrack: the end of every connection an OPEN rule marked."""
        closes = wanted and any(
            c.firewall and c.log.log_connections for c in self.engine.config.connections.values()
        )
        if closes and self.conntrack is None:
            # In this namespace only: events for every connection (not just those created while a
            # listener existed) and byte counters; both are needed for honest CLOSE lines.
            for key in ("net/netfilter/nf_conntrack_events", "net/netfilter/nf_conntrack_acct"):
                with contextlib.suppress(OSError, SharewallError):
                    self.engine.write_sysctl(key, 1)
            events = ConntrackEvents(
                self._on_close,
                events=(ConntrackEvent.UPDATE, ConntrackEvent.DESTROY),
                mark_mask=CT_MARK_LOGGED,
                on_lost=lambda n: self._lost(n, "conntrack"),
                reap_interval_s=2.0,
            )
            await events.start()
            self.conntrack = events
        elif not closes and self.conntrack is not None:
            events, self.conntrack = self.conntrack, None
            events.close()

    def _on_close(self, entry: ConntrackEntry) -> None:
        # A TCP connection is over when it reaches TIME_WAIT/CLOSE; its entry is destroyed only when
        # that timer ends (up to two minutes later). Log CLOSE at whichever comes first, once.
        if entry.event is ConntrackEvent.UPDATE:
            if entry.protocol != 6 or entry.tcp_state not in (TcpState.TIME_WAIT, TcpState.CLOSE):
                return
            if entry.id is not None:
                self._closed_ids[entry.id] = None
                while len(self._closed_ids) > CLOSED_IDS_KEPT:
                    self._closed_ids.popitem(last=False)
        elif entry.id is not None and entry.id in self._closed_ids:
            del self._closed_ids[entry.id]
            return
        names = [
            c.name
            for c in self.engine.config.connections.values()
            if c.firewall and c.log.log_connections
        ]
        orig = entry.original
        self.emit(
            LogRecord(
                timestamp=time.time(),
                action=LogAction.CLOSE,
                protocol=entry.protocol,
                src_ip=str(orig.src),
                dst_ip=str(orig.dst),
                src_port=orig.src_port,
                dst_port=orig.dst_port,
                connection=names[0] if names else "",
            )
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.reader is not None:
            reader, self.reader = self.reader, None
            reader.close()
        if self.conntrack is not None:
            events, self.conntrack = self.conntrack, None
            events.close()
        self._close_writers()

    def _close_writers(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    # --- events ----------------------------------------------------------------------------------

    def _writer(self, family: int) -> SecurityLogWriter:
        writer = self.writers.get(family)
        if writer is None:
            path, max_kb = (
                self.engine.config.settings.log_path,
                self.engine.config.settings.log_max_kb,
            )
            target = Path(v6_path(path) if family == 6 else path)
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
            writer = SecurityLogWriter(target, max_kb=max_kb)
            self.writers[family] = writer
        return writer

    def _on_packet(self, packet: NflogPacket) -> None:
        words = (packet.prefix or "").split()
        if len(words) != 3 or words[0] != "sw" or words[2] not in KINDS:
            return
        name = self._logging_connections().get(words[1])
        if name is None:
            return
        action, path = KINDS[words[2]]
        record = packet_to_record(
            packet, action=action, received_at=time.time(), path=path, connection=name
        )
        if action is not LogAction.DROP:
            # Windows logs size and TCP details only for dropped packets.
            record = dataclasses.replace(
                record, size=None, tcpflags=None, tcpsyn=None, tcpack=None, tcpwin=None
            )
        self.emit(record)

    def emit(self, record: LogRecord) -> None:
        """Write one event (also used for CLOSE events from conntrack)."""
        family = 6 if record.src_ip and ":" in record.src_ip else 4
        self._writer(family).write(record)
        event = record.to_json()
        self.recent.append(event)
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def _on_lost(self, count: int) -> None:
        self._lost(count, "netlink")

    def _lost(self, count: int, why: str) -> None:
        if count <= 0:
            return
        now = time.time()
        for writer in (self._writer(4), *(w for f, w in self.writers.items() if f != 4)):
            writer.lost(count, timestamp=now)
        event = LogRecord.events_lost(count, timestamp=now).to_json()
        event["why"] = why
        self.recent.append(event)
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_POLL_S)
            for writer in list(self.writers.values()):
                writer.flush_if_due()

    async def _counter_loop(self) -> None:
        """What the kernel's log rate limit suppressed, from the <slot>_log_lost counters."""
        while True:
            await asyncio.sleep(COUNTER_POLL_S)
            await self.read_lost_counters()

    async def read_lost_counters(self) -> None:
        if self._counter_nft is None:
            return
        for slot in self._logging_connections():
            name = f"{slot}_log_lost"
            try:
                out = await self._counter_nft.run_json(
                    [{"list": {"counter": {"family": FAMILY, "table": TABLE, "name": name}}}]
                )
            except SharewallError:
                continue
            packets = next((int(o["counter"].get("packets", 0)) for o in out if "counter" in o), 0)
            before = self._lost_seen.get(name, 0)
            self._lost_seen[name] = packets
            if packets > before:
                self._lost(packets - before, "rate-limit")

    # --- readers -----------------------------------------------------------------------------------

    def tail(self, lines: int) -> list[dict[str, Any]]:
        return list(self.recent)[-lines:] if lines > 0 else []

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10000)
        self.subscribers.add(queue)
        try:
            yield queue
        finally:
            self.subscribers.discard(queue)
