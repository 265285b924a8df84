"""The pfirewall.log writer: header, buffering, the size cap, rotation to one .old, and disk errors."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from sharewall.errors import ValidationError
from sharewall.seclog.record import LogAction, LogPath, LogRecord
from sharewall.seclog.w3c import HEADER
from sharewall.seclog.writer import SecurityLogWriter

UTC = datetime.UTC
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drop(index: int) -> LogRecord:
    return LogRecord(
        timestamp=T0 + index,
        action=LogAction.DROP,
        protocol=17,
        src_ip="203.0.113.9",
        dst_ip="192.0.2.1",
        src_port=10000 + index,
        dst_port=9999,
        size=40,
        path=LogPath.RECEIVE,
    )


def body_lines(path: Path) -> list[str]:
    text = path.read_text("ascii")
    assert text.startswith(HEADER)
    return text[len(HEADER) :].splitlines()


def make(path: Path, **kwargs: object) -> SecurityLogWriter:
    options: dict[str, object] = {"tz": UTC, "wall_clock": lambda: T0}
    options.update(kwargs)
    return SecurityLogWriter(path, **options)  # type: ignore[arg-type]


def test_new_file_gets_header_then_lines(tmp_path: Path) -> None:
    """A new file starts with the header; lines follow in order; the folder is created."""
    log = tmp_path / "sub" / "pfirewall.log"
    with make(log) as writer:
        writer.write(drop(0))
        writer.write(drop(1))
    assert body_lines(log) == [
        "2023-11-14 22:13:20 DROP UDP 203.0.113.9 192.0.2.1 10000 9999 40 - - - - - - - RECEIVE",
        "2023-11-14 22:13:21 DROP UDP 203.0.113.9 192.0.2.1 10001 9999 40 - - - - - - - RECEIVE",
    ]
    assert writer.stats.lines_written == 2


def test_existing_file_is_appended_without_a_second_header(tmp_path: Path) -> None:
    log = tmp_path / "pfirewall.log"
    with make(log) as writer:
        writer.write(drop(0))
    with make(log) as writer:
        writer.write(drop(1))
    assert log.read_text().count("#Version") == 1
    assert len(body_lines(log)) == 2


def test_empty_existing_file_gets_the_header(tmp_path: Path) -> None:
    log = tmp_path / "pfirewall.log"
    log.touch()
    with make(log) as writer:
        writer.write(drop(0))
    assert len(body_lines(log)) == 1


def test_lines_wait_until_k_lines(tmp_path: Path) -> None:
    """Nothing touches the disk until flush_lines lines are waiting."""
    log = tmp_path / "pfirewall.log"
    clock = FakeClock()
    writer = make(log, flush_lines=3, flush_interval_s=10.0, clock=clock)
    writer.write(drop(0))
    writer.write(drop(1))
    assert not log.exists()
    writer.write(drop(2))
    assert len(body_lines(log)) == 3
    writer.close()


def test_lines_wait_at_most_the_interval(tmp_path: Path) -> None:
    """A lone line is written once it has waited flush_interval_s (the owner's timer calls flush_if_due)."""
    log = tmp_path / "pfirewall.log"
    clock = FakeClock()
    writer = make(log, flush_lines=100, flush_interval_s=0.5, clock=clock)
    assert writer.next_flush_at is None
    writer.write(drop(0))
    assert writer.next_flush_at == pytest.approx(100.5)
    clock.now = 100.4
    writer.flush_if_due()
    assert not log.exists()
    clock.now = 100.5
    writer.flush_if_due()
    assert len(body_lines(log)) == 1
    assert writer.next_flush_at is None
    # A write after the interval also flushes, without the timer.
    writer.write(drop(1))
    clock.now = 101.5
    writer.write(drop(2))
    assert len(body_lines(log)) == 3
    writer.close()


@pytest.mark.parametrize("max_kb", [0, -1, 32768])
def test_size_limit_range(tmp_path: Path, max_kb: int) -> None:
    with pytest.raises(ValidationError, match=r"1\.\.32767"):
        SecurityLogWriter(tmp_path / "x.log", max_kb=max_kb)


@pytest.mark.parametrize("max_kb", [1, 32767])
def test_size_limit_bounds_are_accepted(tmp_path: Path, max_kb: int) -> None:
    assert SecurityLogWriter(tmp_path / "x.log", max_kb=max_kb).max_bytes == max_kb * 1024


def test_cap_is_never_exceeded_and_rotation_keeps_exactly_one_old(tmp_path: Path) -> None:
    """With a 1 KB cap: the file stays <= 1024 bytes, rotates to one .old, both start with the header."""
    log = tmp_path / "pfirewall.log"
    writer = make(log, max_kb=1, flush_lines=1)
    written: list[str] = []
    for index in range(200):
        writer.write(drop(index))
        written.append(f"{10000 + index} 9999")
        assert log.stat().st_size <= 1024
        old = Path(str(log) + ".old")
        if old.exists():
            assert old.stat().st_size <= 1024
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pfirewall.log", "pfirewall.log.old"]
    assert writer.stats.rotations >= 10
    old_lines = body_lines(Path(str(log) + ".old"))
    new_lines = body_lines(log)
    # The two files hold the most recent lines, contiguous and in order.
    recent = [line.split(" ")[6] + " " + line.split(" ")[7] for line in old_lines + new_lines]
    assert recent == written[-len(recent) :]
    # A rotation happens only when the next line would not fit.
    line_bytes = len(new_lines[0]) + 1
    assert Path(str(log) + ".old").stat().st_size + line_bytes > 1024
    assert writer.stats.events_lost == 0


def test_cap_holds_with_batched_flushes(tmp_path: Path) -> None:
    """A rotation in the middle of a buffered batch still keeps both files under the cap."""
    log = tmp_path / "pfirewall.log"
    writer = make(log, max_kb=1, flush_lines=50)
    for index in range(120):
        writer.write(drop(index))
    writer.close()
    assert log.stat().st_size <= 1024
    assert Path(str(log) + ".old").stat().st_size <= 1024
    assert body_lines(log)[-1].split(" ")[6] == "10119"
    assert writer.stats.lines_written == 120


def test_oversized_existing_file_rotates_first(tmp_path: Path) -> None:
    """A file already larger than the (lowered) cap is rotated before the next line."""
    log = tmp_path / "pfirewall.log"
    log.write_text(HEADER + "x" * 3000 + "\n")
    with make(log, max_kb=1) as writer:
        writer.write(drop(0))
    assert len(body_lines(log)) == 1
    assert Path(str(log) + ".old").stat().st_size > 3000


def test_lost_writes_info_events_lost(tmp_path: Path) -> None:
    log = tmp_path / "pfirewall.log"
    with make(log) as writer:
        writer.lost(0)  # nothing lost: nothing written
        writer.lost(1234)
    assert body_lines(log) == [
        "2023-11-14 22:13:20 INFO-EVENTS-LOST - - - - - - - - - - - - 1234 -"
    ]


def test_disk_errors_are_counted_and_reported_when_the_disk_recovers(tmp_path: Path) -> None:
    """A failing path never raises; the lost events come back as one INFO-EVENTS-LOST line."""
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    log = blocker / "pfirewall.log"
    clock = FakeClock()
    writer = make(log, flush_lines=1, clock=clock)
    for index in range(3):
        writer.write(drop(index))
    writer.lost(10)
    stats = writer.stats
    assert stats.disk_errors == 4
    assert stats.events_lost == 13
    assert stats.events_lost_pending == 13
    assert stats.last_error is not None
    # The owner's timer retries even if no event comes.
    assert writer.next_flush_at is not None
    blocker.unlink()
    clock.now += 1
    writer.flush_if_due()
    writer.write(drop(3))
    writer.close()
    lines = body_lines(log)
    assert lines[0] == "2023-11-14 22:13:20 INFO-EVENTS-LOST - - - - - - - - - - - - 13 -"
    assert lines[1].split(" ")[6] == "10003"
    assert writer.stats.events_lost_pending == 0


def test_failed_rotation_never_exceeds_the_cap(tmp_path: Path) -> None:
    """If the .old name cannot be taken, lines are counted as lost, not written past the cap."""
    log = tmp_path / "pfirewall.log"
    (tmp_path / "pfirewall.log.old").mkdir()
    (tmp_path / "pfirewall.log.old" / "keep").write_text("not empty, so rename cannot replace it")
    writer = make(log, max_kb=1, flush_lines=1)
    for index in range(40):
        writer.write(drop(index))
    writer.close()
    assert log.stat().st_size <= 1024
    assert writer.stats.disk_errors > 0
    assert writer.stats.events_lost > 0


def test_removed_file_is_recreated_with_header(tmp_path: Path) -> None:
    """If the file is removed behind our back (logrotate, an admin), the next flush starts a new one."""
    log = tmp_path / "pfirewall.log"
    writer = make(log, flush_lines=1)
    writer.write(drop(0))
    os.rename(log, tmp_path / "moved.log")
    writer.write(drop(1))
    writer.close()
    assert [line.split(" ")[6] for line in body_lines(log)] == ["10001"]
    assert len(body_lines(tmp_path / "moved.log")) == 1


def test_cut_short_last_line_is_ended_before_appending(tmp_path: Path) -> None:
    log = tmp_path / "pfirewall.log"
    log.write_text(HEADER + "2023-11-14 22:13:20 DROP UD")
    with make(log) as writer:
        writer.write(drop(0))
    lines = body_lines(log)
    assert lines[0] == "2023-11-14 22:13:20 DROP UD"
    assert lines[1].startswith("2023-11-14 22:13:20 DROP UDP")


def test_writes_after_close_are_counted_as_lost(tmp_path: Path) -> None:
    log = tmp_path / "pfirewall.log"
    writer = make(log)
    writer.close()
    writer.close()
    writer.write(drop(0))
    writer.lost(5)
    assert writer.stats.events_lost == 6
    assert not log.exists()
