"""sharewalld: the daemon. Runs in the foreground, in the network namespace it was started in.

Stopping it (SIGTERM/SIGINT) leaves the gateway working and protected: the kernel keeps the ruleset.
SIGHUP re-reads the configuration file. ``POST /v1/teardown`` removes what sharewall put into the kernel
and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import sys
import time
from pathlib import Path

from sharewall.errors import SharewallError

from .active import flush_mapping_flows
from .configfile import parse_config_file
from .engine import RESOLVE_INTERVAL_S, Engine
from .ipc import build_app, serve
from .private_services import PrivateServices
from .seclog import SecurityLog

log = logging.getLogger("sharewall.daemon")

EXPIRY_INTERVAL_S = 1.0  # dynamic mappings disappear within a second of their lease's end
DEFAULT_CONFIG = Path("/etc/sharewall/sharewall.toml")
DEFAULT_STATE_DIR = Path("/var/lib/sharewall")
DEFAULT_SOCKET = Path("/run/sharewall/sharewall.sock")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sharewalld", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration file"
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="durable state")
    parser.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="local API socket")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    # Imported here so `sharewalld --help` stays fast and the CLI never pulls these in.
    from sharewall.backends.netlink import NetlinkWatcher
    from sharewall.backends.nft import NftBackend
    from sharewall.backends.store import Store
    from sharewall.backends.sysctl import read_sysctl, write_sysctl

    store = Store(args.state_dir)
    nft = NftBackend()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with NetlinkWatcher() as netlink:
        engine = Engine(
            store=store,
            nft=nft,
            netlink=netlink,
            read_sysctl=read_sysctl,
            write_sysctl=write_sysctl,
        )
        # --- private side: DHCP allocator + DNS proxy (dnsmasq), leases that mappings follow ---
        services = PrivateServices(engine, args.state_dir)
        services.preload()
        engine.after_reconcile.append(services.sync)
        engine.problem_sources.append(lambda: list(services.problems))
        engine.flush_flows = functools.partial(flush_mapping_flows, engine)
        # --- the ICF security log (its own nft context reads the loss counters) ---
        counter_nft = NftBackend()
        security_log = SecurityLog(engine, counter_nft=counter_nft)
        engine.after_reconcile.append(security_log.sync)
        # ---
        await engine.start()
        await import_config(engine, args.config)
        # --- NAT traversal (issue 4): UPnP IGD, NAT-PMP and PCP on the private connections ---
        from .nat_traversal import start_nat_traversal

        nat_traversal = await start_nat_traversal(engine, args.config)
        # ---

        def after_teardown() -> None:
            loop.call_soon(stop.set)

        runner = await serve(
            build_app(
                engine,
                services=services,
                security_log=security_log,
                counter_nft=counter_nft,
                on_teardown=after_teardown,
            ),
            args.socket,
        )
        log.info("sharewalld ready on %s", args.socket)

        background: set[asyncio.Task[None]] = set()

        def reload() -> None:
            task = loop.create_task(import_config(engine, args.config))
            background.add(task)
            task.add_done_callback(background.discard)

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)

        async def watch_links() -> None:
            while True:
                if await netlink.wait_change():
                    try:
                        await engine.on_netlink_change()
                    except SharewallError as err:
                        log.error("reconcile after a link change failed: %s", err.message)

        async def refresh_names() -> None:
            while True:
                await asyncio.sleep(RESOLVE_INTERVAL_S)
                try:
                    await engine.refresh_names()
                except SharewallError as err:
                    log.error("host-name refresh failed: %s", err.message)

        async def expire_leases() -> None:
            while True:
                try:
                    await engine.expire(time.time())
                except SharewallError as err:
                    log.error("expiring leases failed: %s", err.message)
                await asyncio.sleep(EXPIRY_INTERVAL_S)

        tasks = [
            asyncio.create_task(watch_links()),
            asyncio.create_task(refresh_names()),
            asyncio.create_task(expire_leases()),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await nat_traversal.stop()  # NAT traversal (issue 4): SSDP byebye, sockets closed
            await runner.cleanup()
            await services.stop()
            await security_log.stop()
            counter_nft.close()
            nft.close()
            store.close()
    log.info("sharewalld stopped")
    return 0


async def import_config(engine: Engine, path: Path) -> None:
    """Import the TOML file if it changed; a bad file is reported and the last good state kept."""
    try:
        parsed = parse_config_file(path)
        if parsed is not None and await engine.import_config_file(parsed):
            log.info("imported configuration from %s", path)
        engine.config_problem = None
    except SharewallError as err:
        engine.config_problem = err.message
        log.error("configuration not applied, keeping the last good state: %s", err.message)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s sharewalld %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pyroute2 logs every netlink message at debug level: far too much even for -v.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    try:
        return asyncio.run(run(args))
    except SharewallError as err:
        log.error("%s", err.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
