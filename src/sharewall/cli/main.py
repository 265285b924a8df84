"""The ``sharewall`` command: a thin click front end over :mod:`sharewall.api.client`.

Promise: fast to start and honest when it fails.

- Import path: click, the stdlib client and :mod:`sharewall.errors` only. rich is imported when a
  table is drawn on a terminal (or a progress bar shown), the model (msgspec) only when input is
  validated, ``sharewall.lab`` only by ``sharewall lab``. aiohttp and pyroute2 are never imported.
- Every mistake prints ONE line, ``sharewall: error: <message>``, to standard error, changes
  nothing, and exits with:

  ====  ==================================================================================
  0     success
  1     the daemon (or the lab) refused or failed: unknown connection, duplicate mapping,
        permission denied, kernel error, a value the daemon rejected
  2     rejected locally before anything was sent: bad usage, bad port/protocol/target/CIDR,
        bad ICMP option name, unreadable or invalid import file
  3     the daemon is unavailable: no socket, connection refused, no permission on the
        socket, no answer in time
  ====  ==================================================================================

- Read commands take ``--json`` and print the API's JSON (shapes in ``docs/cli.md``).
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from sharewall import __version__
from sharewall.api.client import (
    DEFAULT_SOCKET_PATH,
    SOCKET_ENV_VAR,
    Client,
    ConnectionRef,
    MappingInfo,
    SharingInfo,
)
from sharewall.cli.render import print_json, print_table, use_rich
from sharewall.errors import DaemonUnavailableError, SharewallError, ValidationError

if TYPE_CHECKING:
    from sharewall.model.mapping import PortMapping

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE", "cli", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

# Shown in `firewall icmp --help` without importing the model; a unit test keeps it equal to
# sharewall.model.firewall.ICMP_OPTIONS.
ICMP_OPTION_NAMES = (
    "outbound-destination-unreachable",
    "redirect",
    "inbound-echo-request",
    "outbound-time-exceeded",
    "outbound-parameter-problem",
    "outbound-source-quench",
    "inbound-router-request",
    "inbound-timestamp-request",
    "inbound-mask-request",
    "outbound-packet-too-big",
)

MAPPING_FIELDS = ("name", "protocol", "external_port", "internal_port", "target", "enabled")
# Fields of `mappings list --json` that describe live state, not what to create: an import
# ignores them, so a listing can be imported elsewhere as it is.
_READ_ONLY_MAPPING_FIELDS = frozenset({"builtin", "options", "active", "target_address", "source"})

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A failure reported as one ``sharewall: error:`` line; exit 1 (the operation failed)."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        one_line = "; ".join(part.strip() for part in self.format_message().splitlines() if part)
        click.echo(f"sharewall: error: {one_line}", err=True)


class LocalRejectionError(CliError):
    """Bad usage or input caught before anything was sent to the daemon (exit 2)."""

    exit_code = EXIT_USAGE


class DaemonUnreachableError(CliError):
    """The daemon's socket cannot be reached or the daemon does not answer (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


def _reject(message: str) -> LocalRejectionError:
    return LocalRejectionError(message)


@contextlib.contextmanager
def _validated(prefix: str = "") -> Iterator[None]:
    """Turn the model's ValidationError into a local rejection (exit 2)."""
    try:
        yield
    except ValidationError as exc:
        raise _reject(prefix + exc.message) from exc


@contextlib.contextmanager
def _as_cli_errors() -> Iterator[None]:
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # `sharewall mappings` alone: click prints the help, which is what people want
    except CliError:
        raise
    except click.UsageError as exc:
        hint = f" Try '{exc.ctx.command_path} --help'." if exc.ctx is not None else ""
        raise LocalRejectionError(exc.format_message() + hint) from exc
    except DaemonUnavailableError as exc:
        raise DaemonUnreachableError(exc.message) from exc
    except SharewallError as exc:
        raise CliError(exc.message) from exc


class SharewallGroup(click.Group):
    """The top-level group: every failure below it becomes one line and an exit code."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _as_cli_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _as_cli_errors():
            return super().invoke(ctx)


class _ConnectionParam(click.ParamType[str]):
    """A connection's name or id: any non-empty string (the daemon knows which exist)."""

    name = "CONNECTION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            self.fail("a connection name or id must not be empty", param, ctx)
        return text


CONNECTION = _ConnectionParam()


@dataclass
class _State:
    """Per-invocation state: where the daemon is, and the client once one is needed."""

    socket_path: str
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket_path)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def json_option(func: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the API's JSON instead of a table (shapes in docs/cli.md).",
    )(func)


def _yes_no(value: object) -> str:
    return "yes" if value else "no"


def _ref_name(ref: ConnectionRef | None) -> str:
    return ref["name"] if ref else "-"


def _describe_sharing(sharing: SharingInfo) -> str:
    if not sharing.get("active"):
        return "not sharing"
    public = _ref_name(sharing.get("public"))
    if sharing.get("public_address"):
        address_class = sharing.get("public_address_class")
        note = {
            "private": ", a private address: another NAT is in front (mappings not reachable)",
            "cgnat": ", a carrier-grade NAT address (mappings not reachable from the Internet)",
            "reserved": ", a reserved address (mappings not reachable from the Internet)",
        }.get(str(address_class), "")
        public += f" ({sharing['public_address']}{note})"
    private = ", ".join(_ref_name(p) for p in sharing.get("private", [])) or "-"
    return f"sharing {public} with {private}"


# -- the command group ----------------------------------------------------------------------------


@click.group(
    name="sharewall",
    cls=SharewallGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit status: 0 ok, 1 the daemon refused or failed, 2 rejected locally "
    "(usage, validation), 3 daemon unavailable.",
)
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    envvar=SOCKET_ENV_VAR,
    default=DEFAULT_SOCKET_PATH,
    show_default=True,
    show_envvar=True,
    help="The daemon's Unix socket.",
)
@click.version_option(__version__, prog_name="sharewall")
@click.pass_context
def cli(ctx: click.Context, socket_path: str) -> None:
    """Internet Connection Sharing and Internet Connection Firewall for Linux.

    Talks to sharewalld over its local socket. Anyone may read; changes need root or the
    group `sharewall`.
    """
    state = _State(socket_path)
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- reads ----------------------------------------------------------------------------------------


@cli.command()
@json_option
@click.pass_obj
def status(state: _State, as_json: bool) -> None:
    """Show the daemon's version, sharing, counts and problems."""
    info = state.client().status()
    if as_json:
        print_json(info)
        return
    lines = [
        f"sharewalld {info.get('version', '?')}",
        f"sharing:      {_describe_sharing(info['sharing'])}",
        f"connections:  {info.get('connections', 0)}",
        f"mappings:     {info.get('mappings', 0)}",
    ]
    problems = info.get("problems") or []
    if problems:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in problems)
    else:
        lines.append("problems:     none")
    click.echo("\n".join(lines))


@cli.command()
@json_option
@click.option("--active", is_flag=True, help="Show conntrack entries through the gateway instead.")
@click.pass_obj
def connections(state: _State, as_json: bool, active: bool) -> None:
    """List the connections (every network interface except loopback).

    With --active: who is connected through the gateway now, by private client and by mapping.
    """
    if active:
        _show_active(state, as_json)
        return
    items = state.client().connections()
    if as_json:
        print_json({"connections": items})
        return
    rows = [
        [
            c["name"],
            c.get("media_type", "-"),
            c.get("status", "-"),
            c.get("sharing", "none"),
            "on" if c.get("firewall") else "off",
            ", ".join(c.get("ipv4") or []) or "-",
            c["id"],
        ]
        for c in items
    ]
    print_table(
        ["Name", "Type", "Status", "Sharing", "Firewall", "IPv4", "ID"], rows, title="Connections"
    )


# -- sharing --------------------------------------------------------------------------------------


def _check_private_address(value: str) -> None:
    if not value.strip():
        raise _reject("--private-address must not be empty")
    from sharewall.model.config import Settings, private_network  # lazy: msgspec

    with _validated():
        private_network(Settings(), value)


@cli.command()
@click.argument("public", type=CONNECTION)
@click.argument("private", nargs=-1, required=True, type=CONNECTION)
@click.option(
    "--private-address",
    metavar="CIDR",
    help="Address of the first private connection, e.g. 192.168.137.1/24 (the default); "
    "each further one gets the next network of the same size.",
)
@click.pass_obj
def share(
    state: _State, public: str, private: tuple[str, ...], private_address: str | None
) -> None:
    """Share PUBLIC (the Internet side) with the PRIVATE connections.

    Replaces any previous sharing. The public connection's firewall is turned on.
    """
    if private_address is not None:
        _check_private_address(private_address)
    if public in private:
        raise _reject(f"{public!r} cannot be both the public and a private connection")
    repeated = sorted({p for p in private if private.count(p) > 1})
    if repeated:
        raise _reject(f"private connection named more than once: {', '.join(repeated)}")
    sharing = state.client().share(public, list(private), private_address)
    summary = _describe_sharing(sharing)
    click.echo(summary[:1].upper() + summary[1:] + ".")


@cli.command()
@click.pass_obj
def unshare(state: _State) -> None:
    """Stop sharing, undoing exactly what sharing did."""
    state.client().unshare()
    click.echo("Sharing stopped.")


@cli.command()
@click.pass_obj
def teardown(state: _State) -> None:
    """Remove everything sharewall put into the kernel."""
    state.client().teardown()
    click.echo("Removed everything sharewall had put into the kernel.")


# -- firewall -------------------------------------------------------------------------------------


@cli.group()
def firewall() -> None:
    """Turn a connection's firewall on or off; show or change its ICMP options."""


def _set_firewall(state: _State, connection: str, enabled: bool) -> None:
    result = state.client().set_firewall(connection, enabled)
    click.echo(f"Firewall {'on' if result else 'off'} for {connection}.")


@firewall.command("enable")
@click.argument("connection", type=CONNECTION)
@click.pass_obj
def firewall_enable(state: _State, connection: str) -> None:
    """Filter CONNECTION: drop unsolicited inbound traffic (IPv4 and IPv6)."""
    _set_firewall(state, connection, True)


@firewall.command("disable")
@click.argument("connection", type=CONNECTION)
@click.pass_obj
def firewall_disable(state: _State, connection: str) -> None:
    """Stop filtering CONNECTION (sharewall then filters nothing there)."""
    _set_firewall(state, connection, False)


def _normalized_icmp(allow: Sequence[str], deny: Sequence[str]) -> tuple[list[str], list[str]]:
    from sharewall.model.firewall import normalize_icmp_option  # lazy: msgspec

    with _validated():
        allow_keys = [normalize_icmp_option(name) for name in allow]
        deny_keys = [normalize_icmp_option(name) for name in deny]
    both = sorted(set(allow_keys) & set(deny_keys))
    if both:
        raise _reject(f"ICMP option both allowed and denied: {', '.join(both)}")
    return allow_keys, deny_keys


@firewall.command(
    "icmp",
    epilog="Options: " + ", ".join(ICMP_OPTION_NAMES) + ".",
)
@click.argument("connection", type=CONNECTION)
@click.option("--allow", multiple=True, metavar="NAME", help="Allow this ICMP option (repeatable).")
@click.option("--deny", multiple=True, metavar="NAME", help="Block this ICMP option (repeatable).")
@json_option
@click.pass_obj
def firewall_icmp(
    state: _State, connection: str, allow: tuple[str, ...], deny: tuple[str, ...], as_json: bool
) -> None:
    """Show CONNECTION's ten ICMP options, or change them with --allow/--deny."""
    if allow or deny:
        allow_keys, deny_keys = _normalized_icmp(allow, deny)
        settings = state.client().change_icmp(connection, allow_keys, deny_keys)
    else:
        settings = state.client().connection(connection)["icmp"]
    if as_json:
        print_json({"icmp": settings})
        return
    rows = [[name.replace("_", "-"), _yes_no(on)] for name, on in settings.items()]
    print_table(["Option", "Allowed"], rows, title=f"ICMP on {connection}")


# -- port mappings --------------------------------------------------------------------------------


@cli.group()
def mappings() -> None:
    """List, add, enable, disable, remove and import port mappings."""


def _target_text(m: MappingInfo) -> str:
    address = m.get("target_address")
    if address and address != m["target"]:
        return f"{m['target']} ({address})"
    return m["target"]


def _mapping_state(m: MappingInfo) -> str:
    if not m.get("enabled"):
        return "disabled"
    # Enabled but not in force: e.g. a host-name target that does not resolve yet.
    return "active" if m.get("active") else "inactive"


@mappings.command("list")
@click.argument("connection", type=CONNECTION)
@json_option
@click.option("--counters", is_flag=True, help="Also show connections opened through each mapping.")
@click.pass_obj
def mappings_list(state: _State, connection: str, as_json: bool, counters: bool) -> None:
    """List CONNECTION's port mappings: built-in services, then the others.

    State is active (in force), inactive (enabled but not in force, e.g. a host name that does
    not resolve yet) or disabled.
    """
    items = state.client().mappings(connection, counters=counters)
    if as_json:
        print_json({"mappings": items})
        return
    rows = [
        [
            m["name"],
            m["protocol"],
            str(m["external_port"]),
            str(m["internal_port"]),
            _target_text(m),
            _mapping_state(m),
            "builtin" if m.get("builtin") else str(m.get("source", "static")),
            *([_hits_text(m.get("hits"))] if counters else []),  # type: ignore[arg-type]
        ]
        for m in items
    ]
    print_table(
        [
            "Name",
            "Proto",
            "Ext",
            "Int",
            "Target",
            "State",
            "Source",
            *(["Hits"] if counters else []),
        ],
        rows,
        title=f"Port mappings on {connection}",
    )


def _hits_text(hits: dict[str, int] | None) -> str:
    return "-" if not hits else f"{hits['connections']} ({hits['bytes']} B)"


def _wire(mapping: PortMapping) -> dict[str, object]:
    """The API's mapping body for a validated mapping."""
    return {
        "name": mapping.name,
        "protocol": str(mapping.protocol),
        "external_port": mapping.external_port,
        "internal_port": mapping.internal_port,
        "target": mapping.target,
        "enabled": mapping.enabled,
    }


@mappings.command("add")
@click.argument("connection", type=CONNECTION)
@click.argument("name")
@click.option("--protocol", required=True, type=click.Choice(["tcp", "udp"], case_sensitive=False))
@click.option("--external-port", required=True, metavar="N", help="Port on CONNECTION (1-65535).")
@click.option(
    "--internal-port", metavar="N", help="Port on the target [default: the external port]."
)
@click.option(
    "--target",
    default="gateway",
    show_default=True,
    metavar="IP|HOSTNAME|gateway",
    help="Where to forward: this machine, a private IPv4 address or a host name.",
)
@click.option("--disabled", is_flag=True, help="Add the mapping switched off.")
@click.pass_obj
def mappings_add(
    state: _State,
    connection: str,
    name: str,
    protocol: str,
    external_port: str,
    internal_port: str | None,
    target: str,
    disabled: bool,
) -> None:
    """Add mapping NAME on CONNECTION."""
    from sharewall.model.mapping import make_mapping  # lazy: msgspec

    with _validated():
        mapping = make_mapping(
            name=name,
            protocol=protocol,
            external_port=external_port,
            internal_port=internal_port,
            target=target,
            enabled=not disabled,
        )
    added = state.client().add_mapping(
        connection,
        name=mapping.name,
        protocol=str(mapping.protocol),
        external_port=mapping.external_port,
        internal_port=mapping.internal_port,
        target=mapping.target,
        enabled=mapping.enabled,
    )
    click.echo(
        f"Added {added['name']!r} on {connection}: {added['protocol']} {added['external_port']}"
        f" -> {added['target']}:{added['internal_port']}"
        f" ({'enabled' if added['enabled'] else 'disabled'})."
    )


def _checked_name(name: str) -> str:
    from sharewall.model.mapping import validate_mapping_name  # lazy: msgspec

    with _validated():
        return validate_mapping_name(name)


def _set_enabled(state: _State, connection: str, name: str, enabled: bool) -> None:
    result = state.client().set_mapping_enabled(connection, _checked_name(name), enabled)
    click.echo(
        f"{'Enabled' if result['enabled'] else 'Disabled'} {result['name']!r} on {connection}."
    )


@mappings.command("enable")
@click.argument("connection", type=CONNECTION)
@click.argument("name")
@click.pass_obj
def mappings_enable(state: _State, connection: str, name: str) -> None:
    """Switch mapping NAME on (built-in services too)."""
    _set_enabled(state, connection, name, True)


@mappings.command("disable")
@click.argument("connection", type=CONNECTION)
@click.argument("name")
@click.pass_obj
def mappings_disable(state: _State, connection: str, name: str) -> None:
    """Switch mapping NAME off, keeping it."""
    _set_enabled(state, connection, name, False)


@mappings.command("remove")
@click.argument("connection", type=CONNECTION)
@click.argument("name")
@click.pass_obj
def mappings_remove(state: _State, connection: str, name: str) -> None:
    """Remove mapping NAME (built-in services cannot be removed, only disabled)."""
    removed = state.client().remove_mapping(connection, _checked_name(name))
    click.echo(f"Removed {removed!r} from {connection}.")


def _show_active(state: _State, as_json: bool) -> None:
    view = state.client().active()
    if as_json:
        print_json(view)
        return
    print_table(
        ["Client", "Connections", "Packets", "Bytes"],
        [[g["client"], g["connections"], g["packets"], g["bytes"]] for g in view["by_client"]],
        title=f"Private clients ({view['total']} tracked connections)",
    )
    print_table(
        ["Mapping", "Connections", "Packets", "Bytes", "Remote hosts"],
        [
            [
                g["mapping"],
                g["connections"],
                g["packets"],
                g["bytes"],
                ", ".join(g["remotes"]) or "-",
            ]
            for g in view["by_mapping"]
        ],
        title="Port mappings in use",
    )


# -- the ICF security log ---------------------------------------------------------------------------


@firewall.command("log")
@click.argument("connection", type=CONNECTION)
@click.option("--dropped/--no-dropped", default=None, help="Log dropped packets.")
@click.option("--connections/--no-connections", default=None, help="Log successful connections.")
@click.pass_obj
def firewall_log(
    state: _State, connection: str, dropped: bool | None, connections: bool | None
) -> None:
    """Switch the security log (pfirewall.log) of CONNECTION."""
    if dropped is None and connections is None:
        raise _reject("say what to log: --dropped/--no-dropped, --connections/--no-connections")
    result = state.client().set_security_log(connection, dropped=dropped, connections=connections)
    click.echo(
        f"{connection}: log dropped packets {'on' if result['log_dropped'] else 'off'}, "
        f"log connections {'on' if result['log_connections'] else 'off'}."
    )


@cli.group("log")
def log_group() -> None:
    """The ICF security log (the same events pfirewall.log gets)."""


def _log_line(event: dict[str, Any]) -> str:
    import time

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event.get("timestamp", 0))))
    if event.get("action") == "INFO-EVENTS-LOST":
        return f"{when} INFO-EVENTS-LOST {event.get('info', '-')}"
    proto = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}.get(
        event.get("protocol") or -1, str(event.get("protocol"))
    )

    def dash(key: str) -> str:
        value = event.get(key)
        return "-" if value is None else str(value)

    return (
        f"{when} {event.get('action')} {proto} {dash('src_ip')} {dash('dst_ip')} {dash('src_port')} "
        f"{dash('dst_port')} {dash('connection')}"
    )


@log_group.command("tail")
@click.option("-n", "--lines", default=20, show_default=True, type=click.IntRange(0, 1000))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they happen.")
@json_option
@click.pass_obj
def log_tail(state: _State, lines: int, follow: bool, as_json: bool) -> None:
    """Show the latest security log events (JSON: one object per line with --json)."""
    import json as _json

    events = state.client().log_follow(lines) if follow else iter(state.client().log_tail(lines))
    try:
        for event in events:
            click.echo(_json.dumps(event) if as_json else _log_line(event))
    except KeyboardInterrupt:
        pass


# -- DHCP: leases and reservations ----------------------------------------------------------------


def _expiry_text(expires_at: object) -> str:
    if not isinstance(expires_at, int | float):
        return "never"
    import time

    left = int(expires_at - time.time())
    return "expired" if left <= 0 else f"in {left // 60} min {left % 60} s"


@cli.command()
@json_option
@click.pass_obj
def leases(state: _State, as_json: bool) -> None:
    """List DHCP leases on the private side: MAC, address, host name, expiry, connection."""
    items = state.client().leases()
    if as_json:
        print_json({"leases": items})
        return
    rows = [
        [
            x["mac"],
            x["ip"],
            x.get("hostname") or "-",
            _expiry_text(x.get("expires_at")),
            x.get("connection") or "-",
        ]
        for x in items
    ]
    print_table(["MAC", "Address", "Host name", "Expires", "Connection"], rows, title="Leases")


@cli.group()
def reservations() -> None:
    """Fixed DHCP addresses by MAC (changes apply at once, without dropping leases)."""


@reservations.command("list")
@json_option
@click.pass_obj
def reservations_list(state: _State, as_json: bool) -> None:
    """List the DHCP reservations."""
    items = state.client().reservations()
    if as_json:
        print_json({"reservations": items})
        return
    rows = [[x["mac"], x["ip"], x.get("hostname") or "-"] for x in items]
    print_table(["MAC", "Address", "Host name"], rows, title="Reservations")


@reservations.command("add")
@click.argument("mac")
@click.argument("ip")
@click.option("--hostname", default=None, help="The name DNS answers for this host.")
@click.pass_obj
def reservations_add(state: _State, mac: str, ip: str, hostname: str | None) -> None:
    """Reserve address IP for the client with Ethernet address MAC."""
    from sharewall.model.dhcp import normalize_mac, validate_hostname

    with _validated():
        mac = normalize_mac(mac)
        if hostname:
            validate_hostname(hostname)
    added = state.client().add_reservation(mac, ip, hostname)
    click.echo(f"Reserved {added['ip']} for {added['mac']}.")


@reservations.command("remove")
@click.argument("mac")
@click.pass_obj
def reservations_remove(state: _State, mac: str) -> None:
    """Remove the reservation of MAC."""
    removed = state.client().remove_reservation(mac)
    click.echo(f"Removed the reservation of {removed}.")


# -- mappings import: read, validate locally, send once -------------------------------------------


@dataclass
class _Entry:
    """One mapping as read from a file, before validation."""

    where: str  # "line 4" or "entry 3", for error messages
    fields: dict[str, object]


_TRUE_WORDS = frozenset({"true", "yes", "on", "1", "y"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", "n"})


def _csv_bool(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise _reject(f"{where}: enabled must be true or false, not {text!r}")


def _read_csv(text: str, label: str) -> tuple[list[_Entry], int]:
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    if not reader.fieldnames:
        raise _reject(f"{label}: empty CSV file (expected a header: {','.join(MAPPING_FIELDS)})")
    header = [(f or "").strip().lower() for f in reader.fieldnames]
    unknown = [f for f in header if f not in MAPPING_FIELDS]
    if unknown:
        raise _reject(
            f"{label}: unknown CSV column {unknown[0]!r} (expected: {','.join(MAPPING_FIELDS)})"
        )
    if len(set(header)) != len(header):
        raise _reject(f"{label}: a CSV column appears twice in the header")
    reader.fieldnames = header
    entries: list[_Entry] = []
    try:
        for row in reader:
            where = f"{label} line {reader.line_num}"
            if None in row:
                raise _reject(f"{where}: more cells than the header has columns")
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if not any(cells.values()):
                continue  # blank line
            fields: dict[str, object] = {k: v for k, v in cells.items() if v}
            if "enabled" in fields:
                fields["enabled"] = _csv_bool(str(fields["enabled"]), where)
            entries.append(_Entry(where, fields))
    except csv.Error as exc:
        raise _reject(f"{label} line {reader.line_num}: {exc}") from exc
    return entries, 0


def _read_json(text: str, label: str) -> tuple[list[_Entry], int]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _reject(f"{label}: not valid JSON: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"mappings"}:
        data = data["mappings"]
    if not isinstance(data, list):
        raise _reject(f'{label}: expected a JSON list of mappings or {{"mappings": [...]}}')
    entries: list[_Entry] = []
    skipped = 0
    for index, item in enumerate(data, start=1):
        where = f"{label} entry {index}"
        if not isinstance(item, dict):
            raise _reject(f"{where}: expected an object, not {type(item).__name__}")
        # A `mappings list --json` listing also holds built-in services and mappings made by
        # UPnP/NAT-PMP/PCP: they are not the user's to re-create, so they are skipped.
        if item.get("builtin") is True or item.get("source", "static") != "static":
            skipped += 1
            continue
        unknown = [
            k for k in item if k not in MAPPING_FIELDS and k not in _READ_ONLY_MAPPING_FIELDS
        ]
        if unknown:
            raise _reject(
                f"{where}: unknown field {unknown[0]!r} (expected: {', '.join(MAPPING_FIELDS)})"
            )
        entries.append(_Entry(where, {k: v for k, v in item.items() if k in MAPPING_FIELDS}))
    return entries, skipped


def _read_import_file(path: str, file_format: str) -> tuple[list[_Entry], int, str]:
    """Read FILE into raw entries; returns (entries, skipped, label)."""
    label = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _reject(f"cannot read {label}: {reason}") from exc
    text = text.removeprefix("\ufeff")
    if file_format == "auto":
        suffix = Path(path).suffix.lower()
        if suffix in {".json", ".csv"}:
            file_format = suffix[1:]
        else:
            file_format = "json" if text.lstrip()[:1] in {"[", "{"} else "csv"
    reader = _read_json if file_format == "json" else _read_csv
    entries, skipped = reader(text, label)
    return entries, skipped, label


def _validate_entries(entries: list[_Entry], advance: Callable[[], None]) -> list[PortMapping]:
    """Validate every entry and the file's own duplicates; the daemon checks the rest."""
    from sharewall.model.mapping import make_mapping  # lazy: msgspec

    result: list[PortMapping] = []
    names: dict[str, str] = {}
    ports: dict[tuple[str, int], str] = {}
    for entry in entries:
        missing = [f for f in ("name", "protocol", "external_port") if f not in entry.fields]
        if missing:
            raise _reject(f"{entry.where}: missing {', '.join(missing)}")
        with _validated(f"{entry.where}: "):
            mapping = make_mapping(**cast(dict[str, Any], entry.fields))
        if mapping.name in names:
            raise _reject(
                f"{entry.where}: mapping name {mapping.name!r} already used at {names[mapping.name]}"
            )
        key = (str(mapping.protocol), mapping.external_port)
        if key in ports:
            raise _reject(f"{entry.where}: {key[0]} port {key[1]} already mapped at {ports[key]}")
        names[mapping.name] = entry.where
        ports[key] = entry.where
        result.append(mapping)
        advance()
    return result


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int | None], Callable[[], None]]]:
    """Yield ``start(description, total) -> advance``; a rich progress bar on a terminal only."""
    if not enabled:
        yield lambda _description, _total: lambda: None
        return
    # Imported only here: rich Progress costs ~45 ms and only an interactive import shows it.
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:

        def start(description: str, total: int | None) -> Callable[[], None]:
            task = bar.add_task(description, total=total)
            return lambda: bar.advance(task)

        yield start


@mappings.command("import")
@click.argument("connection", type=CONNECTION)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["auto", "json", "csv"]),
    default="auto",
    show_default=True,
    help="auto: by the file's suffix, else JSON if it starts with [ or {, else CSV.",
)
@click.pass_obj
def mappings_import(state: _State, connection: str, file: str, file_format: str) -> None:
    """Add the mappings in FILE to CONNECTION in one transaction: all or none.

    FILE ('-' for standard input) is JSON, a list of mappings or {"mappings": [...]} (so the
    output of `mappings list --json` works; built-in and UPnP/NAT-PMP/PCP entries are skipped),
    or CSV with a header naming some of: name,protocol,external_port,internal_port,target,enabled
    (the first three are required). Every entry is validated before anything is sent.
    """
    entries, skipped, label = _read_import_file(file, file_format)
    if not entries:
        raise _reject(f"{label} holds no mappings to import")
    with _progress(use_rich(sys.stderr)) as start:
        validated = _validate_entries(entries, start(f"Validating {label}", len(entries)))
        start(f"Importing {len(validated)} mappings into {connection}", None)
        added = state.client().import_mappings(connection, [_wire(m) for m in validated])
    note = f" (skipped {skipped} built-in or dynamic entries)" if skipped else ""
    click.echo(f"Imported {added} mappings into {connection}{note}.")


# -- the lab --------------------------------------------------------------------------------------


def _import_lab_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name == name:
            raise CliError(f"{name} is not available in this installation") from exc
        raise CliError(f"cannot load {name}: {exc}") from exc


def _run_lab(action: str, call: Callable[[], object]) -> None:
    if os.geteuid() != 0:
        raise CliError(f"lab {action} needs root: it creates network namespaces")
    import subprocess  # lazy: only the lab runs tools

    try:
        result = call()
    except (OSError, subprocess.SubprocessError, SharewallError) as exc:
        raise CliError(f"lab {action} failed: {exc}") from exc
    # The lab may report failure by returning False or a non-zero exit status.
    if result is False:
        raise click.exceptions.Exit(EXIT_FAILED)
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        raise click.exceptions.Exit(result)


def _lab(prefix: str | None) -> Any:
    lab_class = _import_lab_module("sharewall.lab").Lab
    return lab_class() if prefix is None else lab_class(prefix=prefix)


prefix_option = click.option(
    "--prefix",
    metavar="P",
    help="Name prefix of the lab's namespaces and links [default: the lab's own].",
)


@cli.group()
def lab() -> None:
    """A throwaway lab of network namespaces: Internet host, gateway, LAN clients (root)."""


@lab.command("up")
@prefix_option
def lab_up(prefix: str | None) -> None:
    """Build the lab topology (outside the root namespace) and start sharewalld in its gateway."""
    demo = _import_lab_module("sharewall.lab_demo")
    _run_lab("up", lambda: demo.up() if prefix is None else demo.up(prefix))


@lab.command("down")
@prefix_option
def lab_down(prefix: str | None) -> None:
    """Remove the lab topology (and the sharewalld running in it)."""
    demo = _import_lab_module("sharewall.lab_demo")
    _run_lab("down", lambda: demo.down() if prefix is None else demo.down(prefix))


@lab.command("demo")
@prefix_option
def lab_demo(prefix: str | None) -> None:
    """Bring the lab up, show NAT, the firewall, a mapping and hairpin, tear it down."""

    def run() -> object:
        demo = _import_lab_module("sharewall.lab_demo")
        return demo.run() if prefix is None else demo.run(prefix)

    _run_lab("demo", run)


def main() -> None:
    """Console-script entry point (``sharewall``)."""
    cli(prog_name="sharewall")


if __name__ == "__main__":
    main()
