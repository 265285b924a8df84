"""``sharewall lab up|down|demo``: the lab with a running sharewalld, and a narrated demonstration.

The lab (``sharewall.lab``) is a set of network namespaces outside the root namespace; sharewalld runs
inside the gateway namespace with its state and socket under ``/run/sharewall-lab/PREFIX``. Nothing here
touches the machine's own network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sharewall.api.client import Client, SharingInfo
from sharewall.errors import SharewallError
from sharewall.lab import Lab

LAB_RUN_DIR = Path("/run/sharewall-lab")


def lab_dir(prefix: str) -> Path:
    return LAB_RUN_DIR / prefix


def socket_path(prefix: str) -> Path:
    return lab_dir(prefix) / "sharewall.sock"


def start_daemon(lab: Lab, *, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start sharewalld in the lab's gateway namespace and wait until its API answers."""
    base = lab_dir(lab.prefix)
    base.mkdir(parents=True, exist_ok=True)
    log = (base / "sharewalld.log").open("ab")
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.ns("gw"),
            sys.executable,
            "-m",
            "sharewall.daemon.main",
            "--state-dir",
            str(base / "state"),
            "--socket",
            str(socket_path(lab.prefix)),
            "--config",
            str(base / "sharewall.toml"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SharewallError(
                f"sharewalld exited with status {proc.returncode}; see {base}/sharewalld.log"
            )
        try:
            with Client(str(socket_path(lab.prefix)), timeout=2) as client:
                client.status()
            return proc
        except SharewallError:
            time.sleep(0.05)
    raise SharewallError(
        f"sharewalld did not answer within {timeout:.0f} s; see {base}/sharewalld.log"
    )


def up(prefix: str = "sw-lab") -> int:
    """Build the lab and start sharewalld in it; print how to reach it."""
    lab = Lab(prefix=prefix)
    lab.up()
    try:
        start_daemon(lab)
    except BaseException:
        down(prefix)
        raise
    print(f"Lab {prefix!r} is up: namespaces {', '.join(lab.namespaces())}.")
    print(f"sharewalld runs in {lab.ns('gw')}. Try:")
    print(f"  export SHAREWALL_SOCKET={socket_path(prefix)}")
    print("  sharewall connections")
    print("  sharewall share wan0 lan0")
    print(f"  ip netns exec {lab.ns('lan1')} ping -c1 {Lab.INET}")
    return 0


def down(prefix: str = "sw-lab") -> int:
    """Remove the lab (its processes, sharewalld included, die with its namespaces)."""
    Lab(prefix=prefix).down()
    shutil.rmtree(lab_dir(prefix), ignore_errors=True)
    print(f"Lab {prefix!r} is down.")
    return 0


# --- DHCP clients in the lab -----------------------------------------------------------------------

# busybox udhcpc's hook: configure the address and default route; never touch /etc/resolv.conf (the
# host's file: the lab namespaces have no /etc/netns copy of their own).
UDHCPC_HOOK = """#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" scope global ;;
  bound|renew)
    ip -4 addr flush dev "$interface" scope global
    ip addr add "$ip/$subnet" dev "$interface"
    ip route replace default via "$router" dev "$interface"
    printf '%s %s %s %s\\n' "$ip" "$router" "$dns" "$domain" > "$SHAREWALL_DHCP_OUT" ;;
esac
exit 0
"""


def dhcp_client(
    lab: Lab, role: str, hostname: str, workdir: Path, *, timeout: float = 20, tries: int = 6
) -> dict[str, str]:
    """Run busybox udhcpc once in *role*'s namespace; returns ip, router, dns, domain of the lease."""
    hook = workdir / "udhcpc-hook"
    if not hook.exists():
        hook.write_text(UDHCPC_HOOK)
        hook.chmod(0o755)
    out = workdir / f"dhcp-{role}.txt"
    out.unlink(missing_ok=True)
    subprocess.run(
        ["ip", "netns", "exec", lab.ns(role), "env", f"SHAREWALL_DHCP_OUT={out}",
         "udhcpc", "-i", Lab.HOST_IF, "-s", str(hook), "-f", "-q", "-n", "-t", str(tries), "-T", "1",
         "-x", f"hostname:{hostname}"],
        capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip
    ip, router, dns, domain = [*out.read_text().split(), "", "", "", ""][:4]
    return {"ip": ip, "router": router, "dns": dns, "domain": domain}


# --- the demonstration -----------------------------------------------------------------------------


class Narrator:
    def __init__(self, total: int) -> None:
        self.total = total
        self.step = 0
        self.failures = 0

    def check(
        self, title: str, action: Callable[[], str], expect: Callable[[str], bool], meaning: str
    ) -> None:
        self.step += 1
        print(f"[{self.step}/{self.total}] {title}")
        try:
            result = action()
        except SharewallError as err:
            result = f"error: {err.message}"
        ok = expect(result)
        self.failures += 0 if ok else 1
        print(f"      -> {result}")
        print(f"      {'OK' if ok else 'UNEXPECTED'}: {meaning}")


def _serve(lab: Lab, role: str, kind: str, port: int, tag: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.ns(role),
            sys.executable,
            "-m",
            "sharewall.labprobe",
            f"serve-{kind}",
            str(port),
            "--tag",
            tag,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready"
    proc.stdout.close()
    return proc


def _probe(lab: Lab, role: str, kind: str, host: str, port: int) -> str:
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab.ns(role),
            sys.executable,
            "-m",
            "sharewall.labprobe",
            kind,
            host,
            str(port),
            "--timeout",
            "1.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip() or out.stderr.strip()


UPNP_CLIENT = r"""
import sys
import miniupnpc
u = miniupnpc.UPnP()
u.discoverdelay = 500
if not u.discover():
    sys.exit("no UPnP device answered")
u.selectigd()
ext, internal = int(sys.argv[1]), int(sys.argv[2])
ok = u.addportmapping(ext, "TCP", u.lanaddr, internal, "sharewall lab demo", "")
print(f"mapped {u.externalipaddress()}:{ext} -> {u.lanaddr}:{internal}" if ok else "refused")
"""


def _upnp_add(lab: Lab, external: int, internal: int) -> str:
    """Run a real UPnP IGD client (the miniupnpc library) in lan2."""
    try:
        import miniupnpc  # noqa: F401  (only to say clearly when it is missing)
    except ImportError:
        return "miniupnpc is not installed (pip install miniupnpc)"
    out = subprocess.run(
        ["ip", "netns", "exec", lab.ns("lan2"), sys.executable, "-c", UPNP_CLIENT, str(external),
         str(internal)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return out.stdout.strip() or out.stderr.strip()


def _leased_ip(client: Client, hostname: str) -> str:
    for lease in client.leases():
        if lease.get("hostname") == hostname:
            return str(lease["ip"])
    raise SharewallError(f"{hostname} has no lease")


def _lease_text(lab: Lab, role: str, workdir: Path, tries: int = 6) -> str:
    try:
        lease = dhcp_client(lab, role, role, workdir, timeout=15, tries=tries)
    except subprocess.CalledProcessError:
        return f"no lease for {role}"
    return f"{role} got {lease['ip']} (router {lease['router']}, DNS {lease['dns']}, domain {lease['domain']})"


def _describe_sharing(sharing: SharingInfo) -> str:
    public = sharing["public"]
    name = public["name"] if public else "?"
    private = ", ".join(p["name"] for p in sharing["private"])
    return f"public {name} ({sharing['public_address']}), private {private}"


def run(prefix: str = "sw-lab-demo") -> int:
    """Bring a lab up, demonstrate sharing, the firewall, a mapping and hairpin; always tear down."""
    if os.geteuid() != 0:
        print("sharewall lab demo needs root (it creates network namespaces).", file=sys.stderr)
        return 2
    lab = Lab(prefix=prefix, static=False)
    if lab.exists():
        lab.down()
    print(
        f"Building lab {prefix!r}: Internet host {Lab.INET}, gateway wan0 {Lab.WAN_GW} / lan0, "
        "LAN clients lan1 and lan2 (no address yet: they will ask DHCP) behind a switch."
    )
    narrator = Narrator(total=11)
    workdir = lab_dir(prefix)
    try:
        lab.up()
        start_daemon(lab)
        client = Client(str(socket_path(prefix)))
        _serve(lab, "inet", "tcp", 80, "internet-web")
        _serve(lab, "lan2", "tcp", 80, "lan2-web")
        _serve(lab, "gw", "tcp", 22, "gateway-ssh")
        public = Lab.WAN_GW
        narrator.check(
            "Before sharing, LAN client lan1 asks for an address (DHCP)",
            lambda: _lease_text(lab, "lan1", workdir, tries=2),
            lambda r: r.startswith("no lease"),
            "no sharing, no DHCP server, no way out",
        )
        narrator.check(
            "sharewall share wan0 lan0",
            lambda: _describe_sharing(client.share("wan0", ["lan0"])),
            lambda r: r.startswith("public wan0"),
            "lan0 got 192.168.137.1/24, forwarding and NAT are on, ICF protects wan0, DHCP and DNS serve lan0",
        )
        narrator.check(
            "LAN clients lan1 and lan2 ask for addresses (DHCP)",
            lambda: "; ".join(_lease_text(lab, role, workdir) for role in ("lan1", "lan2")),
            lambda r: r.count("192.168.137.") >= 2,
            "each got a lease with the gateway as router and DNS server (sharewall leases lists them)",
        )
        narrator.check(
            "LAN client lan1 connects to the Internet web server",
            lambda: _probe(lab, "lan1", "tcp", Lab.INET, 80),
            lambda r: r == f"internet-web {public}",
            f"the server saw the gateway's public address {public}: source NAT works",
        )
        narrator.check(
            "The Internet host probes the gateway's port 22 (a service listens there)",
            lambda: _probe(lab, "inet", "tcp", public, 22),
            lambda r: r == "timeout",
            "unsolicited inbound is silently dropped by ICF",
        )
        lab.route_lan_via_gateway()
        narrator.check(
            "The Internet host probes LAN web server lan2 directly (with a route to the LAN)",
            lambda: _probe(lab, "inet", "tcp", _leased_ip(client, "lan2"), 80),
            lambda r: r == "timeout",
            "nothing behind the gateway is reachable unsolicited",
        )
        narrator.check(
            "sharewall mappings add wan0 web --protocol tcp --external-port 8080 --internal-port 80 --target lan2",
            lambda: (
                lambda m: (
                    f"{m['name']}: tcp/{m['external_port']} -> {m['target_address']}:{m['internal_port']}"
                    f" ({'active' if m['active'] else 'inactive'})"
                )
            )(
                client.add_mapping(
                    "wan0",
                    name="web",
                    protocol="tcp",
                    external_port=8080,
                    internal_port=80,
                    target="lan2",
                )
            ),
            lambda r: r.endswith("(active)"),
            "by host name: it follows lan2's DHCP lease; one element added to an nft map, no reload",
        )
        narrator.check(
            f"The Internet host connects to {public}:8080",
            lambda: _probe(lab, "inet", "tcp", public, 8080),
            lambda r: r == f"lan2-web {Lab.INET}",
            "the mapping serves the LAN web server to the Internet",
        )
        narrator.check(
            f"LAN client lan1 connects to the public address {public}:8080 (hairpin)",
            lambda: _probe(lab, "lan1", "tcp", public, 8080),
            lambda r: r == f"lan2-web {Lab.LAN_GW}",
            "hairpin NAT: LAN clients reach mapped servers through the public address",
        )
        narrator.check(
            "LAN client lan2 asks the gateway for a port over UPnP IGD (miniupnpc): 8081 -> lan2:80",
            lambda: _upnp_add(lab, 8081, 80),
            lambda r: r.startswith("mapped"),
            "a dynamic mapping in the same nft map as static ones, owned by lan2, with a lease",
        )
        narrator.check(
            f"The Internet host connects to {public}:8081",
            lambda: _probe(lab, "inet", "tcp", public, 8081),
            lambda r: r == f"lan2-web {Lab.INET}",
            "the port lan2 opened itself serves it to the Internet",
        )
        client.teardown()
        client.close()
    except (SharewallError, OSError, subprocess.SubprocessError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        narrator.failures += 1
    finally:
        lab.down()
        shutil.rmtree(lab_dir(prefix), ignore_errors=True)
        print(f"Lab {prefix!r} removed.")
    if narrator.failures:
        print(f"{narrator.failures} step(s) did not behave as expected.")
        return 1
    print("All steps behaved as expected.")
    return 0
