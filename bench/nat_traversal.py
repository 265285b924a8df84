"""NAT traversal benchmark (issue 4): sharewall's UPnP IGD and NAT-PMP against Debian's miniupnpd.

Side by side in one run, in two labs of the same layout (namespaces ``sw-tb*``), with the same client:

- **sharewall lab**: sharewalld in the gateway namespace, sharing wan0 with lan0. Its configuration
  file holds ``[nat_traversal]`` with ``max_mappings_per_client = 20000`` and
  ``requests_per_second = 0`` (one client must reach 10,000 mappings: the default quota is 64) and the
  same permission rule as miniupnpd's.
- **miniupnpd lab**: Debian's miniupnpd (package ``miniupnpd-nftables``) in the gateway namespace with
  a configuration of ours (:data:`MINIUPNPD_CONF`: ``ext_ifname=wan0``, ``listening_ip=lan0``,
  secure mode, UPnP and NAT-PMP, ``allow 1024-65535 192.168.137.0/24 1024-65535``, a lease file, nft
  tables ``swb_upnp``/``swb_upnp_nat`` created here first, as its ``nft_init.sh`` would). lan0 gets
  192.168.137.1/24 by hand; nothing else runs there.

Both uplinks are readdressed to 11.0.0.0/24 inside the labs: miniupnpd refuses to forward ports when
its external address is reserved, and the lab's 198.51.100.0/24 is TEST-NET-2.

**The client** is one long-lived helper per lab in its ``lan1`` namespace (``python -m
bench.nat_traversal client``): the ``miniupnpc`` Python binding (discover once, then
``addportmapping`` / ``getgenericportmapping`` / ``deleteportmapping``, each a SOAP request on a new
TCP connection, as the library does) and a NAT-PMP client over one UDP socket built on
:mod:`sharewall.protocols.natpmp`. One request at a time; each is timed by the client (caller's clock).

**Levels**: 100, 1,000 and 10,000 existing TCP mappings of the client, each with a 3,600 s lease. At
each level, ``--rounds`` rounds alternate the two daemons (the order flips every round). A round, per
daemon:

- UPnP: ``--samples`` AddPortMapping of one more mapping each ("one more mapping" latency), then
  ``--gets`` GetGenericPortMappingEntry at indices spread over the whole table, then
  DeletePortMapping of the mappings just added, so the level stays put;
- NAT-PMP: ``--samples`` MAP requests (UDP, lifetime 3,600 s), then their deletions (lifetime 0).

Adds, gets and NAT-PMP deletions stop early (after at least :data:`MIN_SAMPLES`) once they have used
``--op-budget`` seconds in a round: miniupnpd's requests slow down with every mapping. NAT-PMP
mappings left over by the budget are deleted through UPnP, untimed. Rate = requests / the time they
took (one client, one at a time); ratio = sharewall's rate / miniupnpd's.

**Filling**: existing mappings are made through UPnP by the same client, except miniupnpd's beyond
``--upnp-fill-limit`` (1,000): each of its changes re-reads its whole nft chain over netlink, so
10,000 UPnP adds would take it over ten minutes. Instead it is stopped (its rules stay), the missing
mappings are written into its chains in the form it writes them (the same match expressions plus a
``meta l4proto`` match that nft's parser needs before a port NAT; a comment as the rule's userdata)
and appended to its lease file, and it is started again: it takes every mapping over with its lease,
as after any restart. (Rules it has no lease for are not equivalent: it logs a warning for each on
every walk of its table.) Before each level is measured, each daemon is checked through
GetGenericPortMappingEntry: exactly ``level`` entries, each with a lease left.

**Fairness notes**: both persist their mappings: sharewall in SQLite (fsync'd) and miniupnpd in its
lease file (not synced), both in the lab's directory under /run/sharewall-lab (the results name its
file system). miniupnpd runs as a daemon, without ``-d``: ``-d`` also turns on debug logging of
every rule it reads on every change, which made it another ~10x slower. It logs through syslog(3) with LOG_CONS and this machine has no
/dev/log, so it runs in a private mount namespace where /dev/console is /dev/null (its messages would
otherwise be written to the machine's console). This process makes itself a child subreaper, so the
daemonized miniupnpd stays its child, is stopped by its pid and reaped. ``clean_ruleset_interval=0``:
miniupnpd would otherwise delete idle mappings while the benchmark runs.

Impure: namespaces, processes, nft tables in the labs, files under ``/run/sharewall-lab``; never the
root namespace. Run: ``python -m bench.nat_traversal [--quick]`` as root (``scripts/bench`` too);
about 2.5 minutes on a 2-core VM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.common import (
    REPO,
    Target,
    distribution,
    filesystem_of,
    interrupt_on_sigterm,
    lab_session,
    machine_info,
    python_in_ns,
    save_results,
    stop_process,
    vm_rss_kib,
)
from bench.controlplane import FLAT_RATIO
from sharewall.api.client import Client
from sharewall.lab import Lab
from sharewall.lab_demo import lab_dir, socket_path, start_daemon

MODULE = "bench.nat_traversal"

# The labs' uplink, readdressed (inside the labs) to a network that is not reserved.
PUBLIC_GW = "11.0.0.1"
PUBLIC_INET = "11.0.0.2"
PUBLIC_PREFIXLEN = 24

LEASE_S = 3600
FILL_FIRST_PORT = 20000  # existing mappings: TCP 20000.. (internal port = external port)
PROBE_FIRST_PORT = 40000  # measured UPnP adds (TCP) and NAT-PMP maps (UDP): 40000..
TOUCH_PORT = 39999  # TCP: one untimed add + delete before each level (miniupnpd re-reads its chain)
MIN_SAMPLES = 5
NATPMP_PORT = 5351
NATPMP_TIMEOUT_S = 5.0
NATPMP_TRIES = 2
DISCOVER_TRIES = 5
MAX_FAILURES = 5  # a helper gives up an operation after this many refused requests
MAX_CLIENT_COMMANDS = 10_000
RESTART_WAIT_S = 180.0  # miniupnpd re-reading 10,000 leases after a restart

SHAREWALL_SETTINGS = f"""\
# Written by {MODULE}: one client must reach 10,000 mappings; no rate limit.
[nat_traversal]
max_mappings_per_client = 20000
requests_per_second = 0

[[nat_traversal.rules]]
action = "allow"
external_ports = [1024, 65535]
clients = "{Lab.LAN_NET}"
internal_ports = [1024, 65535]
"""

MINIUPNPD = Path("/usr/sbin/miniupnpd")
MINIUPNPD_PACKAGE = "miniupnpd-nftables"
MINIUPNPD_TABLE = "swb_upnp"
MINIUPNPD_NAT_TABLE = "swb_upnp_nat"
MINIUPNPD_FORWARD_CHAIN = "swb_fwd"
MINIUPNPD_PREROUTING_CHAIN = "swb_pre"
MINIUPNPD_POSTROUTING_CHAIN = "swb_post"

MINIUPNPD_CONF = f"""\
ext_ifname={Lab.GW_WAN_IF}
listening_ip={Lab.GW_LAN_IF}
http_port=2869
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
ipv6_disable=yes
system_uptime=yes
notify_interval=60
clean_ruleset_interval=0
force_igd_desc_v1=yes
uuid=0b6c1a4e-5f2d-4b8e-9a1c-3d7e2f6a8b90
upnp_table_name={MINIUPNPD_TABLE}
upnp_nat_table_name={MINIUPNPD_NAT_TABLE}
upnp_forward_chain={MINIUPNPD_FORWARD_CHAIN}
upnp_nat_chain={MINIUPNPD_PREROUTING_CHAIN}
upnp_nat_postrouting_chain={MINIUPNPD_POSTROUTING_CHAIN}
allow 1024-65535 {Lab.LAN_NET} 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
"""  # + lease_file=<the lab's directory>/miniupnpd.leases (see miniupnpd_conf)


def miniupnpd_conf(lease_file: Path) -> str:
    """Our miniupnpd configuration, keeping its leases in ``lease_file`` (as sharewall keeps its)."""
    return f"{MINIUPNPD_CONF}lease_file={lease_file}\n"


# miniupnpd logs through syslog(3) with LOG_CONS: without a /dev/log (none on this machine) every
# message goes to /dev/console, the machine's console. It runs in a private mount namespace where
# /dev/console is /dev/null. `ip netns exec` + `unshare` exec in place: no process in between.
MINIUPNPD_LAUNCH = 'mount --bind /dev/null /dev/console && exec "$0" "$@"'

# What miniupnpd's nft_init.sh builds, with our names (miniupnpd 2.3.1 does not create them).
MINIUPNPD_TABLES = f"""\
table inet {MINIUPNPD_TABLE} {{
  chain forward {{ type filter hook forward priority 0; policy accept; jump {MINIUPNPD_FORWARD_CHAIN}; }}
  chain {MINIUPNPD_FORWARD_CHAIN} {{ }}
}}
table inet {MINIUPNPD_NAT_TABLE} {{
  chain prerouting {{ type nat hook prerouting priority -100; policy accept; jump {MINIUPNPD_PREROUTING_CHAIN}; }}
  chain postrouting {{ type nat hook postrouting priority 100; policy accept; jump {MINIUPNPD_POSTROUTING_CHAIN}; }}
  chain {MINIUPNPD_PREROUTING_CHAIN} {{ }}
  chain {MINIUPNPD_POSTROUTING_CHAIN} {{ }}
}}
"""

PR_SET_CHILD_SUBREAPER = 36


def _ms(seconds: float) -> float:
    return seconds * 1000


# =================================================================================================
# The client helper (runs in a lab's LAN namespace)
# =================================================================================================


class NatPmpClient:
    """NAT-PMP over one connected UDP socket, with sharewall's own encoder and parser."""

    def __init__(self, me: str, gateway: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((me, 0))
        self.sock.connect((gateway, NATPMP_PORT))
        self.retries = 0

    def map(self, internal_port: int, external_port: int, lifetime_s: int) -> tuple[int, int]:
        """One MAP (UDP) request; (result code, external port) of its answer.

        Raises:
            TimeoutError: no answer after :data:`NATPMP_TRIES` sends.
        """
        from sharewall.protocols import natpmp

        request = natpmp.MapRequest(
            protocol=socket.IPPROTO_UDP,
            internal_port=internal_port,
            suggested_external_port=external_port,
            lifetime_s=lifetime_s,
        )
        data = natpmp.render_request(request)
        for attempt in range(NATPMP_TRIES):
            if attempt:
                self.retries += 1
            self.sock.send(data)
            deadline = time.monotonic() + NATPMP_TIMEOUT_S
            # Bounded: every pass either returns, or reads one datagram, or times out.
            for _ in range(64):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.sock.settimeout(remaining)
                try:
                    answer = natpmp.parse_response(self.sock.recv(2048))
                except TimeoutError:
                    break
                if isinstance(answer, natpmp.ErrorResponse):
                    return answer.result_code, 0
                if isinstance(answer, natpmp.MapResponse) and (
                    answer.internal_port == internal_port
                ):
                    return answer.result_code, answer.external_port
        raise TimeoutError(f"no NAT-PMP answer for internal port {internal_port}")


@dataclass
class ClientState:
    upnp: Any  # miniupnpc.UPnP (untyped C extension)
    lan_address: str
    natpmp: NatPmpClient


def _short_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:200]


def op_fill(state: ClientState, first_port: int, count: int, budget_s: float) -> dict[str, Any]:
    """Add ``count`` TCP mappings ``first_port..`` (external = internal port) through UPnP."""
    start = time.perf_counter()
    added = 0
    failures: list[str] = []
    for port in range(first_port, first_port + count):
        if time.perf_counter() - start > budget_s or len(failures) >= MAX_FAILURES:
            break
        try:
            state.upnp.addportmapping(port, "TCP", state.lan_address, port, "fill", "", LEASE_S)
            added += 1
        except Exception as err:
            failures.append(f"{port}: {_short_error(err)}")
    return {"added": added, "seconds": round(time.perf_counter() - start, 3), "failures": failures}


def op_touch(state: ClientState, wait_s: float = 0.0) -> dict[str, Any]:
    """One untimed add and delete (miniupnpd re-reads its chains after a change of its own).

    With ``wait_s``, retry until the IGD answers (a daemon that has just been restarted).
    """
    deadline = time.monotonic() + wait_s
    start = time.perf_counter()
    for attempt in range(10_000):
        try:
            state.upnp.addportmapping(
                TOUCH_PORT, "TCP", state.lan_address, TOUCH_PORT, "touch", "", 60
            )
            state.upnp.deleteportmapping(TOUCH_PORT, "TCP")
            return {"attempts": attempt + 1, "seconds": round(time.perf_counter() - start, 3)}
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    raise RuntimeError("the IGD never answered")


def op_verify(state: ClientState, level: int) -> dict[str, Any]:
    """Whether the IGD lists exactly ``level`` mappings (index level-1 exists, index level not),
    and the lease each of a few of them has left (0 would mean "permanent": not what was asked)."""

    def entry(index: int) -> Any:
        try:
            return state.upnp.getgenericportmapping(index)
        except Exception:  # the binding raises on some faults instead of returning None
            return None

    sampled = [entry(index) for index in sorted({0, level // 2, level - 1})] if level else []
    beyond = entry(level)
    return {
        "listed": all(found is not None for found in sampled),
        "beyond_exists": beyond is not None,
        # (external port, protocol, lease left) of each sampled entry
        "sampled": [None if e is None else [e[0], e[1], e[6]] for e in sampled],
        "leases_left_s": [int(e[6]) for e in sampled if e is not None],
    }


def _spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``."""
    if total <= 0 or count <= 0:
        return []
    return [i * total // count for i in range(count)]


def op_upnp(
    state: ClientState, first_port: int, samples: int, level: int, gets: int, budget_s: float
) -> dict[str, Any]:
    """Time ``samples`` AddPortMapping, ``gets`` GetGenericPortMappingEntry, then the deletes."""
    upnp = state.upnp
    add_ms: list[float] = []
    added: list[int] = []
    failures: list[str] = []
    start = time.perf_counter()
    for port in range(first_port, first_port + samples):
        if len(add_ms) >= MIN_SAMPLES and time.perf_counter() - start > budget_s:
            break
        if len(failures) >= MAX_FAILURES:
            break
        began = time.perf_counter()
        try:
            upnp.addportmapping(port, "TCP", state.lan_address, port, "bench", "", LEASE_S)
        except Exception as err:
            failures.append(f"add {port}: {_short_error(err)}")
            continue
        add_ms.append(_ms(time.perf_counter() - began))
        added.append(port)
    get_ms: list[float] = []
    get_misses = 0
    start = time.perf_counter()
    for index in _spread(level + len(added), gets):
        if len(get_ms) >= MIN_SAMPLES and time.perf_counter() - start > budget_s:
            break
        began = time.perf_counter()
        try:
            found = upnp.getgenericportmapping(index)
        except Exception as err:
            failures.append(f"get {index}: {_short_error(err)}")
            found = None
        get_ms.append(_ms(time.perf_counter() - began))
        get_misses += found is None
    delete_ms: list[float] = []
    left_over = 0
    for port in added:  # all of them (as many as the adds took time): the level must stay put
        began = time.perf_counter()
        try:
            upnp.deleteportmapping(port, "TCP")
        except Exception as err:
            failures.append(f"delete {port}: {_short_error(err)}")
            left_over += 1
            continue
        delete_ms.append(_ms(time.perf_counter() - began))
    return {
        "add_ms": add_ms,
        "get_ms": get_ms,
        "get_misses": get_misses,
        "delete_ms": delete_ms,
        "left_over": left_over,
        "failures": failures,
    }


def op_natpmp(state: ClientState, first_port: int, samples: int, budget_s: float) -> dict[str, Any]:
    """Time ``samples`` NAT-PMP MAP requests (UDP), then the deletions (lifetime 0)."""
    client = state.natpmp
    map_ms: list[float] = []
    mapped: list[int] = []
    moved = 0
    failures: list[str] = []
    start = time.perf_counter()
    for port in range(first_port, first_port + samples):
        if len(map_ms) >= MIN_SAMPLES and time.perf_counter() - start > budget_s:
            break
        if len(failures) >= MAX_FAILURES:
            break
        began = time.perf_counter()
        try:
            code, external = client.map(port, port, LEASE_S)
        except TimeoutError as err:
            failures.append(f"map {port}: {_short_error(err)}")
            continue
        elapsed = time.perf_counter() - began
        if code != 0:
            failures.append(f"map {port}: result code {code}")
            continue
        map_ms.append(_ms(elapsed))
        mapped.append(port)
        moved += external != port
    delete_ms: list[float] = []
    left: list[int] = []
    start = time.perf_counter()
    for port in mapped:
        if len(delete_ms) >= MIN_SAMPLES and time.perf_counter() - start > budget_s:
            left.append(port)
            continue
        began = time.perf_counter()
        try:
            code, _ = client.map(port, 0, 0)
        except TimeoutError as err:
            failures.append(f"delete {port}: {_short_error(err)}")
            left.append(port)
            continue
        elapsed = time.perf_counter() - began
        if code != 0:
            failures.append(f"delete {port}: result code {code}")
            left.append(port)
            continue
        delete_ms.append(_ms(elapsed))
    # Over the budget: the rest go through UPnP (untimed), so that the level stays put.
    left_over = 0
    for port in left:
        try:
            state.upnp.deleteportmapping(port, "UDP")
        except Exception as err:
            failures.append(f"cleanup {port}: {_short_error(err)}")
            left_over += 1
    return {
        "map_ms": map_ms,
        "delete_ms": delete_ms,
        "deleted_through_upnp": len(left) - left_over,
        "left_over": left_over,
        "moved": moved,
        "retries": client.retries,
        "failures": failures,
    }


def _reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def client_main(gateway: str) -> int:
    """The helper: discover the IGD once, then answer one JSON command per stdin line."""
    import miniupnpc

    upnp = miniupnpc.UPnP()
    upnp.discoverdelay = 1000
    control_url: str | None = None
    problems: list[str] = []
    for _ in range(DISCOVER_TRIES):
        try:
            if upnp.discover() > 0:
                control_url = str(upnp.selectigd())
                break
            problems.append("no device answered")
        except Exception as err:
            problems.append(_short_error(err))
    if control_url is None:
        _reply({"error": f"no IGD found: {problems}"})
        return 1
    state = ClientState(upnp, str(upnp.lanaddr), NatPmpClient(str(upnp.lanaddr), gateway))
    _reply(
        {
            "ready": True,
            "control_url": control_url,
            "lan_address": state.lan_address,
            "external_address": str(upnp.externalipaddress()),
        }
    )
    operations: dict[str, Callable[..., dict[str, Any]]] = {
        "fill": op_fill,
        "touch": op_touch,
        "verify": op_verify,
        "upnp": op_upnp,
        "natpmp": op_natpmp,
    }
    for _ in range(MAX_CLIENT_COMMANDS):
        line = sys.stdin.readline()
        if not line:
            break
        command = json.loads(line)
        name = command.pop("op")
        if name == "quit":
            _reply({"bye": True})
            break
        try:
            _reply(operations[name](state, **command))
        except Exception as err:
            _reply({"error": _short_error(err)})
    return 0


# =================================================================================================
# The orchestrator (root namespace; only its helpers and daemons run inside the labs)
# =================================================================================================


class Worker:
    """The client helper in a lab's lan1 namespace, driven one JSON line at a time."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.name = name
        self.stderr_path = lab_dir(lab.prefix) / f"client-{name}.log"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                python_in_ns(lab, "lan1", MODULE, "client", "--gateway", Lab.LAN_GW),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO,
                start_new_session=True,
            )
        self._buffer = b""
        self.hello = self._read(timeout_s=60)
        if "error" in self.hello:
            raise RuntimeError(f"{name} client: {self.hello['error']}")

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name} client gave no answer in {timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                tail = self.stderr_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} client exited: {tail}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        decoded = json.loads(line)
        if not isinstance(decoded, dict):
            raise RuntimeError(f"{self.name} client printed {line!r}")
        return decoded

    def call(self, op: str, *, timeout_s: float, **args: Any) -> dict[str, Any]:
        """Run one operation in the helper; its JSON answer.

        Raises:
            RuntimeError: the helper reported an error or died.
            TimeoutError: it did not answer in ``timeout_s``.
        """
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._read(timeout_s)
        if "error" in answer:
            raise RuntimeError(f"{self.name} client, {op}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError, ValueError):
                self.call("quit", timeout_s=5)
        stop_process(self.proc)


class Contender(Protocol):
    name: str
    can_seed: bool

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pid(self) -> int: ...
    def seed(self, first_port: int, count: int, target: str) -> None: ...
    def describe(self) -> dict[str, Any]: ...


def public_uplink(lab: Lab) -> None:
    """Readdress the lab's uplink with a network that is not reserved (lab namespaces only)."""
    lab.run("gw", "ip", "addr", "del", f"{Lab.WAN_GW}/{Lab.WAN_PREFIXLEN}", "dev", Lab.GW_WAN_IF)
    lab.run("gw", "ip", "addr", "add", f"{PUBLIC_GW}/{PUBLIC_PREFIXLEN}", "dev", Lab.GW_WAN_IF)
    lab.run("gw", "ip", "route", "replace", "default", "via", PUBLIC_INET)
    lab.run("inet", "ip", "addr", "del", f"{Lab.INET}/{Lab.WAN_PREFIXLEN}", "dev", Lab.HOST_IF)
    lab.run("inet", "ip", "addr", "add", f"{PUBLIC_INET}/{PUBLIC_PREFIXLEN}", "dev", Lab.HOST_IF)


@dataclass
class Sharewall:
    """sharewalld in the lab's gateway namespace, sharing wan0 with lan0."""

    lab: Lab
    name: str = "sharewall"
    can_seed: bool = False
    daemon: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        base = lab_dir(self.lab.prefix)
        base.mkdir(parents=True, exist_ok=True)
        # start_daemon passes this path as --config: the [nat_traversal] table is read at start.
        (base / "sharewall.toml").write_text(SHAREWALL_SETTINGS, encoding="utf-8")
        self.daemon = start_daemon(self.lab)
        with Client(str(socket_path(self.lab.prefix)), timeout=30) as client:
            client.share(Lab.GW_WAN_IF, [Lab.GW_LAN_IF])
            deadline = time.monotonic() + 15
            while client.status()["sharing"]["public_address"] != PUBLIC_GW:
                if time.monotonic() > deadline:
                    raise RuntimeError("sharewalld did not see the public address in 15 s")
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.daemon, grace_s=10)

    def pid(self) -> int:
        assert self.daemon is not None
        return self.daemon.pid

    def seed(self, first_port: int, count: int, target: str) -> None:
        raise NotImplementedError("sharewall is filled through UPnP only")

    def describe(self) -> dict[str, Any]:
        base = lab_dir(self.lab.prefix)
        return {
            "daemon": "sharewalld (python -m sharewall.daemon.main), started by lab_demo.start_daemon",
            "settings": SHAREWALL_SETTINGS,
            "state_dir_filesystem": filesystem_of(base),
        }


def become_subreaper() -> None:
    """Orphans among our descendants (the daemonized miniupnpd) become our children, so we reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def reap_orphans(limit: int = 256) -> None:
    """Collect exit statuses of adopted orphans (zombies), without blocking."""
    for _ in range(limit):
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _package_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout.strip() or "unknown"


@dataclass
class Miniupnpd:
    """Debian's miniupnpd (nftables build) in the lab's gateway namespace, with our configuration."""

    lab: Lab
    name: str = "miniupnpd"
    can_seed: bool = True
    daemon_pid: int | None = None
    seeded: int = 0
    seed_nft_seconds: list[float] = field(default_factory=list)

    @property
    def base(self) -> Path:
        return lab_dir(self.lab.prefix)

    @property
    def lease_file(self) -> Path:
        return self.base / "miniupnpd.leases"

    def _nft_file(self, path: Path, *, timeout: float = 30) -> None:
        self.lab.run("gw", "nft", "-f", str(path), timeout=timeout)

    def start(self) -> None:
        """First start: address lan0, create miniupnpd's tables, write the configuration, launch."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.lab.run("gw", "ip", "addr", "add", f"{Lab.LAN_GW}/24", "dev", Lab.GW_LAN_IF)
        tables = self.base / "miniupnpd-tables.nft"
        tables.write_text(MINIUPNPD_TABLES, encoding="ascii")
        self._nft_file(tables)
        (self.base / "miniupnpd.conf").write_text(miniupnpd_conf(self.lease_file), encoding="ascii")
        self._launch()

    def _launch(self) -> None:
        pidfile = self.base / "miniupnpd.pid"
        pidfile.unlink(missing_ok=True)
        # Daemon mode (no -d: see the module docstring). miniupnpd forks and its first process
        # exits; the daemon is adopted by this process (a child subreaper).
        launcher = subprocess.run(
            ["ip", "netns", "exec", self.lab.ns("gw"), "unshare", "--mount", "--propagation",
             "private", "--", "sh", "-c", MINIUPNPD_LAUNCH, str(MINIUPNPD),
             "-f", str(self.base / "miniupnpd.conf"), "-P", str(pidfile)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if launcher.returncode != 0:
            raise RuntimeError(f"miniupnpd exited {launcher.returncode}: {launcher.stderr}")
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("miniupnpd wrote no pid file in 10 s")
            time.sleep(0.05)
        self.daemon_pid = int(pidfile.read_text().strip())
        if self.daemon_pid not in _namespace_pids(self.lab.ns("gw")):
            raise RuntimeError("miniupnpd is not running in the lab's gateway namespace")

    def stop(self) -> None:
        pid, self.daemon_pid = self.daemon_pid, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 5.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)

    def pid(self) -> int:
        assert self.daemon_pid is not None
        return self.daemon_pid

    def _redirect_rules(self) -> int:
        listing = self.lab.run(
            "gw", "nft", "list", "chain", "inet", MINIUPNPD_NAT_TABLE, MINIUPNPD_PREROUTING_CHAIN
        )
        return listing.stdout.count(" dnat ")

    def seed(self, first_port: int, count: int, target: str) -> None:
        """Add ``count`` TCP mappings to ``target`` as miniupnpd's own restart would find them.

        miniupnpd is stopped (it leaves its rules in place), the mappings are written into its
        chains in the form it writes them and appended to its lease file, and it is started
        again: it reads the lease file and takes each mapping over with its lease (its
        ``reload_from_lease_file``). The caller waits until it answers again.
        """
        self.stop()
        before = self._redirect_rules()
        target_hex = f"0x{int(ipaddress.IPv4Address(target)):08x}"
        rules = []
        leases = []
        expires = int(time.time()) + LEASE_S  # the lease file holds Unix time
        for port in range(first_port, first_port + count):
            rules.append(
                f"add rule inet {MINIUPNPD_NAT_TABLE} {MINIUPNPD_PREROUTING_CHAIN} "
                f'iif "{Lab.GW_WAN_IF}" @nh,72,8 0x6 th dport {port} meta l4proto tcp '
                f'dnat ip to {target}:{port} comment "seed"'
            )
            rules.append(
                f"add rule inet {MINIUPNPD_TABLE} {MINIUPNPD_FORWARD_CHAIN} "
                f'iif "{Lab.GW_WAN_IF}" th dport {port} @nh,128,32 {target_hex} @nh,72,8 0x6 '
                f'accept comment "seed"'
            )
            leases.append(f"TCP:{port}:{target}:{port}:{expires}:fill\n")
        path = self.base / f"miniupnpd-seed-{first_port}.nft"
        path.write_text("\n".join(rules) + "\n", encoding="ascii")
        start = time.perf_counter()
        self._nft_file(path, timeout=300)
        self.seed_nft_seconds.append(round(time.perf_counter() - start, 3))
        path.unlink()
        if self._redirect_rules() != before + count:
            raise RuntimeError(
                f"miniupnpd's chain holds {self._redirect_rules()} rules, not {before + count}"
            )
        with self.lease_file.open("a", encoding="ascii") as lease_file:
            lease_file.writelines(leases)
        self.seeded += count
        self._launch()

    def describe(self) -> dict[str, Any]:
        return {
            "binary": str(MINIUPNPD),
            "package": f"{MINIUPNPD_PACKAGE} {_package_version(MINIUPNPD_PACKAGE)}",
            "mode": "daemon (no -d: -d also logs every rule read at debug level), in a private "
            "mount namespace where /dev/console is /dev/null",
            "config": miniupnpd_conf(Path("<lab>/miniupnpd.leases")),
            "seeded_mappings": self.seeded,
            "seed_nft_seconds": self.seed_nft_seconds,
        }


def _namespace_pids(namespace: str) -> set[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=10, check=False
    )
    return {int(word) for word in result.stdout.split()}


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Reap ``pid`` (our child or adopted orphan) or see it vanish; False if still alive."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return True
        except ChildProcessError:  # not ours to reap: watch it instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    levels: tuple[int, ...]
    samples: int
    gets: int
    rounds: int
    op_budget_s: float
    upnp_fill_limit: int
    max_seconds: float


@dataclass
class Side:
    """One daemon with its client, and what has been measured at the current level."""

    contender: Contender
    worker: Worker
    existing: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, values: Sequence[float]) -> None:
        self.samples.setdefault(key, []).extend(values)


def _op_summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {**distribution(values), "per_second": round(len(values) / (sum(values) / 1000), 1)}


def fill_to(side: Side, level: int, params: Params, log: Callable[[str], None]) -> dict[str, Any]:
    """Bring ``side`` to ``level`` existing mappings: through UPnP, or seeded beyond the limit."""
    record: dict[str, Any] = {"upnp_added": 0, "upnp_seconds": 0.0, "seeded": 0}
    if level <= side.existing:
        return record
    upnp_until = level
    if side.contender.can_seed:
        upnp_until = max(side.existing, min(level, params.upnp_fill_limit))
    count = upnp_until - side.existing
    if count > 0:
        answer = side.worker.call(
            "fill",
            first_port=FILL_FIRST_PORT + side.existing,
            count=count,
            budget_s=params.max_seconds,
            timeout_s=params.max_seconds + 60,
        )
        if answer["added"] != count:
            raise RuntimeError(
                f"{side.contender.name}: filled {answer['added']} of {count}: {answer}"
            )
        record["upnp_added"] = count
        record["upnp_seconds"] = answer["seconds"]
        side.existing = upnp_until
    seeded = level - side.existing
    restart = ""
    if seeded > 0:
        side.contender.seed(FILL_FIRST_PORT + side.existing, seeded, Lab.LAN1)
        side.existing = level
        # Restarted: the first answer comes once it has taken over every lease.
        answer = side.worker.call("touch", wait_s=RESTART_WAIT_S, timeout_s=RESTART_WAIT_S + 60)
        record["seeded"] = seeded
        record["restart_seconds"] = answer["seconds"]
        restart = f", restarted with all {level:,} from its lease file in {answer['seconds']} s"
    log(
        f"  {side.contender.name}: {level:,} existing ({record['upnp_added']:,} more through UPnP "
        f"in {record['upnp_seconds']} s, {record['seeded']:,} seeded{restart})"
    )
    return record


def check_level(side: Side, level: int) -> dict[str, Any]:
    """The IGD lists exactly ``level`` mappings, each with a lease; raises otherwise."""
    side.worker.call("touch", timeout_s=120)
    seen = side.worker.call("verify", level=level, timeout_s=120)
    leases = seen["leases_left_s"]
    if not seen["listed"] or seen["beyond_exists"] or not all(0 < s <= LEASE_S for s in leases):
        raise RuntimeError(f"{side.contender.name} does not list {level} leased mappings: {seen}")
    return seen


def measure_round(side: Side, level: int, params: Params) -> None:
    timeout_s = 4 * params.op_budget_s + 120
    upnp = side.worker.call(
        "upnp",
        first_port=PROBE_FIRST_PORT,
        samples=params.samples,
        level=level,
        gets=params.gets,
        budget_s=params.op_budget_s,
        timeout_s=timeout_s,
    )
    side.add("upnp_add_ms", upnp["add_ms"])
    side.add("upnp_get_ms", upnp["get_ms"])
    side.add("upnp_delete_ms", upnp["delete_ms"])
    natpmp = side.worker.call(
        "natpmp",
        first_port=PROBE_FIRST_PORT,
        samples=params.samples,
        budget_s=params.op_budget_s,
        timeout_s=timeout_s,
    )
    side.add("natpmp_map_ms", natpmp["map_ms"])
    side.add("natpmp_delete_ms", natpmp["delete_ms"])
    notes = side.notes
    notes["get_misses"] = notes.get("get_misses", 0) + upnp["get_misses"]
    notes["natpmp_moved"] = notes.get("natpmp_moved", 0) + natpmp["moved"]
    notes["natpmp_retries"] = natpmp["retries"]
    notes["natpmp_deleted_through_upnp"] = (
        notes.get("natpmp_deleted_through_upnp", 0) + natpmp["deleted_through_upnp"]
    )
    notes.setdefault("failures", []).extend((upnp["failures"] + natpmp["failures"])[:5])
    if upnp["left_over"] or natpmp["left_over"]:
        raise RuntimeError(f"{side.contender.name}: a delete failed, the level moved: {notes}")


OPERATIONS = {
    "upnp_add": ("upnp_add_ms", "UPnP AddPortMapping"),
    "upnp_delete": ("upnp_delete_ms", "UPnP DeletePortMapping"),
    "upnp_get": ("upnp_get_ms", "UPnP GetGenericPortMappingEntry"),
    "natpmp_map": ("natpmp_map_ms", "NAT-PMP map"),
    "natpmp_delete": ("natpmp_delete_ms", "NAT-PMP delete"),
}


def measure_level(
    sides: list[Side], level: int, params: Params, log: Callable[[str], None]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"existing": level, "fill": {}}
    for side in sides:
        entry["fill"][side.contender.name] = fill_to(side, level, params, log)
        entry["fill"][side.contender.name]["verified"] = check_level(side, level)
        side.samples = {}
        side.notes = {}
    for number in range(params.rounds):
        order = sides if number % 2 == 0 else sides[::-1]
        for side in order:
            measure_round(side, level, params)
    for side in sides:
        entry[side.contender.name] = {
            **{op: _op_summary(side.samples.get(key, [])) for op, (key, _) in OPERATIONS.items()},
            "rss_kib": vm_rss_kib(side.contender.pid()),
            "notes": side.notes,
        }
    ours, theirs = entry[sides[0].contender.name], entry[sides[1].contender.name]
    entry["rate_ratio"] = {
        op: round(ours[op]["per_second"] / theirs[op]["per_second"], 2)
        for op in OPERATIONS
        if ours[op]["n"] and theirs[op]["n"]
    }
    for op, (_, label) in OPERATIONS.items():
        if op in entry["rate_ratio"]:
            log(
                f"  {level:>6,} existing, {label:<32} sharewall {ours[op]['per_second']:>8}/s "
                f"(p50 {ours[op]['p50']} ms)  miniupnpd {theirs[op]['per_second']:>8}/s "
                f"(p50 {theirs[op]['p50']} ms)  ratio {entry['rate_ratio'][op]}x"
            )
    return entry


def run_benchmark(params: Params, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    machine = machine_info()
    levels: list[dict[str, Any]] = []
    described: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        sides: list[Side] = []
        for tag, factory in (("ns", Sharewall), ("nm", Miniupnpd)):
            lab = stack.enter_context(lab_session(tag))
            public_uplink(lab)
            contender: Contender = factory(lab)
            stack.callback(contender.stop)
            contender.start()
            worker = Worker(lab, contender.name)
            stack.callback(worker.close)
            if worker.hello["external_address"] != PUBLIC_GW:
                raise RuntimeError(f"{contender.name} reports {worker.hello}")
            log(f"{contender.name}: client found {worker.hello['control_url']}")
            sides.append(Side(contender, worker))
        for level in params.levels:
            if time.perf_counter() - began > params.max_seconds:
                raise RuntimeError(f"over the time budget of {params.max_seconds:.0f} s")
            log(f"level {level:,}")
            levels.append(measure_level(sides, level, params, log))
        for side in sides:
            described[side.contender.name] = side.contender.describe()
    reap_orphans()
    return {
        "benchmark": "nat_traversal",
        "machine": machine,
        "method": {
            "levels": list(params.levels),
            "samples_per_round": params.samples,
            "gets_per_round": params.gets,
            "rounds": params.rounds,
            "op_budget_s": params.op_budget_s,
            "min_samples": MIN_SAMPLES,
            "upnp_fill_limit": params.upnp_fill_limit,
            "lease_s": LEASE_S,
            "client": "one helper per lab in lan1: miniupnpc Python binding (discover once; each "
            "call a new TCP connection) and NAT-PMP over one UDP socket with "
            "sharewall.protocols.natpmp; one request at a time, caller's clock",
            "rate": "requests / the time they took (sequential, one client)",
            "ratio": "sharewall rate / miniupnpd rate",
            "fill": "UPnP AddPortMapping by the same client; miniupnpd beyond upnp_fill_limit: "
            "rules written into its chains as it writes them (see the module docstring)",
            "uplink": f"readdressed to {PUBLIC_GW}/{PUBLIC_PREFIXLEN} in both labs",
        },
        "contenders": described,
        "levels": levels,
        "targets": [target.as_dict() for target in targets(levels, params)],
        "duration_seconds": round(time.perf_counter() - began, 1),
    }


def targets(levels: list[dict[str, Any]], params: Params) -> list[Target]:
    by_level = {entry["existing"]: entry for entry in levels}
    middle = 1000 if 1000 in by_level else params.levels[len(params.levels) // 2]
    low, high = params.levels[0], params.levels[-1]
    found: list[Target] = []
    for op, label in (("upnp_add", "UPnP AddPortMapping"), ("natpmp_map", "NAT-PMP map")):
        ratio = by_level[middle]["rate_ratio"].get(op)
        if ratio is not None:
            found.append(
                Target(
                    f"{label} rate with {middle:,} existing: sharewall / miniupnpd",
                    ratio,
                    ">=",
                    10.0,
                    "x",
                )
            )
        ours_low = by_level[low]["sharewall"][op]
        ours_high = by_level[high]["sharewall"][op]
        if ours_low["n"] and ours_high["n"]:
            found.append(
                Target(
                    f"flat: sharewall {label} p50 with {high:,} / with {low:,}",
                    ours_high["p50"] / ours_low["p50"],
                    "<=",
                    FLAT_RATIO,
                    "x",
                    f"'flat' taken as within {FLAT_RATIO}x (as in bench.controlplane)",
                )
            )
    return found


def summary_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables: rates and ratios per level, then the targets."""
    lines = [
        "| existing | request | sharewall /s (p50 ms) | miniupnpd /s (p50 ms) | ratio |",
        "|---:|---|---:|---:|---:|",
    ]
    for entry in results["levels"]:
        for op, (_, label) in OPERATIONS.items():
            ours, theirs = entry["sharewall"][op], entry["miniupnpd"][op]
            if not ours["n"] or not theirs["n"]:
                continue
            lines.append(
                f"| {entry['existing']:,} | {label} | {ours['per_second']:,} ({ours['p50']}) | "
                f"{theirs['per_second']:,} ({theirs['p50']}) | {entry['rate_ratio'][op]}x |"
            )
    lines += ["", "| target | measured | wanted | result |", "|---|---|---|---|"]
    for target in results["targets"]:
        lines.append(
            f"| {target['name']} | {target['value']:g} {target['unit']} | {target['op']} "
            f"{target['threshold']:g} {target['unit']} | "
            f"{'pass' if target['pass'] else '**MISS**'} |"
        )
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(part) for part in text.split(",") if part)
    if len(levels) < 2 or list(levels) != sorted(levels) or levels[0] < 1:
        raise argparse.ArgumentTypeError("at least two increasing levels, e.g. 100,1000,10000")
    if levels[-1] > PROBE_FIRST_PORT - FILL_FIRST_PORT - 1:
        raise argparse.ArgumentTypeError("at most 19,999 existing mappings")
    return levels


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole benchmark (the default)")
    run.add_argument("--levels", type=_levels, default=(100, 1000, 10000))
    run.add_argument("--samples", type=int, default=25, help="adds/maps per round and daemon")
    run.add_argument("--gets", type=int, default=50, help="GetGenericPortMappingEntry per round")
    run.add_argument("--rounds", type=int, default=2)
    run.add_argument("--op-budget", type=float, default=8.0, help="seconds per kind per round")
    run.add_argument("--upnp-fill-limit", type=int, default=1000)
    run.add_argument("--max-seconds", type=float, default=780.0, help="give up after this")
    run.add_argument("--quick", action="store_true", help="a small, fast run; no result file")
    run.add_argument("--out", type=Path, default=None)
    client = sub.add_parser("client", help="(in a lab's LAN namespace) the client helper")
    client.add_argument("--gateway", default=Lab.LAN_GW)
    arguments = list(argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "run")
    return parser.parse_args(arguments)


def _missing_prerequisites() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    if not MINIUPNPD.exists():
        missing.append(f"{MINIUPNPD} (apt-get install {MINIUPNPD_PACKAGE})")
    for tool in ("nft", "ip", "dpkg-query"):
        if shutil.which(tool) is None:
            missing.append(tool)
    try:
        import miniupnpc  # noqa: F401
    except ImportError:
        missing.append("the miniupnpc Python binding (pip install miniupnpc)")
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.command == "client":
        return client_main(args.gateway)
    missing = _missing_prerequisites()
    if missing:
        print(f"the NAT traversal benchmark needs: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.quick:
        params = Params((100, 500), 8, 10, 1, 3.0, 200, 300.0)
    else:
        params = Params(
            args.levels,
            args.samples,
            args.gets,
            args.rounds,
            args.op_budget,
            args.upnp_fill_limit,
            args.max_seconds,
        )
    interrupt_on_sigterm()
    become_subreaper()
    results = run_benchmark(params, lambda line: print(line, flush=True))
    save_results("nat_traversal", results, args.out, quick=args.quick)
    print()
    print(summary_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
