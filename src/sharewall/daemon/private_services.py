"""The private side's services: dnsmasq as DHCP allocator and DNS proxy, and leases that mappings follow.

Started when sharing starts, reconfigured whenever the private networks change (it listens to the engine's
reconciles), stopped when sharing stops. Lease events from dnsmasq's dhcp-script update the engine's view of
who holds which address, so a mapping to a host name or MAC moves with its host at once (no DNS polling).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sharewall.backends.dnsmasq import (
    DnsmasqSupervisor,
    detect_other_dhcp_server,
    read_leases,
    write_dhcp_script,
)
from sharewall.compiler.dnsmasq import (
    DnsmasqPaths,
    PrivateNetwork,
    render_dnsmasq_config,
    render_hosts_file,
)
from sharewall.errors import SharewallError
from sharewall.model.dhcp import (
    Lease,
    LeaseEvent,
    LeaseEventKind,
    effective_upstreams,
    parse_resolv_conf_nameservers,
)

from .engine import Engine

log = logging.getLogger("sharewall.dhcp")

RUNTIME_ROOT = Path("/run/sharewall")


class PrivateServices:
    def __init__(
        self, engine: Engine, state_dir: Path, *, resolv_conf: Path = Path("/etc/resolv.conf")
    ) -> None:
        self.engine = engine
        self.resolv_conf = resolv_conf
        # dnsmasq drops privileges after binding: what it reads later (reservations on SIGHUP) must be
        # reachable by its user, so config and hosts live in a world-traversable runtime directory. The
        # lease file (opened while still root) stays in the durable state directory.
        tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
        self.runtime = RUNTIME_ROOT / f"dnsmasq-{tag}"
        self.durable = state_dir / "dnsmasq"
        self.paths = DnsmasqPaths(
            conf_file=str(self.runtime / "dnsmasq.conf"),
            lease_file=str(self.durable / "leases"),
            hosts_file=str(self.runtime / "reservations"),
            script=str(self.runtime / "dhcp-event"),
            pid_file=str(self.runtime / "dnsmasq.pid"),
        )
        self.event_socket = self.runtime / "events.sock"
        self.supervisor: DnsmasqSupervisor | None = None
        self._hosts_text: str | None = None
        self.leases: dict[str, Lease] = {}  # by MAC
        self.problems: list[str] = []
        self._checked_interfaces: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -------------------------------------------------------------------------------

    def preload(self) -> None:
        """Before the first reconcile: leases from the durable lease file (they survive restarts)."""
        try:
            leases = read_leases(Path(self.paths.lease_file))
        except OSError:
            leases = []
        self.leases = {lease.mac: lease for lease in leases}
        self.engine._leased = self._leased_names()

    async def sync(self) -> None:
        """Make dnsmasq match the sharing state (an ``Engine.after_reconcile`` listener)."""
        networks = self._private_networks()
        dhcp = self.engine.config.dhcp
        if (
            not self.engine.config.sharing.active
            or not networks
            or not dhcp.enabled
            or self.engine.stopped
        ):
            await self.stop()
            return
        upstreams = effective_upstreams(dhcp, self._learned_upstreams())
        config_text = render_dnsmasq_config(networks, dhcp, upstreams, self.paths)
        hosts_text = render_hosts_file(self.engine.config.reservations)
        if self.supervisor is None:
            self._prepare_dirs()
            write_dhcp_script(Path(self.paths.script or ""), self.event_socket)
            self.supervisor = DnsmasqSupervisor(
                self.paths, on_lease_event=self._on_lease_event, event_socket=self.event_socket
            )
            await self.supervisor.start(config_text, hosts_text)
            self._hosts_text = hosts_text
            log.info("dnsmasq serves %s", ", ".join(n.ifname for n in networks))
        else:
            await self.supervisor.apply_config(config_text)
            if hosts_text != self._hosts_text:
                await self.supervisor.set_reservations(hosts_text)
                self._hosts_text = hosts_text
        for network in networks:
            if network.ifname not in self._checked_interfaces:
                self._checked_interfaces.add(network.ifname)
                self._spawn(self._check_other_server(network))

    async def stop(self) -> None:
        if self.supervisor is not None:
            supervisor, self.supervisor = self.supervisor, None
            await supervisor.stop()
            self._hosts_text = None
            self._checked_interfaces.clear()
            self.problems.clear()
            # The runtime files are regenerated at every start; the lease file stays (durable).
            shutil.rmtree(self.runtime, ignore_errors=True)

    # --- leases ---------------------------------------------------------------------------------

    def _on_lease_event(self, event: LeaseEvent) -> None:
        if event.kind is LeaseEventKind.DEL:
            self.leases.pop(event.mac, None)
        else:
            self.leases[event.mac] = Lease(
                mac=event.mac, ip=event.ip, hostname=event.hostname, expires_at=event.expires_at
            )
        self._spawn(self.engine.set_leases(self._leased_names()))

    def _leased_names(self) -> dict[str, ipaddress.IPv4Address]:
        """MAC, host name and host name + domain -> address, for leases that are still valid."""
        now = time.time()
        domain = self.engine.config.dhcp.domain
        out: dict[str, ipaddress.IPv4Address] = {}
        for lease in sorted(self.leases.values(), key=lambda le: le.expires_at or 0):
            if lease.expires_at is not None and lease.expires_at < now:
                continue
            try:
                addr = ipaddress.IPv4Address(lease.ip)
            except ValueError:
                continue
            out[lease.mac.lower()] = addr
            if lease.hostname:
                name = lease.hostname.lower()
                out[name] = addr
                out[f"{name}.{domain}".lower()] = addr
        return out

    def lease_views(self) -> list[dict[str, Any]]:
        nets = self._private_networks()
        out = []
        for lease in sorted(self.leases.values(), key=lambda le: ipaddress.IPv4Address(le.ip)):
            addr = ipaddress.IPv4Address(lease.ip)
            conn = next((n.ifname for n in nets if addr in n.gateway.network), None)
            out.append(
                {
                    "mac": lease.mac,
                    "ip": lease.ip,
                    "hostname": lease.hostname,
                    "expires_at": lease.expires_at,
                    "connection": conn,
                }
            )
        return out

    # --- helpers ----------------------------------------------------------------------------------

    def private_gateways(self) -> list[ipaddress.IPv4Interface]:
        return [n.gateway for n in self._private_networks()]

    def _private_networks(self) -> list[PrivateNetwork]:
        config = self.engine.config
        out = []
        for conn_id in config.sharing.private:
            conn = config.connections.get(conn_id)
            link = self.engine.facts.links.get(conn.name) if conn else None
            if conn is None or link is None or not link.ipv4:
                continue
            assigned = config.sharing.assigned_addresses.get(conn_id)
            gateway = ipaddress.IPv4Interface(assigned) if assigned else link.ipv4[0]
            out.append(PrivateNetwork(ifname=conn.name, gateway=gateway))
        return out

    def _learned_upstreams(self) -> list[str]:
        try:
            return parse_resolv_conf_nameservers(self.resolv_conf.read_text())
        except OSError:
            return []

    def _prepare_dirs(self) -> None:
        RUNTIME_ROOT.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(parents=True, exist_ok=True)
        os.chmod(RUNTIME_ROOT, 0o755)
        os.chmod(self.runtime, 0o755)
        self.durable.mkdir(parents=True, exist_ok=True)

    async def _check_other_server(self, network: PrivateNetwork) -> None:
        try:
            other = await detect_other_dhcp_server(
                network.ifname, 1.0, ignore_servers=[str(network.gateway.ip)]
            )
        except OSError as err:
            log.debug("could not probe %s for other DHCP servers: %s", network.ifname, err)
            return
        if other is not None:
            message = (
                f"another DHCP server ({other}) answers on private connection {network.ifname}: "
                "clients may get addresses from it instead of sharewall"
            )
            log.warning("%s", message)
            self.problems.append(message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coro: Any) -> None:
        try:
            await coro
        except SharewallError as err:
            log.error("%s", err.message)
