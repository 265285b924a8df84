"""Run a real sharewalld inside a lab's gateway namespace, and talk to it like a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sharewall.api.client import Client
from sharewall.errors import SharewallError

REPO = Path(__file__).resolve().parents[2]


class Daemon:
    """sharewalld in namespace *netns*, with its own state dir, socket and config file."""

    def __init__(self, netns: str, workdir: Path) -> None:
        self.netns = netns
        self.workdir = workdir
        self.state_dir = workdir / "state"
        # A world-traversable directory, so tests can also call as an unprivileged user.
        sock_dir = Path(tempfile.mkdtemp(prefix="sw-sock-"))
        sock_dir.chmod(0o755)
        self.socket = sock_dir / "sharewall.sock"
        self.config = workdir / "sharewall.toml"
        self.log = workdir / "sharewalld.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Client | None = None

    def start(self, *, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                sys.executable,
                "-m",
                "sharewall.daemon.main",
                "--state-dir",
                str(self.state_dir),
                "--socket",
                str(self.socket),
                "--config",
                str(self.config),
                "-v",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sharewalld exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            if self.socket.exists():
                try:
                    with Client(str(self.socket), timeout=5) as probe_client:
                        probe_client.status()
                    return
                except SharewallError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"sharewalld did not come up in {timeout} s:\n{self.log_text()}")

    def client(self) -> Client:
        """One shared client; ``with`` closes its connection, and the next call reconnects."""
        if self._client is None:
            self._client = Client(str(self.socket), timeout=30)
        return self._client

    def cli(
        self, *args: str, check: bool = False, user: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, SHAREWALL_SOCKET=str(self.socket), NO_COLOR="1")
        return subprocess.run(
            [sys.executable, "-m", "sharewall.cli.main", *args],
            capture_output=True,
            text=True,
            check=check,
            env=env,
            cwd=REPO,
            timeout=120,
            user=user,
        )

    def send_signal(self, sig: int) -> None:
        """Send *sig* without waiting (SIGHUP: reload the configuration file)."""
        assert self.proc is not None and self.proc.poll() is None
        os.killpg(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        if self._client is not None:
            self._client.close()
        self.kill()
        shutil.rmtree(self.socket.parent, ignore_errors=True)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""
