"""Throwaway network namespaces for the root test tiers.

Promises every namespace test relies on:
- Names are unique per run (:func:`unique_prefix`) and start with ``sw-t``, so anyone can tell they are
  ours, and parallel runs do not collide.
- :func:`namespaces` registers the cleanup of a namespace *before* creating it and deletes all of them
  on the way out, also on failure and on KeyboardInterrupt. It refuses a name that already exists, so
  cleanup can never delete someone else's namespace.
- Nothing is ever created in the root namespace: :func:`veth` creates each pair with its ends already
  inside the two namespaces.
- Files written with :meth:`Netns.write_etc` live in ``/etc/netns/NAME`` (bind-mounted over ``/etc`` by
  ``ip netns exec``), which also keeps a DHCP client in the namespace away from the host's resolv.conf.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from sharewall.lab import (
    NETNS_ETC_DIR,
    CommandError,
    delete_namespace,
    list_namespaces,
    run_command,
    run_in_namespace,
)
from tests.support.env import require_binary

__all__ = ["CommandError", "Netns", "list_namespaces", "namespaces", "unique_prefix", "veth"]

# Prefix plus "-xx" must stay a legal interface name (15 bytes) for callers that name veths after it.
_MAX_PREFIX_LEN = 12


def unique_prefix(tag: str = "") -> str:
    """A fresh name prefix such as ``sw-tl3a9f`` for ``tag="l"``.

    The tag comes first so each test area keeps its own recognisable prefix (``tag`` may also be given
    in full, as ``"sw-tl"``). Four random hex digits make it unique per run.
    """
    base = tag if tag.startswith("sw-t") else f"sw-t{tag}"
    prefix = base + secrets.token_hex(2)
    if len(prefix) > _MAX_PREFIX_LEN:
        raise ValueError(f"prefix {prefix!r} is longer than {_MAX_PREFIX_LEN}; use a shorter tag")
    return prefix


class Netns:
    """A named network namespace owned by the test. Create it through :func:`namespaces`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._children: list[subprocess.Popen[str]] = []

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def _create(self) -> None:
        run_command(["ip", "netns", "add", self.name])
        run_command(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 10,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the namespace and capture its text output.

        Raises:
            CommandError: ``check`` and a non-zero exit; its ``str()`` includes stderr.
            subprocess.TimeoutExpired: still running after ``timeout`` seconds (it is killed).
        """
        return run_in_namespace(self.name, *argv, check=check, timeout=timeout, input=input)

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` in the namespace in its own session; :meth:`delete` stops and reaps it."""
        kwargs.setdefault("text", True)
        process: subprocess.Popen[str] = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv], start_new_session=True, **kwargs
        )
        self._children.append(process)
        return process

    def python(self, code: str, timeout: float = 20) -> str:
        """Run ``code`` with this interpreter inside the namespace and return its stdout.

        Raises:
            CommandError: the script failed; the message carries its stderr (the traceback).
        """
        return self.run(sys.executable, "-c", code, timeout=timeout).stdout

    def ping(self, address: str, *, timeout: float = 3.0) -> bool:
        """True once ``address`` answers an ICMP echo; polls until ``timeout`` seconds have passed."""
        argv = _ping_argv()
        deadline = time.monotonic() + timeout
        while True:
            if self.run(*argv, "-c", "1", "-W", "1", address, check=False).returncode == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def write_etc(self, filename: str, text: str) -> str:
        """Write ``/etc/netns/NAME/filename`` (seen as ``/etc/filename`` under ``ip netns exec``); returns its path."""
        if not filename or "/" in filename or filename in (".", ".."):
            raise ValueError(f"bad /etc file name {filename!r}")
        folder = os.path.join(NETNS_ETC_DIR, self.name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, filename)
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return path

    def delete(self) -> None:
        """Stop this namespace's processes, delete it and its ``/etc/netns/NAME``. Safe to repeat."""
        for process in self._children:
            if process.poll() is None:
                process.terminate()
        for process in self._children:
            try:
                process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        self._children.clear()
        delete_namespace(self.name)


def _ping_argv() -> list[str]:
    if shutil.which("ping"):
        return ["ping"]
    # Debian's udhcpc depends on busybox, so its ping is there whenever the test tools are.
    return [require_binary("busybox"), "ping"]


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[list[Netns]]:
    """Create the named namespaces (``lo`` up in each) and always delete them afterwards.

    Raises:
        FileExistsError: a namespace of that name already exists; it is left alone.
    """
    existing = set(list_namespaces())
    taken = [name for name in names if name in existing]
    if taken:
        raise FileExistsError(f"namespaces already exist, not ours to reuse: {taken}")
    created: list[Netns] = []
    try:
        for name in names:
            netns = Netns(name)
            created.append(netns)  # registered before creation: a half-made one is still removed
            netns._create()
        yield created
    finally:
        errors: list[BaseException] = []
        for netns in reversed(created):
            try:
                netns.delete()
            except Exception as error:  # keep deleting the others, then report
                errors.append(error)
        if errors:
            raise errors[0]


def veth(a: Netns, a_if: str, b: Netns, b_if: str) -> None:
    """Connect ``a`` and ``b`` with a veth pair ``a_if``--``b_if`` and bring both ends up."""
    run_command(
        [
            "ip",
            "-n",
            a.name,
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name,
        ]
    )
    run_command(["ip", "-n", a.name, "link", "set", a_if, "up"])
    run_command(["ip", "-n", b.name, "link", "set", b_if, "up"])
