"""dnsmasq supervisor, lease events and lease file, against a fake dnsmasq (no root needed).

The fake is a small Python program that logs the lines the real dnsmasq 2.90 logs at start-up and on
SIGHUP (``started, version``, ``read <hostsfile>``, ``cleared cache``), so the supervisor's process
handling (readiness, reload, crash restarts with backoff, stop escalation, stale processes) is
tested here quickly; tests/netns/test_dnsmasq.py runs the same supervisor on the real dnsmasq.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sharewall.backends.dnsmasq import (
    DnsmasqError,
    DnsmasqSupervisor,
    LeaseEventReceiver,
    SupervisorState,
    read_leases,
    write_dhcp_script,
)
from sharewall.compiler.dnsmasq import DnsmasqPaths
from sharewall.model.dhcp import LeaseEvent, LeaseEventKind

FAKE_DNSMASQ = """\
import os, signal, sys, time
conf = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--conf-file="))
lines = open(conf).read().splitlines()
opts = dict(l.split("=", 1) for l in lines if "=" in l and not l.startswith("#"))
fake = dict(l[len("# fake: "):].split("=", 1) for l in lines if l.startswith("# fake: "))
hosts = opts.get("dhcp-hostsfile")
pid = os.getpid()

def say(msg):
    print(f"dnsmasq[{pid}]: {msg}", flush=True)

def read_hosts(hup=False):
    if hup and fake.get("hup") == "cannot-read":
        say(f"cannot read {hosts}: Permission denied")
    else:
        open(hosts).read()
        say(f"read {hosts}")

if os.path.exists(fake.get("crash-if-exists", "/nonexistent")):
    say("failed to create listening socket for port 53: Address already in use")
    sys.exit(2)
if opts.get("pid-file"):
    open(opts["pid-file"], "w").write(f"{pid}\\n")
def on_term(signum, frame):
    say("exiting on receipt of SIGTERM")
    sys.exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if fake.get("ignore-term") else on_term)
if fake.get("hang"):
    while True:
        time.sleep(1)
say("started, version 2.90 cachesize 150")
if hosts:
    read_hosts()

def on_hup(signum, frame):
    say("cleared cache")
    if hosts:
        read_hosts(hup=True)

signal.signal(signal.SIGHUP, on_hup)
while True:
    signal.pause()
"""

DEADLINE_S = 5.0


@pytest.fixture
def fake_binary(tmp_path: Path) -> str:
    # The name ends in "dnsmasq": the stale-process check looks for that in the command line.
    path = tmp_path / "bin" / "dnsmasq"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{FAKE_DNSMASQ}")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def paths(tmp_path: Path) -> DnsmasqPaths:
    return DnsmasqPaths(
        conf_file=str(tmp_path / "dnsmasq.conf"),
        lease_file=str(tmp_path / "leases"),
        hosts_file=str(tmp_path / "hosts"),
    )


def config(paths: DnsmasqPaths, *fake: str) -> str:
    lines = [f"# fake: {f}" for f in fake]
    lines += [f"dhcp-hostsfile={paths.hosts_file}", f"dhcp-leasefile={paths.lease_file}"]
    if paths.pid_file:
        lines.append(f"pid-file={paths.pid_file}")
    return "\n".join(lines) + "\n"


def state_of(sup: DnsmasqSupervisor) -> SupervisorState:
    """The state as a call: mypy would otherwise narrow ``sup.state`` across awaits."""
    return sup.state


def pid_of(sup: DnsmasqSupervisor) -> int | None:
    return sup.pid


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro_fn(), 30)

    asyncio.run(bounded())


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_start_reload_stop(fake_binary: str, paths: DnsmasqPaths) -> None:
    """start() returns once the reservations are read; SIGHUP re-reads them; stop() ends it."""

    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary)
        await sup.start(config(paths), "aa:bb:cc:00:00:01,10.0.0.5\n")
        try:
            assert state_of(sup) == SupervisorState.RUNNING
            pid = sup.pid
            assert pid is not None
            assert any(line.endswith(f"read {paths.hosts_file}") for line in sup.log_tail())
            await sup.set_reservations("aa:bb:cc:00:00:02,10.0.0.6\n")
            assert Path(paths.hosts_file).read_text() == "aa:bb:cc:00:00:02,10.0.0.6\n"
            assert sup.pid == pid, "a reservation change must not restart dnsmasq"
            assert sum("cleared cache" in line for line in sup.log_tail()) == 1
            assert not await sup.apply_config(config(paths))
            assert sup.pid == pid
        finally:
            await sup.stop()
        assert state_of(sup) == SupervisorState.STOPPED
        assert sup.last_exit_code == 0  # dnsmasq exits 0 on SIGTERM
        assert pid_of(sup) is None

    run(scenario)


def test_reload_failure_is_reported(fake_binary: str, paths: DnsmasqPaths) -> None:
    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary)
        await sup.start(config(paths, "hup=cannot-read"))
        try:
            with pytest.raises(DnsmasqError, match="could not re-read"):
                await sup.reload()
        finally:
            await sup.stop()

    run(scenario)


def test_config_change_restarts(fake_binary: str, paths: DnsmasqPaths) -> None:
    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary)
        assert await sup.apply_config(config(paths)), "the first apply starts dnsmasq"
        try:
            old = sup.pid
            assert await sup.apply_config(config(paths) + "# changed\n")
            assert sup.pid not in (None, old)
            assert Path(paths.conf_file).read_text().endswith("# changed\n")
            assert sup.restart_count == 0, "a requested restart is not a crash"
        finally:
            await sup.stop()

    run(scenario)


def test_killed_dnsmasq_is_restarted(fake_binary: str, paths: DnsmasqPaths) -> None:
    """kill -9 → restarted after the first backoff step, counted, and reported to on_exit."""
    exits: list[int] = []

    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary, on_exit=exits.append)
        await sup.start(config(paths))
        try:
            old = sup.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            await eventually(lambda: sup.restart_count == 1, "the restart")
            assert state_of(sup) == SupervisorState.RUNNING
            assert sup.pid not in (None, old)
            assert exits == [-signal.SIGKILL] and sup.last_exit_code == -signal.SIGKILL
            assert any("exited with status -9" in line for line in sup.log_tail())
        finally:
            await sup.stop()

    run(scenario)


def test_restart_backs_off_while_start_fails(
    fake_binary: str, paths: DnsmasqPaths, tmp_path: Path
) -> None:
    """While dnsmasq cannot start the supervisor keeps trying with growing delays, then recovers."""
    marker = tmp_path / "broken"

    async def scenario() -> None:
        sup = DnsmasqSupervisor(
            paths, binary=fake_binary, backoff_initial_s=0.02, backoff_max_s=0.1
        )
        await sup.start(config(paths, f"crash-if-exists={marker}"))
        try:
            marker.touch()
            os.kill(sup.pid or 0, signal.SIGKILL)
            await eventually(
                lambda: sum("restart failed" in line for line in sup.log_tail()) >= 3,
                "three failed restarts",
            )
            assert state_of(sup) != SupervisorState.RUNNING
            assert sup.restart_count == 0
            assert any("Address already in use" in line for line in sup.log_tail())
            marker.unlink()
            await eventually(lambda: sup.restart_count == 1, "recovery")
            assert state_of(sup) == SupervisorState.RUNNING
        finally:
            await sup.stop()

    run(scenario)


def test_start_failure_raises_with_the_log(
    fake_binary: str, paths: DnsmasqPaths, tmp_path: Path
) -> None:
    marker = tmp_path / "broken"
    marker.touch()

    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary)
        with pytest.raises(DnsmasqError, match="exited with status 2") as info:
            await sup.start(config(paths, f"crash-if-exists={marker}"))
        assert "Address already in use" in info.value.message
        assert state_of(sup) == SupervisorState.STOPPED and sup.pid is None

    run(scenario)


def test_not_ready_in_time_is_killed(fake_binary: str, paths: DnsmasqPaths) -> None:
    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary, ready_timeout_s=0.3)
        with pytest.raises(DnsmasqError, match="not ready"):
            await sup.start(config(paths, "hang=1"))
        assert sup.pid is None and sup.last_exit_code is not None

    run(scenario)


def test_missing_binary_raises(paths: DnsmasqPaths, tmp_path: Path) -> None:
    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=str(tmp_path / "no-such-dnsmasq"))
        with pytest.raises(DnsmasqError, match="cannot run"):
            await sup.start(config(paths))

    run(scenario)


def test_stop_escalates_to_sigkill(fake_binary: str, paths: DnsmasqPaths) -> None:
    async def scenario() -> None:
        sup = DnsmasqSupervisor(paths, binary=fake_binary, stop_grace_s=0.2)
        await sup.start(config(paths, "ignore-term=1"))
        started = time.monotonic()
        await sup.stop()
        assert time.monotonic() - started < 2
        assert sup.last_exit_code == -signal.SIGKILL
        assert any("ignored SIGTERM" in line for line in sup.log_tail())

    run(scenario)


def test_stale_dnsmasq_from_a_crashed_daemon_is_stopped(fake_binary: str, tmp_path: Path) -> None:
    """A dnsmasq left on the same config (found by pid file) is stopped before a new one starts."""
    paths = DnsmasqPaths(
        conf_file=str(tmp_path / "dnsmasq.conf"),
        lease_file=str(tmp_path / "leases"),
        hosts_file=str(tmp_path / "hosts"),
        pid_file=str(tmp_path / "dnsmasq.pid"),
    )
    Path(paths.conf_file).write_text(config(paths))
    Path(paths.hosts_file).write_text("")
    stale = subprocess.Popen(
        [fake_binary, "-k", f"--conf-file={paths.conf_file}"], stdout=subprocess.DEVNULL
    )
    try:

        async def scenario() -> None:
            await eventually(lambda: Path(paths.pid_file or "").exists(), "the stale pid file")
            sup = DnsmasqSupervisor(paths, binary=fake_binary)
            await sup.start(config(paths))
            try:
                assert stale.poll() == 0
                assert sup.pid != stale.pid
            finally:
                await sup.stop()

        run(scenario)
    finally:
        if stale.poll() is None:
            stale.kill()
        stale.wait(5)


def test_lease_events_reach_the_callback(
    fake_binary: str, paths: DnsmasqPaths, tmp_path: Path
) -> None:
    """The generated dhcp-script wrapper delivers one LeaseEvent per invocation."""
    events: list[LeaseEvent] = []
    socket_path = tmp_path / "events.sock"
    script = write_dhcp_script(tmp_path / "dhcp-event", socket_path)

    async def scenario() -> None:
        sup = DnsmasqSupervisor(
            paths, binary=fake_binary, on_lease_event=events.append, event_socket=socket_path
        )
        await sup.start(config(paths))
        try:
            assert socket_path.stat().st_mode & 0o777 == 0o600
            env = {"DNSMASQ_INTERFACE": "swp0", "DNSMASQ_LEASE_EXPIRES": "1795738539"}
            for argv in (
                ["add", "AA:BB:CC:00:00:01", "192.168.137.7", "pc"],
                ["tftp", "1", "2", "3"],  # ignored by the script
                ["del", "aa:bb:cc:00:00:01", "192.168.137.7"],
            ):
                proc = await asyncio.create_subprocess_exec(str(script), *argv, env=env)
                assert await proc.wait() == 0
            await eventually(lambda: len(events) == 2, "two events")
        finally:
            await sup.stop()
        assert not socket_path.exists()

    run(scenario)
    assert events == [
        LeaseEvent(
            kind=LeaseEventKind.ADD,
            mac="aa:bb:cc:00:00:01",
            ip="192.168.137.7",
            hostname="pc",
            interface="swp0",
            expires_at=1795738539,
        ),
        LeaseEvent(
            kind=LeaseEventKind.DEL,
            mac="aa:bb:cc:00:00:01",
            ip="192.168.137.7",
            interface="swp0",
            expires_at=1795738539,
        ),
    ]


def test_dhcp_script_exits_0_when_nobody_listens(tmp_path: Path) -> None:
    script = write_dhcp_script(tmp_path / "dhcp-event", tmp_path / "absent.sock")
    result = subprocess.run(
        [str(script), "add", "aa:bb:cc:00:00:01", "10.0.0.2"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0
    assert "not delivered" in result.stderr


def test_receiver_drops_garbage_and_survives_callback_errors(tmp_path: Path) -> None:
    import socket

    seen: list[LeaseEvent] = []

    def callback(event: LeaseEvent) -> None:
        seen.append(event)
        raise RuntimeError("boom")

    async def scenario() -> None:
        receiver = LeaseEventReceiver(tmp_path / "ev.sock", callback)
        await receiver.start()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"garbage", str(tmp_path / "ev.sock"))
                for _ in range(2):
                    sock.sendto(
                        b'{"event":"old","mac":"aa:bb:cc:00:00:01","ip":"10.0.0.2"}',
                        str(tmp_path / "ev.sock"),
                    )
            await eventually(lambda: len(seen) == 2, "both good events")
        finally:
            receiver.close()

    run(scenario)


def test_read_leases(tmp_path: Path) -> None:
    assert read_leases(tmp_path / "absent") == []
    (tmp_path / "leases").write_text("0 aa:bb:cc:00:00:01 10.0.0.2 pc *\n")
    [lease] = read_leases(tmp_path / "leases")
    assert (lease.mac, lease.ip, lease.hostname, lease.expires_at) == (
        "aa:bb:cc:00:00:01",
        "10.0.0.2",
        "pc",
        None,
    )
