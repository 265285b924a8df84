"""nftables backend: our own ctypes binding to ``libnftables.so.1``, with an ``nft`` subprocess fallback.

Promise: every call sends ONE buffer, which nftables applies as ONE transaction. If the kernel or the
parser refuses any command in it, nothing is applied and ``KernelError`` carries nft's error text.
Commands travel as JSON, so interface names and comments are never interpolated into nft text
(stack.md §1b pitfall 2). Only named tables are replaced or deleted; nothing here flushes the ruleset.

Written from the C API in ``libnftables.h`` (stack.md Appendix A), not from the GPL Python module.

Namespaces: a libnftables context opens its netlink socket in ``nft_ctx_new()`` and stays bound to the
network namespace of the thread that created it; the subprocess fallback inherits the namespace of the
calling thread. So an ``Nft`` may only be used from the thread that created it (checked), and
``Nft.in_netns()`` / ``NftBackend(netns=...)`` run a dedicated thread that enters the namespace with
``setns()`` *before* the context exists and then makes every call itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from sharewall.errors import KernelError, ValidationError

__all__ = ["NFT_FAMILIES", "Nft", "NftBackend", "NftMode", "load_libnftables"]

T = TypeVar("T")

NftMode = Literal["auto", "library", "cli"]
"""``auto``: libnftables if it loads, else the ``nft`` binary; ``library``/``cli``: force one path."""

NFT_FAMILIES = frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"})
NFT_NAME_MAX_BYTES = 255  # NFT_NAME_MAXLEN (256) includes the terminating NUL

# From libnftables.h (enum nft_output_flags). JSON output also makes libnftables try the JSON parser
# on input first (nft 1.0.6 has no separate input flag); handles stay off.
NFT_CTX_OUTPUT_JSON = 1 << 4
TEXT_OUTPUT_FLAGS = 0

LIBNFTABLES_SONAME = "libnftables.so.1"
NFT_BINARY_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")
NFT_SUBPROCESS_TIMEOUT_S = 120.0
NETLINK_NETFILTER = 12
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"


# --- the C library -------------------------------------------------------------------------------


@functools.cache
def _library() -> ctypes.CDLL | None:
    return _load_library(LIBNFTABLES_SONAME)


def _load_library(soname: str) -> ctypes.CDLL | None:
    """Load libnftables and declare the prototypes we use; None if it or a symbol is missing."""
    try:
        lib = ctypes.CDLL(soname, use_errno=True)
        ctx, cstr = ctypes.c_void_p, ctypes.c_char_p
        lib.nft_ctx_new.restype = ctx
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_free.argtypes = [ctx]
        lib.nft_ctx_buffer_output.restype = ctypes.c_int
        lib.nft_ctx_buffer_output.argtypes = [ctx]
        lib.nft_ctx_buffer_error.restype = ctypes.c_int
        lib.nft_ctx_buffer_error.argtypes = [ctx]
        lib.nft_ctx_get_output_buffer.restype = cstr
        lib.nft_ctx_get_output_buffer.argtypes = [ctx]
        lib.nft_ctx_get_error_buffer.restype = cstr
        lib.nft_ctx_get_error_buffer.argtypes = [ctx]
        lib.nft_ctx_output_set_flags.restype = None
        lib.nft_ctx_output_set_flags.argtypes = [ctx, ctypes.c_uint]
        lib.nft_ctx_set_dry_run.restype = None
        lib.nft_ctx_set_dry_run.argtypes = [ctx, ctypes.c_bool]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctx, cstr]
    except (OSError, AttributeError):
        return None
    return lib


def load_libnftables() -> bool:
    """Whether ``libnftables.so.1`` loads and has every function this binding needs."""
    return _library() is not None


def _find_nft_binary() -> str | None:
    found = shutil.which("nft")
    if found:
        return found
    return next((p for p in NFT_BINARY_CANDIDATES if os.access(p, os.X_OK)), None)


# libnftables prefixes JSON-input errors with a meaningless location: "internal:0:0-0: Error: ..."
_JSON_LOCATION = re.compile(r"^internal:\d+:\d+-\d+: ")


def _clean_error(text: str) -> str:
    lines = [_JSON_LOCATION.sub("", line.rstrip()) for line in text.splitlines() if line.strip()]
    return "\n".join(lines)


class _Runner(Protocol):
    """Runs one buffer as one nft transaction; returns nft's output text or raises KernelError."""

    def run(self, payload: bytes, *, json_io: bool, dry_run: bool) -> str: ...

    def close(self) -> None: ...


class _LibraryRunner:
    def __init__(self, lib: ctypes.CDLL) -> None:
        # libnftables 1.0.6 calls exit() when it cannot open its netlink socket, which would kill the
        # daemon; probing the same socket first turns that into an exception.
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER).close()
        except OSError as exc:
            raise KernelError(f"cannot open a netfilter netlink socket: {exc}") from exc
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise KernelError("nft_ctx_new failed")
        self._lib = lib
        self._ctx: int | None = ctx
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)

    def run(self, payload: bytes, *, json_io: bool, dry_run: bool) -> str:
        lib, ctx = self._lib, self._ctx
        if ctx is None:
            raise RuntimeError("nft context is closed")
        lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON if json_io else TEXT_OUTPUT_FLAGS)
        lib.nft_ctx_set_dry_run(ctx, dry_run)
        try:
            rc = lib.nft_run_cmd_from_buffer(ctx, payload)  # ctypes drops the GIL here
            out = lib.nft_ctx_get_output_buffer(ctx) or b""
            err = lib.nft_ctx_get_error_buffer(ctx) or b""
        finally:
            if dry_run:
                lib.nft_ctx_set_dry_run(ctx, False)
        if rc != 0:
            raise KernelError(_clean_error(err.decode(errors="replace")) or f"nft failed (rc={rc})")
        return out.decode(errors="replace")

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


class _CliRunner:
    """``nft [-j] [-c] -f -``: same transaction semantics (rc != 0: nothing applied), ~20x slower."""

    def __init__(self, binary: str) -> None:
        self._binary = binary
        self._env = {**os.environ, "LC_ALL": "C"}  # stable, untranslated error text

    def run(self, payload: bytes, *, json_io: bool, dry_run: bool) -> str:
        argv = [self._binary]
        if json_io:
            argv.append("-j")
        if dry_run:
            argv.append("-c")
        argv += ["-f", "-"]
        try:
            proc = subprocess.run(
                argv,
                input=payload,
                capture_output=True,
                env=self._env,
                timeout=NFT_SUBPROCESS_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KernelError(f"cannot run {self._binary}: {exc}") from exc
        if proc.returncode != 0:
            err = _clean_error(proc.stderr.decode(errors="replace"))
            raise KernelError(err or f"nft exited with status {proc.returncode}")
        return proc.stdout.decode(errors="replace")

    def close(self) -> None:
        pass


def _make_runner(mode: NftMode) -> _Runner:
    if mode != "cli":
        lib = _library()
        if lib is not None:
            return _LibraryRunner(lib)
        if mode == "library":
            raise KernelError(f"{LIBNFTABLES_SONAME} cannot be loaded")
    binary = _find_nft_binary()
    if binary is None:
        raise KernelError(f"neither {LIBNFTABLES_SONAME} nor the nft binary is available")
    return _CliRunner(binary)


# --- JSON in and out -----------------------------------------------------------------------------


def parse_nft_output(text: str) -> list[dict[str, Any]]:
    """The objects of every ``{"nftables": [...]}`` document in nft's JSON output, metainfo skipped.

    One output may hold several documents (one per list command), separated by whitespace.

    Raises:
        KernelError: the output is not nft JSON.
    """
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return objects
        try:
            document, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise KernelError(f"unreadable nft output: {exc}") from exc
        items = document.get("nftables") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise KernelError("unexpected nft output: no 'nftables' list")
        objects.extend(item for item in items if isinstance(item, dict) and "metainfo" not in item)


# After a transaction this large, glibc keeps tens of MiB of freed heap (the JSON text, libnftables'
# parse trees) unless asked to give it back: measured 94 -> 58 MiB after a 10,000-mapping import.
LARGE_TRANSACTION_COMMANDS = 1000


def _release_freed_memory() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _encode_commands(commands: list[dict[str, Any]]) -> bytes:
    return msgspec.json.encode({"nftables": commands})


def _check_table_ref(family: str, name: str) -> None:
    if family not in NFT_FAMILIES:
        raise ValidationError(f"unknown nftables family {family!r}")
    if not name or "\0" in name or len(name.encode()) > NFT_NAME_MAX_BYTES:
        raise ValidationError(f"invalid nftables table name {name!r}")


# --- namespaces ----------------------------------------------------------------------------------


def _netns_path(netns: str) -> str:
    if netns.startswith("/"):
        return netns
    if not netns or "/" in netns or netns in {".", ".."} or "\0" in netns:
        raise ValidationError(f"invalid network namespace name {netns!r}")
    return f"{NETNS_RUN_DIR}/{netns}"


def _enter_netns(netns: str) -> None:
    """Move the *calling thread* into a network namespace (Python 3.11 has no os.setns)."""
    path = _netns_path(netns)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
        target = os.fstat(fd)
    finally:
        os.close(fd)
    # Never let a context be created in the wrong namespace: confirm where this thread now is.
    current = os.stat("/proc/thread-self/ns/net")
    if (current.st_dev, current.st_ino) != (target.st_dev, target.st_ino):
        raise OSError(f"thread did not enter network namespace {netns!r}")


_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class _OwnerThread:
    """One thread that optionally enters a netns first, then runs submitted calls in order.

    Unlike a thread pool, the thread is never replaced or reused for anything else, so every call
    runs in the same thread, and so in the same namespace.
    """

    def __init__(self, netns: str | None, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(netns, ready), name=name, daemon=True
        )
        self._thread.start()
        ready.result()  # re-raises a setns failure; the thread has already ended then

    def _main(self, netns: str | None, ready: concurrent.futures.Future[None]) -> None:
        try:
            if netns is not None:
                _enter_netns(netns)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, future = job
            # Drop our references before waiting for the next job, so a large transaction's
            # command list does not stay alive until the next call.
            job = None
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            del fn, future

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        if self._closed:
            raise RuntimeError("nft worker thread is closed")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future

    def call(self, fn: Callable[[], T]) -> T:
        if self.is_current():
            return fn()
        return self.submit(fn).result()

    def stop(self, *, wait: bool) -> None:
        """Let queued calls finish, then end the thread."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        if wait and not self.is_current():
            self._thread.join()


# --- the synchronous context ---------------------------------------------------------------------


class Nft:
    """One libnftables context = one netlink socket, bound to the netns of the thread that created it.

    Use it only from the thread that created it (``RuntimeError`` otherwise), or create it with
    ``Nft.in_netns()``, which may be called from any thread.
    """

    def __init__(self, *, mode: NftMode = "auto") -> None:
        """Open a context in the calling thread's network namespace.

        Raises:
            KernelError: neither libnftables nor the ``nft`` binary is usable (or ``mode`` forbids
                the one that is).
        """
        self._runner: _Runner | None = _make_runner(mode)
        self._owner = threading.get_ident()
        self._worker: _OwnerThread | None = None

    @classmethod
    def in_netns(cls, netns: str, *, mode: NftMode = "auto") -> Nft:
        """A context in network namespace ``netns`` (a name under /run/netns, or an absolute path).

        A private thread enters the namespace, then creates the context; every later call, from any
        thread, is forwarded to that thread. ``close()`` ends it.

        Raises:
            OSError: the namespace cannot be entered.
            KernelError: as for ``Nft()``.
        """
        worker = _OwnerThread(netns, name=f"sharewall-nft-{netns}")
        try:
            nft = worker.call(lambda: cls(mode=mode))
        except BaseException:
            worker.stop(wait=True)
            raise
        nft._worker = worker
        return nft

    @property
    def uses_library(self) -> bool:
        """True for the libnftables path, False for the ``nft`` subprocess fallback."""
        return isinstance(self._runner, _LibraryRunner)

    def _call(self, fn: Callable[[], T]) -> T:
        if self._worker is not None and not self._worker.is_current():
            return self._worker.call(fn)
        if threading.get_ident() != self._owner:
            raise RuntimeError("an Nft context may only be used from the thread that created it")
        return fn()

    def _run(self, payload: bytes, *, json_io: bool, dry_run: bool = False) -> str:
        def run() -> str:
            if self._runner is None:
                raise RuntimeError("nft context is closed")
            return self._runner.run(payload, json_io=json_io, dry_run=dry_run)

        return self._call(run)

    def run_json(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``{"nftables": commands}`` as ONE transaction.

        Returns:
            The objects of nft's JSON output (e.g. from ``list`` commands), metainfo skipped; an empty
            list when nft printed nothing.

        Raises:
            KernelError: nft refused the batch (nothing was applied); the message is nft's error text.
        """
        if not commands:
            return []
        return parse_nft_output(self._run(_encode_commands(commands), json_io=True))

    def run_text(self, text: str) -> str:
        """Run nft text syntax and return nft's text output. For tests and diagnostics only: never
        put names that came from outside into it.

        Raises:
            KernelError: nft refused it (nothing was applied).
        """
        return self._run(text.encode(), json_io=False)

    def check_json(self, commands: list[dict[str, Any]]) -> None:
        """Dry run (``nft -c``): parse and check ``commands`` against the kernel without applying them.

        Raises:
            KernelError: the batch would be refused.
        """
        if commands:
            self._run(_encode_commands(commands), json_io=True, dry_run=True)

    def table_exists(self, family: str, name: str) -> bool:
        """Whether table ``family name`` exists (lists table headers only: cheap even with big sets).

        Raises:
            ValidationError: unknown family or impossible name.
        """
        _check_table_ref(family, name)
        objects = self.run_json([{"list": {"tables": {"family": family}}}])
        return any(
            obj["table"].get("family") == family and obj["table"].get("name") == name
            for obj in objects
            if isinstance(obj.get("table"), dict)
        )

    def list_table(self, family: str, name: str) -> list[dict[str, Any]] | None:
        """The table's objects as ``nft -j list table`` gives them (metainfo skipped); None if absent.

        Raises:
            ValidationError: unknown family or impossible name.
            KernelError: listing failed for another reason than absence.
        """
        _check_table_ref(family, name)
        try:
            return self.run_json([{"list": {"table": {"family": family, "name": name}}}])
        except KernelError:
            if not self.table_exists(family, name):
                return None
            raise

    def delete_table(self, family: str, name: str) -> None:
        """Delete one table; no error if it is absent. Nothing else is touched.

        ``add`` + ``delete`` in one transaction, because nft 1.0.6 has no ``destroy``.

        Raises:
            ValidationError: unknown family or impossible name.
            KernelError: nft refused.
        """
        _check_table_ref(family, name)
        table = {"family": family, "name": name}
        self.run_json([{"add": {"table": dict(table)}}, {"delete": {"table": dict(table)}}])

    def close(self) -> None:
        """Free the context (and end the namespace thread of ``in_netns``). Idempotent."""

        def free() -> None:
            if self._runner is not None:
                self._runner.close()
                self._runner = None

        worker = self._worker
        if worker is None:
            self._call(free)
            return
        with contextlib.suppress(RuntimeError):  # already stopped
            worker.call(free)
        worker.stop(wait=True)


# --- the asyncio facade --------------------------------------------------------------------------


class NftBackend:
    """Async facade: a single worker thread owns the Nft context; calls are serialised, the event loop
    never blocks (ctypes drops the GIL).

    With ``netns``, the worker enters that namespace before creating the context (stack.md §1a);
    otherwise it stays in the namespace of the thread that constructs the backend.
    """

    def __init__(self, *, netns: str | None = None, mode: NftMode = "auto") -> None:
        """Start the worker and open its context (blocks for about a millisecond).

        Raises:
            OSError: ``netns`` cannot be entered.
            KernelError: neither libnftables nor ``nft`` is usable.
        """
        self._worker = _OwnerThread(netns, name=f"sharewall-nft-{netns or 'self'}")
        try:
            self._nft = self._worker.call(lambda: Nft(mode=mode))
        except BaseException:
            self._worker.stop(wait=True)
            raise
        self._closing: concurrent.futures.Future[None] | None = None

    @property
    def uses_library(self) -> bool:
        """True for the libnftables path, False for the ``nft`` subprocess fallback."""
        return self._nft.uses_library

    async def _in_worker(self, fn: Callable[[], T]) -> T:
        # If the awaiting task is cancelled once the call has started, the transaction still
        # completes (or fails) as a whole; it is never half-applied.
        return await asyncio.wrap_future(self._worker.submit(fn))

    async def apply(self, commands: list[dict[str, Any]]) -> None:
        """Apply ``commands`` as ONE transaction.

        Raises:
            KernelError: nft refused the batch; nothing was applied.
        """
        large = len(commands) > LARGE_TRANSACTION_COMMANDS or any(
            len(c.get("add", {}).get("element", {}).get("elem", ())) > LARGE_TRANSACTION_COMMANDS
            for c in commands
        )

        def run() -> None:
            self._nft.run_json(commands)
            if large:
                _release_freed_memory()

        await self._in_worker(run)

    async def run_json(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """As ``Nft.run_json``."""
        return await self._in_worker(lambda: self._nft.run_json(commands))

    async def check(self, commands: list[dict[str, Any]]) -> None:
        """Dry run, as ``Nft.check_json``."""
        await self._in_worker(lambda: self._nft.check_json(commands))

    async def list_table(self, family: str, name: str) -> list[dict[str, Any]] | None:
        """As ``Nft.list_table``."""
        return await self._in_worker(lambda: self._nft.list_table(family, name))

    async def table_exists(self, family: str, name: str) -> bool:
        """As ``Nft.table_exists``."""
        return await self._in_worker(lambda: self._nft.table_exists(family, name))

    async def delete_table(self, family: str, name: str) -> None:
        """As ``Nft.delete_table``."""
        await self._in_worker(lambda: self._nft.delete_table(family, name))

    def close(self) -> None:
        """Queue the context's release and the worker's end; calls already queued still run.
        Does not wait (use ``aclose()`` to wait). Idempotent."""
        if self._closing is None:
            self._closing = self._worker.submit(self._nft.close)
            self._worker.stop(wait=False)

    async def aclose(self) -> None:
        """Close, and wait until the worker has released the context."""
        self.close()
        assert self._closing is not None
        await asyncio.wrap_future(self._closing)
