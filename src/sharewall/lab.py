"""A throwaway lab network made of network namespaces, for ``sharewall lab`` and for the tests.

Topology for a prefix ``P`` (every piece lives outside the root namespace)::

    P-inet                P-gw (sharewalld runs here)            P-sw               P-lan1 / P-lan2
    eth0 198.51.100.2 ─── wan0 198.51.100.1                      br0 ─ p0 ──────── lan0 of P-gw
         2001:db8:100::2       2001:db8:100::1                       ├ p1 ──────── P-lan1 eth0 .11
                          lan0 (no IPv4; sharing assigns                 └ p2 ──────── P-lan2 eth0 .12
                                192.168.137.1/24)
                               2001:db8:137::1

Promises:
- The root namespace is never changed. Each veth pair is created with its two ends already in lab
  namespaces (``ip -n A link add X type veth peer name Y netns B``), so no interface ever appears in the
  root namespace, even for a moment.
- Only the ``ip`` tool is used, always with argv lists (never a shell string). Importing this module
  pulls in neither pyroute2 nor aiohttp: the CLI imports it.
- ``down()`` removes exactly the lab's namespaces (and their ``/etc/netns/NAME`` folders) and never
  fails when they are absent.

IPv6 duplicate address detection is skipped (``nodad``) on the lab's static addresses: a lab has no
duplicates, and tests should not wait a second for addresses to leave the tentative state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from sharewall.errors import ConflictError, ValidationError

__all__ = [
    "CommandError",
    "Lab",
    "delete_namespace",
    "list_namespaces",
    "namespace_exists",
    "namespace_pids",
    "run_command",
    "run_in_namespace",
]

# Where `ip netns exec` finds the per-namespace files it bind-mounts over /etc.
NETNS_ETC_DIR = "/etc/netns"

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class CommandError(subprocess.CalledProcessError):
    """A command exited non-zero. Unlike its base class, ``str()`` shows what the command printed."""

    def __str__(self) -> str:
        text = f"command {list(self.cmd)!r} exited {self.returncode}"
        for label, stream in (("stderr", self.stderr), ("stdout", self.output)):
            if stream:
                text += f"\n{label}: {str(stream).strip()}"
        return text


def run_command(
    argv: Sequence[str], *, check: bool = True, timeout: float = 10, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell) and capture its output as text.

    Raises:
        CommandError: ``check`` is true and the command exited non-zero.
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (it is killed).
        FileNotFoundError: the program does not exist.
    """
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and result.returncode != 0:
        raise CommandError(result.returncode, result.args, result.stdout, result.stderr)
    return result


def run_in_namespace(
    name: str,
    *argv: str,
    check: bool = True,
    timeout: float = 10,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the named network namespace (``ip netns exec``); see :func:`run_command`."""
    return run_command(
        ["ip", "netns", "exec", name, *argv], check=check, timeout=timeout, input=input
    )


def list_namespaces() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    output = run_command(["ip", "-json", "netns", "list"]).stdout.strip()
    if not output:  # iproute2 prints nothing at all, not "[]", when there are none
        return []
    return [str(entry["name"]) for entry in json.loads(output)]


def namespace_exists(name: str) -> bool:
    return name in list_namespaces()


def namespace_pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name``; empty if the namespace does not exist."""
    result = run_command(["ip", "netns", "pids", name], check=False)
    if result.returncode != 0:
        return []
    return [int(word) for word in result.stdout.split()]


def _signal_all(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_until_empty(name: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    pids = namespace_pids(name)
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = namespace_pids(name)
    return pids


def delete_namespace(name: str, *, grace_s: float = 1.0) -> None:
    """Stop every process in the namespace, delete it, and remove ``/etc/netns/NAME``.

    Processes get SIGTERM, then SIGKILL after ``grace_s`` seconds. A namespace that does not exist is
    not an error. Only call this for a namespace you own.
    """
    pids = namespace_pids(name)
    if pids:
        _signal_all(pids, signal.SIGTERM)
        pids = _wait_until_empty(name, grace_s)
    if pids:
        _signal_all(pids, signal.SIGKILL)
        _wait_until_empty(name, 1.0)
    if namespace_exists(name):
        run_command(["ip", "netns", "delete", name])
    shutil.rmtree(os.path.join(NETNS_ETC_DIR, name), ignore_errors=True)


@dataclass
class Lab:
    """The lab network for one prefix. Namespace names are ``f"{prefix}-{role}"``.

    Args:
        prefix: namespace name prefix; tests use a unique one starting with ``sw-t``.
        static: give the LAN clients static IPv4 addresses and a default route. With ``False``
            their IPv4 side stays empty (for DHCP); IPv6 is static either way.
    """

    prefix: str = "sw-lab"
    static: bool = True

    ROLES: ClassVar[tuple[str, ...]] = ("inet", "gw", "sw", "lan1", "lan2")

    # Interface names inside the namespaces.
    GW_WAN_IF: ClassVar[str] = "wan0"
    GW_LAN_IF: ClassVar[str] = "lan0"
    HOST_IF: ClassVar[str] = "eth0"  # on inet, lan1 and lan2
    BRIDGE_IF: ClassVar[str] = "br0"

    # IPv4: the uplink uses TEST-NET-2; the LAN is Windows ICS's 192.168.137.0/24.
    WAN_PREFIXLEN: ClassVar[int] = 24
    WAN_GW: ClassVar[str] = "198.51.100.1"
    INET: ClassVar[str] = "198.51.100.2"
    LAN_NET: ClassVar[str] = "192.168.137.0/24"
    LAN_GW: ClassVar[str] = "192.168.137.1"  # assigned by sharing, not by the lab
    LAN1: ClassVar[str] = "192.168.137.11"
    LAN2: ClassVar[str] = "192.168.137.12"

    # IPv6: documentation prefixes; routed, not translated, so the Internet host reaches the LAN.
    V6_PREFIXLEN: ClassVar[int] = 64
    WAN_GW6: ClassVar[str] = "2001:db8:100::1"
    INET6: ClassVar[str] = "2001:db8:100::2"
    LAN_NET6: ClassVar[str] = "2001:db8:137::/64"
    LAN_GW6: ClassVar[str] = "2001:db8:137::1"
    LAN1_6: ClassVar[str] = "2001:db8:137::11"
    LAN2_6: ClassVar[str] = "2001:db8:137::12"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ValidationError(
                f"lab prefix {self.prefix!r} must be 1-40 characters of letters, digits, '_', '.' or '-'"
            )

    def ns(self, role: str) -> str:
        """The namespace name for ``role`` (one of :attr:`ROLES`).

        Raises:
            ValidationError: unknown role.
        """
        if role not in self.ROLES:
            raise ValidationError(
                f"unknown lab role {role!r}; expected one of {', '.join(self.ROLES)}"
            )
        return f"{self.prefix}-{role}"

    def namespaces(self) -> list[str]:
        return [self.ns(role) for role in self.ROLES]

    def exists(self) -> bool:
        """True if any namespace of this lab exists (a half-built lab still needs ``down()``)."""
        present = set(list_namespaces())
        return any(name in present for name in self.namespaces())

    def run(
        self, role: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace of ``role``; see :func:`run_command`."""
        return run_in_namespace(self.ns(role), *argv, check=check, timeout=timeout)

    def _ip(self, role: str, *argv: str) -> None:
        run_command(["ip", "-n", self.ns(role), *argv])

    def up(self) -> None:
        """Build the lab.

        Raises:
            ConflictError: a namespace of this lab already exists (run ``down()`` first).
            CommandError: an ``ip`` command failed (for example without root); whatever was
                built is removed again before this propagates.
        """
        present = set(list_namespaces())
        clashing = [name for name in self.namespaces() if name in present]
        if clashing:
            raise ConflictError(
                f"lab {self.prefix!r} already exists ({', '.join(clashing)}); take it down first"
            )
        try:
            self._build()
        except BaseException:
            self.down()
            raise

    def _build(self) -> None:
        for name in self.namespaces():
            run_command(["ip", "netns", "add", name])
            run_command(["ip", "-n", name, "link", "set", "lo", "up"])

        # Cables: each veth is born with its ends in two lab namespaces.
        self._cable("inet", self.HOST_IF, "gw", self.GW_WAN_IF)
        self._cable("gw", self.GW_LAN_IF, "sw", "p0")
        self._cable("lan1", self.HOST_IF, "sw", "p1")
        self._cable("lan2", self.HOST_IF, "sw", "p2")

        # The switch. STP is off by default, so ports forward at once; snooping is off so that
        # multicast (SSDP, IPv6 ND) floods like on a dumb switch.
        self._ip("sw", "link", "add", self.BRIDGE_IF, "type", "bridge", "mcast_snooping", "0")
        for port in ("p0", "p1", "p2"):
            self._ip("sw", "link", "set", port, "master", self.BRIDGE_IF)
        self._ip("sw", "link", "set", self.BRIDGE_IF, "up")

        # The Internet host.
        self._address("inet", self.HOST_IF, f"{self.INET}/{self.WAN_PREFIXLEN}")
        self._address("inet", self.HOST_IF, f"{self.INET6}/{self.V6_PREFIXLEN}")
        # IPv6 is routed to the gateway as a real provider would route a delegated prefix; the
        # IPv4 LAN stays unreachable until route_lan_via_gateway(), as on the real Internet.
        self._ip("inet", "-6", "route", "add", self.LAN_NET6, "via", self.WAN_GW6)

        # The gateway: addressed uplink, bare LAN side.
        self._address("gw", self.GW_WAN_IF, f"{self.WAN_GW}/{self.WAN_PREFIXLEN}")
        self._address("gw", self.GW_WAN_IF, f"{self.WAN_GW6}/{self.V6_PREFIXLEN}")
        self._address("gw", self.GW_LAN_IF, f"{self.LAN_GW6}/{self.V6_PREFIXLEN}")
        self._ip("gw", "route", "add", "default", "via", self.INET)
        self._ip("gw", "-6", "route", "add", "default", "via", self.INET6)

        # The LAN clients.
        for role, v4, v6 in (("lan1", self.LAN1, self.LAN1_6), ("lan2", self.LAN2, self.LAN2_6)):
            if self.static:
                self._address(role, self.HOST_IF, f"{v4}/24")
                self._ip(role, "route", "add", "default", "via", self.LAN_GW)
            self._address(role, self.HOST_IF, f"{v6}/{self.V6_PREFIXLEN}")
            self._ip(role, "-6", "route", "add", "default", "via", self.LAN_GW6)

    def _cable(self, a_role: str, a_if: str, b_role: str, b_if: str) -> None:
        self._ip(
            a_role,
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            self.ns(b_role),
        )
        self._ip(a_role, "link", "set", a_if, "up")
        self._ip(b_role, "link", "set", b_if, "up")

    def _address(self, role: str, ifname: str, cidr: str) -> None:
        extra = ("nodad",) if ":" in cidr else ()
        self._ip(role, "address", "add", cidr, "dev", ifname, *extra)

    def down(self) -> None:
        """Remove every namespace of the lab, stopping the processes in them first. Never fails if absent."""
        for name in reversed(self.namespaces()):
            delete_namespace(name)

    def route_lan_via_gateway(self) -> None:
        """Give the Internet host a route to the IPv4 LAN via the gateway, for unsolicited-inbound probes."""
        self._ip("inet", "route", "replace", self.LAN_NET, "via", self.WAN_GW)
