"""Real packets between lab namespaces: servers that report the source they saw, and bounded clients."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Servers started by the current test; the autouse fixture in conftest stops them.
RUNNING: list[subprocess.Popen[str]] = []


def stop_servers() -> None:
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def start_server(
    netns: str, kind: str, port: int, tag: str, bind: str = "0.0.0.0"
) -> subprocess.Popen[str]:
    """Start ``probe serve-tcp|serve-udp`` in *netns* and wait until it listens (bounded)."""
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-m",
            "sharewall.labprobe",
            f"serve-{kind}",
            str(port),
            "--tag",
            tag,
            "--bind",
            bind,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    RUNNING.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    line = proc.stdout.readline()
    if line.strip() != "ready" or time.monotonic() > deadline:
        raise RuntimeError(f"server did not start in {netns}: {line!r}")
    return proc


def probe(
    netns: str, kind: str, host: str, port: int, *, timeout: float = 1.5, src_port: int = 0
) -> str:
    """Connect (tcp) or send a datagram (udp) from *netns*; the answer line, or "timeout"/"refused"."""
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        sys.executable,
        "-m",
        "sharewall.labprobe",
        kind,
        host,
        str(port),
        "--timeout",
        str(timeout),
    ]
    if src_port:
        argv += ["--src-port", str(src_port)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=timeout + 20)
    return out.stdout.strip() or out.stderr.strip()


def ping(netns: str, host: str, *, count: int = 1, wait_s: int = 1) -> bool:
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        "ping",
        "-n",
        "-q",
        "-c",
        str(count),
        "-W",
        str(wait_s),
        host,
    ]
    return subprocess.run(argv, capture_output=True, timeout=count * wait_s + 10).returncode == 0


def wait_until(predicate: object, *, timeout: float = 10.0, interval: float = 0.1) -> bool:
    """Poll *predicate* until it is truthy or *timeout* passes (bounded; returns the last result)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
