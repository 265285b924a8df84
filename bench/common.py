"""Shared pieces of the benchmarks: labs that always come down, statistics, targets and result files.

Impure: creates network namespaces (only ``sw-tb*`` ones, through :class:`sharewall.lab.Lab`), starts
processes inside them and writes ``bench/results/*.json``. It never touches the root namespace.

Method promise: a benchmark compares against a baseline measured in the same run, interleaved with it,
and judges ratios, not absolute times (this is a shared 2-core VM: absolute numbers drift by 10-20 %).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from sharewall import __version__
from sharewall.lab import Lab
from sharewall.lab_demo import lab_dir

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
PREFIX_BASE = "sw-tb"
# One `ip netns exec ... python` helper may not outlive this, whatever it was asked to do.
HELPER_TIMEOUT_S = 120.0


# --- labs and processes --------------------------------------------------------------------------


def unique_prefix(tag: str = "") -> str:
    """A lab prefix of our own: ``sw-tb`` + tag + 4 random hex digits."""
    return f"{PREFIX_BASE}{tag}{secrets.token_hex(2)}"


@contextlib.contextmanager
def lab_session(tag: str = "") -> Iterator[Lab]:
    """Build a fresh lab and ALWAYS take it down (its processes die with it), even on failure."""
    lab = Lab(prefix=unique_prefix(tag))
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        shutil.rmtree(lab_dir(lab.prefix), ignore_errors=True)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that ``finally`` blocks take the labs down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def in_ns(lab: Lab, role: str, *argv: str) -> list[str]:
    """``argv`` run inside the namespace of ``role``."""
    return ["ip", "netns", "exec", lab.ns(role), *argv]


def python_in_ns(lab: Lab, role: str, module: str, *args: str) -> list[str]:
    """``python -m module args`` inside the namespace of ``role``, with this interpreter."""
    return in_ns(lab, role, sys.executable, "-m", module, *args)


def run_json(argv: Sequence[str], *, timeout: float = HELPER_TIMEOUT_S) -> dict[str, Any]:
    """Run a helper that prints one JSON object on its last line of output, and decode it.

    Raises:
        RuntimeError: the helper failed or printed no JSON object.
    """
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    decoded = json.loads(lines[-1])
    if not isinstance(decoded, dict):
        raise RuntimeError(f"{' '.join(argv)} printed {lines[-1]!r}, not a JSON object")
    return decoded


def stop_process(proc: subprocess.Popen[Any] | None, *, grace_s: float = 3.0) -> None:
    """SIGTERM one process we started (by its pid), SIGKILL it after ``grace_s``; reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def vm_rss_kib(pid: int) -> int:
    """Resident set size of a process (``VmRSS`` in ``/proc/PID/status``), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def filesystem_of(path: Path) -> str:
    """The type of the file system that holds ``path`` (e.g. ``ext4``, ``tmpfs``)."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point, fs_type = fields[1], fields[2]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fs_type
    return kind


# --- statistics and targets ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def distribution(values: Sequence[float], *, digits: int = 3) -> dict[str, float | int]:
    """n, p50, p95, min and max of ``values``, rounded."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), digits),
        "p95": round(percentile(values, 0.95), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


@dataclass(frozen=True)
class Target:
    """One target of the issue: ``value op threshold`` passes."""

    name: str
    value: float
    op: Literal["<=", ">="]
    threshold: float
    unit: str
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.op == "<=":
            return self.value <= self.threshold
        return self.value >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "op": self.op,
            "threshold": self.threshold,
            "unit": self.unit,
            "pass": self.passed,
            "note": self.note,
        }


# --- results -------------------------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, and how busy the machine was when the run started."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "nft": _first_line(["nft", "--version"]),
        "sharewall": __version__,
        "git_commit": _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` (pretty, stable key order) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def save_results(name: str, results: dict[str, Any], out: Path | None, *, quick: bool) -> None:
    """Write a run's results: to ``out`` if given, else to ``bench/results/NAME.json`` unless the
    run was ``--quick`` (a harness check, not a measurement); say where."""
    if out is None and not quick:
        out = RESULTS_DIR / f"{name}.json"
    if out is None:
        return
    if out.parent == RESULTS_DIR:
        path = write_results(out.stem, results)
    else:
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        path = out
    print(f"results written to {path}")


def print_verdicts(results: dict[str, Any]) -> None:
    """One line per target: pass or MISS, the value, and what was wanted."""
    for target in results["targets"]:
        verdict = "pass" if target["pass"] else "MISS"
        unit = f" {target['unit']}" if target.get("unit") else ""
        print(
            f"{verdict}: {target['name']}: {target['value']}{unit} "
            f"(wanted {target['op']} {target['threshold']})"
        )


def load_results(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    decoded = json.loads(path.read_text(encoding="utf-8"))
    return decoded if isinstance(decoded, dict) else None


def targets_markdown(results: dict[str, Any]) -> list[str]:
    """A Markdown table of one result file's targets."""
    lines = ["| target | measured | wanted | result |", "|---|---|---|---|"]
    for target in results.get("targets", []):
        unit = f" {target['unit']}" if target["unit"] else ""
        lines.append(
            f"| {target['name']} | {target['value']:g}{unit} | {target['op']} "
            f"{target['threshold']:g}{unit} | {'pass' if target['pass'] else '**MISS**'} |"
        )
    return lines


def summary_markdown() -> str:
    """Both result files' targets as Markdown (what ``scripts/bench`` prints at the end)."""
    out: list[str] = []
    for name in ("dataplane", "controlplane"):
        results = load_results(name)
        if results is None:
            out.append(f"{name}: no results yet")
            continue
        machine = results.get("machine", {})
        out.append(
            f"### {name} ({machine.get('date', '?')}, {machine.get('cpus', '?')} CPUs, "
            f"kernel {machine.get('kernel', '?')})"
        )
        out.extend(targets_markdown(results))
        out.append("")
    return "\n".join(out)


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start


if __name__ == "__main__":
    print(summary_markdown())
