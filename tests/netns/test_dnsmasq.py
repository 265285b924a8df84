"""dnsmasq on the private side, with real DHCP clients, in throwaway namespaces.

Topology (prefix ``sw-td<hex>``)::

    c1 (dhclient) eth0 --- lan0 192.168.137.1/24 \\
                                                   gw (DnsmasqSupervisor + dnsmasq) wan0 198.51.100.1/24
    c2 (udhcpc)   eth0 --- lan1 192.168.138.1/24 /                    |
                                                        up: wan1 198.51.100.2/24, a dnsmasq playing the
                                                            Internet's resolver (www.example.test)

The supervisor runs in ``gw`` inside a small asyncio harness (``ip netns exec gw python harness.py``)
driven over JSON lines on stdin/stdout, exactly as sharewalld runs it: in its current namespace.
Neither DHCP client may touch the host's /etc/resolv.conf: both run our own hook scripts, and the
test checks the host file's content and mtime before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.env import require_binary, require_root
from tests.support.netns import Netns, namespaces, unique_prefix, veth

pytestmark = [pytest.mark.netns, pytest.mark.interop]

UPSTREAM_NAME = "www.example.test"
UPSTREAM_ANSWER = "203.0.113.7"
C2_MAC = "02:00:5e:10:00:02"
C2_RESERVED = "192.168.138.50"

HARNESS = r"""
import asyncio, ipaddress, json, signal, sys
from pathlib import Path

from sharewall.backends.dnsmasq import (
    DnsmasqSupervisor, default_run_as_user, detect_other_dhcp_server, read_leases,
    write_dhcp_script,
)
from sharewall.compiler.dnsmasq import (
    DnsmasqPaths, PrivateNetwork, render_dnsmasq_config, render_hosts_file,
)
from sharewall.model.dhcp import DhcpSettings, make_reservation

state = Path(sys.argv[1])
networks = [
    PrivateNetwork("lan0", ipaddress.IPv4Interface("192.168.137.1/24")),
    PrivateNetwork("lan1", ipaddress.IPv4Interface("192.168.138.1/24")),
]
paths = DnsmasqPaths(
    conf_file=str(state / "dnsmasq.conf"),
    lease_file=str(state / "leases"),
    hosts_file=str(state / "reservations"),
    script=str(state / "dhcp-event"),
    pid_file=str(state / "dnsmasq.pid"),
)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def on_event(event):
    emit({"type": "event", "kind": str(event.kind), "mac": event.mac, "ip": event.ip,
          "hostname": event.hostname, "interface": event.interface})


async def main():
    write_dhcp_script(Path(paths.script), state / "events.sock")
    sup = DnsmasqSupervisor(paths, on_lease_event=on_event, event_socket=state / "events.sock")
    config = render_dnsmasq_config(
        networks, DhcpSettings(), ["198.51.100.2"], paths, run_as_user=default_run_as_user()
    )
    await sup.start(config, render_hosts_file([]))
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    emit({"type": "ready", "pid": sup.pid})
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    reservations = []
    while not stopping.is_set():
        line_task = asyncio.ensure_future(reader.readline())
        stop_task = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({line_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if not line_task.done():
            line_task.cancel()
            break
        line = line_task.result()
        if not line:
            break
        cmd = json.loads(line)
        reply = {"type": "reply", "id": cmd["id"]}
        op = cmd["op"]
        if op == "status":
            reply.update(pid=sup.pid, restarts=sup.restart_count, state=str(sup.state),
                         last_exit=sup.last_exit_code)
        elif op == "reserve":
            gateways = [n.gateway for n in networks]
            reservations.append(make_reservation(cmd["mac"], cmd["ip"], cmd["hostname"], gateways))
            await sup.set_reservations(render_hosts_file(reservations))
            reply.update(pid=sup.pid)
        elif op == "leases":
            reply.update(leases=[
                {"mac": l.mac, "ip": l.ip, "hostname": l.hostname} for l in read_leases(Path(paths.lease_file))
            ])
        elif op == "detect":
            reply.update(server=await detect_other_dhcp_server(
                cmd["ifname"], 1.0, ignore_servers=cmd["ignore"]))
        elif op == "log":
            reply.update(lines=sup.log_tail())
        elif op == "stop":
            break
        emit(reply)
    await sup.stop()
    emit({"type": "stopped", "last_exit": sup.last_exit_code})


asyncio.run(main())
"""

DHCLIENT_HOOK = """#!/bin/sh
OUT=@OUT@  # dhclient runs hooks with a clean environment
# dhclient -sf hook: configure the address and route, record what was offered, never touch resolv.conf.
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    ip route replace default via "$new_routers" dev "$interface"
    printf '{"ip":"%s","router":"%s","dns":"%s","domain":"%s"}\\n' \\
      "$new_ip_address" "$new_routers" "$new_domain_name_servers" "$new_domain_name" > "$OUT.tmp"
    mv "$OUT.tmp" "$OUT" ;;
esac
exit 0
"""

UDHCPC_HOOK = """#!/bin/sh
OUT=@OUT@
# udhcpc -s hook: configure the address and route, record what was offered, never touch resolv.conf.
case "$1" in
  bound|renew)
    ip addr replace "$ip/$subnet" dev "$interface"
    ip route replace default via "$router" dev "$interface"
    printf '{"ip":"%s","router":"%s","dns":"%s","domain":"%s"}\\n' \\
      "$ip" "$router" "$dns" "$domain" > "$OUT.tmp"
    mv "$OUT.tmp" "$OUT" ;;
esac
exit 0
"""

RESOLVE = r"""
import json, sys
import dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.lifetime = 3.0
out = {}
for name in sys.argv[2:]:
    try:
        out[name] = sorted(a.address for a in r.resolve(name, "A"))
    except Exception as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""

DETECT = r"""
import asyncio, sys
from sharewall.backends.dnsmasq import detect_other_dhcp_server
print(asyncio.run(detect_other_dhcp_server(sys.argv[1], 1.0)))
"""


class Harness:
    """Drives the supervisor harness in the gw namespace over JSON lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            msg = json.loads(line)
            if msg["type"] == "event":
                self.events.append(msg)
            else:
                self._replies.put(msg)

    def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        try:
            msg = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"harness sent no {kind!r} within {timeout} s") from None
        assert msg["type"] == kind, msg
        return msg

    def call(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": self._next_id, "op": op, **args}) + "\n")
        self.process.stdin.flush()
        reply = self.expect("reply", timeout)
        assert reply["id"] == self._next_id
        return reply


def poll(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def resolve(ns: Netns, server: str, *names: str) -> dict[str, Any]:
    return json.loads(ns.run(sys.executable, "-c", RESOLVE, server, *names, timeout=20).stdout)  # type: ignore[no-any-return]


def host_resolv_conf() -> tuple[bytes, int] | None:
    try:
        return Path("/etc/resolv.conf").read_bytes(), os.stat("/etc/resolv.conf").st_mtime_ns
    except FileNotFoundError:
        return None


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not tmp_path: dnsmasq drops to its own user and must be able to re-read the reservations on
    # SIGHUP, and pytest's base temp directory is mode 0700.
    path = Path(tempfile.mkdtemp(prefix="sw-td-state-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_dhcp_dns_reservations_and_restart_with_real_clients(state_dir: Path) -> None:
    require_root()
    for binary in ("ip", "dnsmasq", "dhclient", "udhcpc"):
        require_binary(binary)
    resolv_before = host_resolv_conf()
    prefix = unique_prefix("d")
    with contextlib.ExitStack() as stack:
        gw, c1, c2, up = stack.enter_context(
            namespaces(f"{prefix}-gw", f"{prefix}-c1", f"{prefix}-c2", f"{prefix}-up")
        )
        veth(gw, "lan0", c1, "eth0")
        veth(gw, "lan1", c2, "eth0")
        veth(gw, "wan0", up, "wan1")
        c2.run("ip", "link", "set", "eth0", "address", C2_MAC)
        gw.run("ip", "addr", "add", "192.168.137.1/24", "dev", "lan0")
        gw.run("ip", "addr", "add", "192.168.138.1/24", "dev", "lan1")
        gw.run("ip", "addr", "add", "198.51.100.1/24", "dev", "wan0")
        up.run("ip", "addr", "add", "198.51.100.2/24", "dev", "wan1")
        # Routed private <-> upstream is not needed: only the gateway talks to the upstream resolver.

        up.popen(
            "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", "--interface=wan1", "--except-interface=lo", "--pid-file=",
            "--log-facility=-", f"--address=/{UPSTREAM_NAME}/{UPSTREAM_ANSWER}",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        harness_file = state_dir / "harness.py"
        harness_file.write_text(HARNESS)
        harness_log = stack.enter_context(open(state_dir / "harness.stderr", "w"))
        harness = Harness(
            gw.popen(
                sys.executable, str(harness_file), str(state_dir),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=harness_log,
            )
        )  # fmt: skip

        @stack.callback
        def _stop_harness() -> None:
            if harness.process.poll() is None:
                harness.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    harness.process.wait(timeout=8)

        try:
            ready = harness.expect("ready", timeout=20)
        except AssertionError:
            raise AssertionError((state_dir / "harness.stderr").read_text()) from None
        dnsmasq_pid = ready["pid"]

        # A reservation added at run time: new hosts file + SIGHUP, no restart.
        reply = harness.call("reserve", mac=C2_MAC.upper(), ip=C2_RESERVED, hostname="resv2")
        assert reply["pid"] == dnsmasq_pid, "a reservation must not restart dnsmasq"

        # c1: isc-dhcp-client with our own hook (the host's resolv.conf stays untouched).
        hook1 = state_dir / "dhclient-hook"
        out1 = state_dir / "c1.json"
        hook1.write_text(DHCLIENT_HOOK.replace("@OUT@", str(out1)))
        hook1.chmod(0o755)
        conf1 = state_dir / "dhclient.conf"
        conf1.write_text('send host-name "c1dh";\n')
        dhclient_log = stack.enter_context(open(state_dir / "dhclient.log", "w"))
        started = time.monotonic()
        dhclient = c1.popen(
            "dhclient", "-4", "-d", "-sf", str(hook1), "-cf", str(conf1),
            "-lf", str(state_dir / "c1.leases"), "-pf", str(state_dir / "c1.pid"), "eth0",
            stdout=dhclient_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            lease1 = poll(lambda: read_json(out1), "dhclient's lease")
        except AssertionError as exc:
            tail = "\n".join(harness.call("log")["lines"][-20:])
            raise AssertionError(
                f"{exc}\ndhclient:\n{(state_dir / 'dhclient.log').read_text()}\ndnsmasq:\n{tail}"
            ) from None
        c1_seconds = time.monotonic() - started
        dhclient.terminate()  # no release: the lease stays at dnsmasq
        dhclient.wait(timeout=5)
        assert lease1["router"] == "192.168.137.1"
        assert lease1["dns"] == "192.168.137.1"
        assert lease1["domain"] == "mshome.net"
        last_octet = int(lease1["ip"].rsplit(".", 1)[1])
        assert lease1["ip"].startswith("192.168.137.") and 100 <= last_octet <= 200
        # no-ping: a new dynamic address comes in well under dnsmasq's ~3 s probe.
        assert c1_seconds < 2.5, f"dhclient took {c1_seconds:.2f} s"

        # c2: busybox udhcpc; its MAC is reserved, so it gets the reserved address.
        hook2 = state_dir / "udhcpc-hook"
        out2 = state_dir / "c2.json"
        hook2.write_text(UDHCPC_HOOK.replace("@OUT@", str(out2)))
        hook2.chmod(0o755)
        c2.run(
            "udhcpc", "-i", "eth0", "-s", str(hook2), "-f", "-q", "-n",
            "-t", "5", "-T", "1", "-x", "hostname:c2udh", timeout=20,
        )  # fmt: skip
        lease2 = read_json(out2)
        assert lease2 is not None
        assert lease2["ip"] == C2_RESERVED
        assert lease2["router"] == "192.168.138.1", "each network gets its own router (tags)"
        assert lease2["dns"] == "192.168.138.1"

        # The dhcp-script reported both leases to the supervisor's callback.
        poll(lambda: {e["ip"] for e in harness.events if e["kind"] == "add"} >= {lease1["ip"], C2_RESERVED}, "add events")  # fmt: skip
        add1 = next(e for e in harness.events if e["ip"] == lease1["ip"])
        assert add1["hostname"] == "c1dh" and add1["interface"] == "lan0"

        # DNS through the gateway: LAN names from leases and reservations, Internet names upstream.
        answers = resolve(
            c1,
            "192.168.137.1",
            "c1dh.mshome.net",
            "c1dh",
            "resv2",
            UPSTREAM_NAME,
            "nosuch.mshome.net",
        )
        assert answers["c1dh.mshome.net"] == [lease1["ip"]]
        assert answers["c1dh"] == [lease1["ip"]]
        assert answers["resv2"] == [C2_RESERVED]
        assert answers[UPSTREAM_NAME] == [UPSTREAM_ANSWER]
        assert answers["nosuch.mshome.net"] == "NXDOMAIN"

        # Another DHCP server on the link is detectable: from c1, the gateway answers...
        seen_from_c1 = c1.run(sys.executable, "-c", DETECT, "eth0", timeout=20).stdout.strip()
        assert seen_from_c1 == "192.168.137.1"
        # ...and from the gateway itself, our own dnsmasq is ignored: nobody else is there.
        assert harness.call("detect", ifname="lan0", ignore=["192.168.137.1"])["server"] is None

        # kill -9: the supervisor restarts dnsmasq, and the leases survive in the lease file.
        os.kill(dnsmasq_pid, signal.SIGKILL)
        status = poll(
            lambda: (
                (s := harness.call("status"))["restarts"] == 1 and s["state"] == "running" and s
            ),
            "the restart after kill -9",
        )
        assert status["pid"] != dnsmasq_pid and status["last_exit"] == -signal.SIGKILL
        leases = {lease["ip"]: lease for lease in harness.call("leases")["leases"]}
        assert leases[lease1["ip"]]["hostname"] == "c1dh"
        assert leases[C2_RESERVED]["mac"] == C2_MAC
        assert resolve(c2, "192.168.138.1", "c1dh")["c1dh"] == [lease1["ip"]]

        # Orderly stop: dnsmasq exits on SIGTERM and nothing of ours is left in gw but the harness.
        new_pid = status["pid"]
        assert harness.process.stdin is not None
        harness.process.stdin.write(json.dumps({"id": 0, "op": "stop"}) + "\n")
        harness.process.stdin.flush()
        stopped = harness.expect("stopped")
        assert stopped["last_exit"] == 0, "dnsmasq exits 0 on SIGTERM"
        assert harness.process.wait(timeout=5) == 0
        assert not Path(f"/proc/{new_pid}").exists() or _is_zombie(new_pid)

    assert host_resolv_conf() == resolv_before, "a DHCP client changed the host's /etc/resolv.conf"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
