"""The size-capped ``pfirewall.log`` writer: buffered appends, rotation to ``.old``, never raises on disk errors.

Promises:

* The file starts with the W3C header (:data:`sharewall.seclog.w3c.HEADER`) whenever it is new or
  empty, and so does every file started by a rotation.
* The file never grows past ``max_kb * 1024`` bytes. When the next line would cross the cap, the
  file is renamed to ``PATH.old`` (replacing the previous one, as Windows does: seed-system.md §7.4)
  and a new file with the header is started. So there is at most one ``.old``.
* Lines are buffered and written in one ``write`` when ``flush_lines`` lines are waiting, when the
  oldest waiting line is ``flush_interval_s`` old (checked on each call, and by
  :meth:`SecurityLogWriter.flush_if_due`, which the owner calls from a timer), and on
  :meth:`~SecurityLogWriter.flush` / :meth:`~SecurityLogWriter.close`.
* Disk errors never reach the caller: they are counted in :attr:`SecurityLogWriter.stats`, the
  lines that failed are counted as lost events, and the next successful write starts with an
  ``INFO-EVENTS-LOST`` line carrying that count. Losses are logged, never silent.
* If someone else removes or renames the file (logrotate, an admin), the next flush notices and
  starts a new file with the header.

Not thread-safe: one owner (the daemon's event loop) calls it. Each flush is one small ``write``
to the page cache; there is no ``fsync``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Callable
from types import TracebackType

from sharewall.errors import ValidationError
from sharewall.seclog.record import LogRecord
from sharewall.seclog.w3c import HEADER, render_line

__all__ = [
    "DEFAULT_MAX_KB",
    "MAX_KB_RANGE",
    "SecurityLogStats",
    "SecurityLogWriter",
]

DEFAULT_MAX_KB = 4096
MAX_KB_RANGE = range(1, 32768)  # 1..32767 KB, Windows Firewall's range (seed-system.md §7.4)

_HEADER_BYTES = HEADER.encode("ascii")
_FILE_MODE = 0o640
_DIR_MODE = 0o750


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """A rendered line waiting to be written, and the number of events it stands for."""

    line: bytes
    events: int
    counted: bool = False  # already in events_lost (a re-sent INFO-EVENTS-LOST report)


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityLogStats:
    """Counters of one writer since it was created."""

    lines_written: int  # event lines that reached the file (INFO-EVENTS-LOST lines included)
    events_lost: int  # events that could not be written (disk errors, too long for an empty file)
    events_lost_pending: int  # of those, not yet reported by an INFO-EVENTS-LOST line in the file
    disk_errors: int
    rotations: int
    last_error: str | None


class SecurityLogWriter:
    """Appends security log lines to ``path``; see the module docstring for its promises."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_kb: int = DEFAULT_MAX_KB,
        tz: datetime.tzinfo | None = None,
        flush_interval_s: float = 0.5,
        flush_lines: int = 64,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare a writer; the file is opened (and created, with its folder) on the first flush.

        Args:
            path: the log file, e.g. ``/var/log/sharewall/pfirewall.log``.
            max_kb: size cap in KB (1..32767).
            tz: zone of the date/time fields; ``None`` is the system's local time.
            flush_interval_s: longest time a line waits in the buffer.
            flush_lines: buffered lines that trigger a write.
            clock: monotonic seconds, for the flush interval (injectable for tests).
            wall_clock: epoch seconds, for the time of ``INFO-EVENTS-LOST`` lines.

        Raises:
            ValidationError: ``max_kb`` is out of range, or the flush settings are not positive.
        """
        if max_kb not in MAX_KB_RANGE:
            raise ValidationError(
                f"security log size limit must be {MAX_KB_RANGE.start}..{MAX_KB_RANGE.stop - 1} KB,"
                f" got {max_kb}"
            )
        if flush_lines < 1 or flush_interval_s < 0:
            raise ValidationError("flush_lines must be >= 1 and flush_interval_s >= 0")
        self.path = os.fspath(path)
        self.old_path = self.path + ".old"
        self.max_bytes = max_kb * 1024
        self._tz = tz
        self._flush_interval_s = flush_interval_s
        self._flush_lines = flush_lines
        self._clock = clock
        self._wall_clock = wall_clock
        # Each buffered entry is a rendered line and the number of events it stands for.
        self._buffer: list[_Entry] = []
        self._oldest_buffered_at: float | None = None
        self._fd: int | None = None
        self._size = 0
        self._closed = False
        self._lines_written = 0
        self._events_lost = 0
        self._events_lost_pending = 0
        self._disk_errors = 0
        self._rotations = 0
        self._last_error: str | None = None

    # --- public API ---------------------------------------------------------------------------------

    @property
    def stats(self) -> SecurityLogStats:
        """A snapshot of the counters."""
        return SecurityLogStats(
            lines_written=self._lines_written,
            events_lost=self._events_lost,
            events_lost_pending=self._events_lost_pending,
            disk_errors=self._disk_errors,
            rotations=self._rotations,
            last_error=self._last_error,
        )

    @property
    def next_flush_at(self) -> float | None:
        """Clock time by which the buffered lines should be written; ``None`` when nothing waits."""
        if self._oldest_buffered_at is None:
            return None
        return self._oldest_buffered_at + self._flush_interval_s

    def write(self, record: LogRecord) -> None:
        """Buffer one event; write the buffer if it is full or old enough. Never raises on disk errors."""
        self._enqueue(_Entry(render_line(record, self._tz).encode("ascii"), 1))

    def lost(self, count: int, *, timestamp: float | None = None, connection: str = "") -> None:
        """Log an ``INFO-EVENTS-LOST`` line: ``count`` events happened but were not recorded."""
        if count <= 0:
            return
        when = self._wall_clock() if timestamp is None else timestamp
        record = LogRecord.events_lost(count, timestamp=when, connection=connection)
        self._enqueue(_Entry(render_line(record, self._tz).encode("ascii"), count))

    def flush_if_due(self) -> None:
        """Write the buffer if its oldest line has waited ``flush_interval_s``."""
        due = self.next_flush_at
        if due is not None and self._clock() >= due:
            self.flush()

    def flush(self) -> None:
        """Write every buffered line now. Never raises on disk errors (they are counted)."""
        entries, self._buffer = self._buffer, []
        self._oldest_buffered_at = None
        if self._events_lost_pending:
            count, self._events_lost_pending = self._events_lost_pending, 0
            record = LogRecord.events_lost(count, timestamp=self._wall_clock())
            line = render_line(record, self._tz).encode("ascii")
            entries.insert(0, _Entry(line, count, counted=True))
        if entries:
            self._write_entries(entries)

    def close(self) -> None:
        """Flush and close the file. Later writes are counted as lost."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._close_fd()

    def __enter__(self) -> SecurityLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------

    def _enqueue(self, entry: _Entry) -> None:
        if self._closed:
            self._events_lost += entry.events
            return
        now = self._clock()
        if self._oldest_buffered_at is None:
            self._oldest_buffered_at = now
        self._buffer.append(entry)
        if len(self._buffer) >= self._flush_lines or now >= (
            self._oldest_buffered_at + self._flush_interval_s
        ):
            self.flush()

    def _record_loss(self, entries: list[_Entry]) -> None:
        self._events_lost += sum(entry.events for entry in entries if not entry.counted)
        self._events_lost_pending += sum(entry.events for entry in entries)
        if self._oldest_buffered_at is None:
            # Retry (and report the loss) one interval from now, even if no new event comes.
            self._oldest_buffered_at = self._clock()

    def _record_error(self, error: OSError) -> None:
        self._disk_errors += 1
        self._last_error = f"{type(error).__name__}: {error}"
        self._close_fd()

    def _write_entries(self, entries: list[_Entry]) -> None:
        try:
            self._ensure_open()
        except OSError as error:
            self._record_error(error)
            self._record_loss(entries)
            return
        chunk = bytearray()
        in_chunk: list[_Entry] = []
        for index, entry in enumerate(entries):
            if self._size + len(chunk) + len(entry.line) > self.max_bytes:
                try:
                    self._append(bytes(chunk))
                    self._lines_written += len(in_chunk)
                    chunk.clear()
                    in_chunk.clear()
                    self._rotate()
                except OSError as error:
                    self._record_error(error)
                    self._record_loss(in_chunk + entries[index:])
                    return
                if self._size + len(entry.line) > self.max_bytes:
                    self._record_loss([entry])  # cannot fit even in a fresh file
                    continue
            chunk += entry.line
            in_chunk.append(entry)
        try:
            self._append(bytes(chunk))
            self._lines_written += len(in_chunk)
        except OSError as error:
            self._record_error(error)
            self._record_loss(in_chunk)

    def _ensure_open(self) -> None:
        if self._fd is not None and self._still_ours():
            return
        self._close_fd()
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, mode=_DIR_MODE, exist_ok=True)
        # O_RDWR, not O_WRONLY: the last byte is read back to see whether a line was cut short.
        self._fd = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
        )
        self._size = os.fstat(self._fd).st_size
        if self._size == 0:
            self._append(_HEADER_BYTES)
        elif self._size < self.max_bytes and os.pread(self._fd, 1, self._size - 1) != b"\n":
            self._append(b"\n")  # end a line cut short by an earlier failed write

    def _still_ours(self) -> bool:
        """True when ``path`` still names the file we hold open (not removed or rotated away)."""
        assert self._fd is not None
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def _rotate(self) -> None:
        self._close_fd()
        os.replace(self.path, self.old_path)
        self._rotations += 1
        self._fd = os.open(
            self.path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
            _FILE_MODE,
        )
        self._size = 0
        self._append(_HEADER_BYTES)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError("security log file is not open")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
