"""Shared fixtures: throwaway labs and a real sharewalld per test. Every namespace is deleted afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env import require_binary, require_root

# Lab prefixes this pytest process created. Only these are checked at the end: other test runs on the
# same machine (other engineers, other sessions) own their own namespaces.
_OUR_PREFIXES: set[str] = set()


def _leftover_namespaces() -> list[str]:
    try:
        out = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if any(n.startswith(p + "-") for p in _OUR_PREFIXES)]


@pytest.fixture(autouse=True)
def _stop_test_servers() -> Iterator[None]:
    yield
    from tests.support.traffic import stop_servers

    stop_servers()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[object]:
    """A fresh lab topology (inet, gw, sw, lan1, lan2) with a unique prefix; always torn down."""
    require_root()
    require_binary("ip")
    require_binary("nft")
    from sharewall.lab import Lab
    from tests.support.netns import unique_prefix

    the_lab = Lab(prefix=unique_prefix())
    _OUR_PREFIXES.add(the_lab.prefix)
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture
def gateway(lab: object, tmp_path: Path) -> Iterator[object]:
    """A running sharewalld in the lab's gateway namespace."""
    from tests.support.daemon import Daemon

    daemon = Daemon(lab.ns("gw"), tmp_path)  # type: ignore[attr-defined]
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _leftover_namespaces()
    if left:
        # A test leaked namespaces: remove them so the machine stays clean, and say so loudly.
        for name in left:
            subprocess.run(["ip", "netns", "pids", name], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        print(f"\nERROR: tests left network namespaces behind (removed now): {' '.join(left)}")
        session.exitstatus = 1
