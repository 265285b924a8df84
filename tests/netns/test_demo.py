"""The README's first command works: `sharewall lab demo`, and `lab up` / `lab down` with a live daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.env import require_root
from tests.support.netns import unique_prefix

pytestmark = pytest.mark.netns


def sharewall(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharewall.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def namespaces() -> str:
    return subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10
    ).stdout


def test_lab_demo_runs_every_step() -> None:
    require_root()
    prefix = unique_prefix("demo")
    result = sharewall("lab", "demo", "--prefix", prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All steps behaved as expected." in result.stdout
    for needle in ("source NAT works", "dropped", "hairpin", "UPnP IGD"):
        assert needle in result.stdout
    assert prefix not in namespaces()


def test_lab_up_runs_a_daemon_and_down_removes_everything() -> None:
    require_root()
    prefix = unique_prefix("up")
    try:
        up = sharewall("lab", "up", "--prefix", prefix)
        assert up.returncode == 0, up.stderr
        sock = f"/run/sharewall-lab/{prefix}/sharewall.sock"
        conns = sharewall("connections", "--json", env={"SHAREWALL_SOCKET": sock})
        assert conns.returncode == 0, conns.stderr
        names = {c["name"] for c in json.loads(conns.stdout)["connections"]}
        assert {"wan0", "lan0"} <= names
        again = sharewall("lab", "up", "--prefix", prefix)
        assert again.returncode != 0 and "already exists" in again.stderr
    finally:
        down = sharewall("lab", "down", "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    assert prefix not in namespaces()
