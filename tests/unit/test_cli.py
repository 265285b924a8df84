"""The ``sharewall`` CLI: one-line errors with documented exit codes, output shapes, import cost.

No root and no daemon: argument errors must be caught before any socket is touched (checked with
a listening socket that must see no connection), and daemon interactions run against the fake
daemon of ``test_client``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from sharewall.cli.main import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ICMP_OPTION_NAMES,
    cli,
)
from sharewall.model.firewall import ICMP_OPTIONS
from tests.unit.test_client import (
    CONNECTION,
    MAPPING,
    SHARING,
    FakeDaemon,
    error_reply,
    json_reply,
    running_fake_daemon,
)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


def assert_one_error_line(result: Result, exit_code: int, *fragments: str) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sharewall: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def watched_socket() -> Iterator[tuple[str, socket.socket]]:
    """A listening socket that a rejected command must never connect to."""
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        path = os.path.join(directory, "watch.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(4)
            listener.setblocking(False)
            yield path, listener


@pytest.fixture
def fake_daemon() -> Iterator[FakeDaemon]:
    with running_fake_daemon() as daemon:
        yield daemon


def on(daemon: FakeDaemon, *args: str) -> Result:
    return run("--socket", daemon.socket_path, *args)


# -- local rejection: exit 2, one line, no socket contact ------------------------------------------

ADD = ("mappings", "add", "eth0", "web")

REJECTED_LOCALLY: list[tuple[tuple[str, ...], str]] = [
    ((*ADD, "--protocol", "tcp", "--external-port", "0"), "external port must be from 1 to 65535"),
    ((*ADD, "--protocol", "tcp", "--external-port", "70000"), "not 70000"),
    ((*ADD, "--protocol", "tcp", "--external-port", "eighty"), "external port must be a number"),
    ((*ADD, "--protocol", "udp", "--external-port", "53", "--internal-port", "0"), "internal port"),
    ((*ADD, "--protocol", "sctp", "--external-port", "80"), "'sctp' is not one of"),
    ((*ADD, "--protocol", "tcp", "--external-port", "80", "--target", "bad_host!"), "bad_host!"),
    ((*ADD, "--protocol", "tcp", "--external-port", "80", "--target", "127.0.0.1"), "127.0.0.1"),
    ((*ADD, "--protocol", "tcp", "--external-port", "80", "--target", "224.0.0.9"), "224.0.0.9"),
    ((*ADD, "--external-port", "80"), "Missing option '--protocol'"),
    ((*ADD, "--protocol", "tcp"), "Missing option '--external-port'"),
    (("mappings", "add", "eth0"), "Missing argument 'NAME'"),
    (("mappings", "add", "", "web", "--protocol", "tcp", "--external-port", "80"), "empty"),
    (("mappings", "remove", "eth0", ""), "mapping name must be a non-empty string"),
    (("mappings", "enable", "eth0"), "Missing argument 'NAME'"),
    (("mappings", "list"), "Missing argument 'CONNECTION'"),
    (("share", "eth0", "lan0", "--private-address", "10.0.0.1/33"), "10.0.0.1/33"),
    (("share", "eth0", "lan0", "--private-address", "8.8.8.1/24"), "not a private"),
    (("share", "eth0", "lan0", "--private-address", "lan"), "'lan'"),
    (("share", "eth0", "lan0", "--private-address", ""), "must not be empty"),
    (("share", "eth0"), "Missing argument 'PRIVATE...'"),
    (("share", "eth0", "lan0", "eth0"), "both the public and a private"),
    (("share", "eth0", "lan0", "lan0"), "more than once: lan0"),
    (("firewall", "enable"), "Missing argument 'CONNECTION'"),
    (("firewall", "icmp", "eth0", "--allow", "ping"), "unknown ICMP option 'ping'"),
    (("firewall", "icmp", "eth0", "--allow", "redirect", "--deny", "redirect"), "both allowed"),
    (("connections", "--bogus"), "No such option '--bogus'"),
    (("frobnicate",), "No such command 'frobnicate'"),
]


@pytest.mark.parametrize(("args", "fragment"), REJECTED_LOCALLY, ids=lambda v: str(v)[:60])
def test_bad_arguments_are_rejected_locally(
    watched_socket: tuple[str, socket.socket], args: tuple[str, ...], fragment: str
) -> None:
    """A mistake prints one line, exits 2, and never reaches the daemon."""
    path, listener = watched_socket
    result = run("--socket", path, *args)
    assert_one_error_line(result, EXIT_USAGE, fragment)
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_usage_errors_point_at_help() -> None:
    line = assert_one_error_line(run("mappings", "add", "eth0"), EXIT_USAGE)
    assert line.endswith("Try 'sharewall mappings add --help'.")


# -- daemon unavailable: exit 3 -------------------------------------------------------------------


def test_missing_socket_exits_3(tmp_path: Path) -> None:
    path = str(tmp_path / "nothing.sock")
    result = run("--socket", path, "status")
    assert_one_error_line(
        result, EXIT_UNAVAILABLE, f"cannot reach sharewalld at {path}: No such file or directory"
    )


def test_socket_from_environment(tmp_path: Path) -> None:
    path = str(tmp_path / "env.sock")
    result = run("connections", "--json", env={"SHAREWALL_SOCKET": path})
    assert_one_error_line(result, EXIT_UNAVAILABLE, path)


def test_refused_socket_exits_3() -> None:
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        path = os.path.join(directory, "dead.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(path)
            assert_one_error_line(run("--socket", path, "unshare"), EXIT_UNAVAILABLE, "refused")


# -- help ----------------------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


ALL_COMMANDS = list(_command_paths(cli))


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "sharewall")
def test_help_works_for_every_command(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Usage: sharewall")


def test_every_documented_command_exists() -> None:
    expected = {
        ("connections",), ("share",), ("unshare",), ("firewall", "enable"),
        ("firewall", "disable"), ("firewall", "icmp"), ("mappings", "list"),
        ("mappings", "add"), ("mappings", "enable"), ("mappings", "disable"),
        ("mappings", "remove"), ("mappings", "import"), ("status",), ("teardown",),
        ("lab", "up"), ("lab", "down"), ("lab", "demo"),
    }  # fmt: skip
    assert expected <= set(ALL_COMMANDS)


def test_icmp_names_in_help_match_the_model() -> None:
    assert [n.replace("-", "_") for n in ICMP_OPTION_NAMES] == list(ICMP_OPTIONS)


# -- import cost ---------------------------------------------------------------------------------


def test_cli_import_stays_light() -> None:
    """`sharewall status --json` must not pay for aiohttp, pyroute2, rich or msgspec."""
    code = (
        "import sys, sharewall.cli.main\n"
        "heavy = {'aiohttp', 'pyroute2', 'rich', 'msgspec'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# -- against the fake daemon ---------------------------------------------------------------------

STATUS = {
    "version": "0.1.0",
    "sharing": SHARING,
    "connections": 2,
    "mappings": 10,
    "problems": [],
}


def test_status_json_is_the_api_reply(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route("GET", "/v1/status", json_reply(STATUS))
    result = on(fake_daemon, "status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == STATUS


def test_status_human(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route("GET", "/v1/status", json_reply(dict(STATUS, problems=["bad key x"])))
    result = on(fake_daemon, "status")
    assert result.exit_code == 0
    assert "sharing eth0 (203.0.113.5) with lan0" in result.stdout
    assert "  - bad key x" in result.stdout


def test_read_commands_json_wraps_like_the_api(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route("GET", "/v1/connections", json_reply({"connections": [CONNECTION]}))
    fake_daemon.route("GET", "/v1/connections/eth0/mappings", json_reply({"mappings": [MAPPING]}))
    icmp = dict.fromkeys(ICMP_OPTIONS, False)
    fake_daemon.route("GET", "/v1/connections/eth0", json_reply(dict(CONNECTION, icmp=icmp)))
    assert json.loads(on(fake_daemon, "connections", "--json").stdout) == {
        "connections": [CONNECTION]
    }
    assert json.loads(on(fake_daemon, "mappings", "list", "eth0", "--json").stdout) == {
        "mappings": [MAPPING]
    }
    assert json.loads(on(fake_daemon, "firewall", "icmp", "eth0", "--json").stdout) == {
        "icmp": icmp
    }


def test_tables_are_plain_when_piped(fake_daemon: FakeDaemon) -> None:
    """Not a terminal: aligned columns, no box drawing, no escape codes."""
    fake_daemon.route("GET", "/v1/connections", json_reply({"connections": [CONNECTION]}))
    fake_daemon.route("GET", "/v1/connections/eth0/mappings", json_reply({"mappings": [MAPPING]}))
    lines = on(fake_daemon, "connections").stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "STATUS", "SHARING", "FIREWALL", "IPV4", "ID"]
    assert lines[1].split() == [
        "eth0", "lan", "connected", "public", "on", "203.0.113.5/24", "c0ffee01",
    ]  # fmt: skip
    listing = on(fake_daemon, "mappings", "list", "eth0").stdout
    assert "\x1b" not in listing and "─" not in listing
    assert listing.splitlines()[1].split() == [
        "web", "tcp", "8080", "80", "192.168.137.10", "active", "static",
    ]  # fmt: skip


def test_add_sends_the_validated_mapping(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route(
        "POST", "/v1/connections/eth0/mappings", json_reply({"mapping": MAPPING}, 201)
    )
    result = on(fake_daemon, *ADD, "--protocol", "TCP", "--external-port", "8080",
                "--target", "Gateway", "--disabled")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert fake_daemon.requests[-1].body == {
        "name": "web",
        "protocol": "tcp",
        "external_port": 8080,
        "internal_port": 8080,
        "target": "gateway",
        "enabled": False,
    }
    assert "Added 'web' on eth0" in result.stdout


@pytest.mark.parametrize(
    ("route", "code"),
    [
        (("POST", "duplicate_mapping", 409), EXIT_FAILED),
        (("POST", "unknown_connection", 404), EXIT_FAILED),
        (("POST", "invalid_argument", 400), EXIT_FAILED),
        (("POST", "permission_denied", 403), EXIT_FAILED),
    ],
)
def test_daemon_errors_exit_1_with_its_message(
    fake_daemon: FakeDaemon, route: tuple[str, str, int], code: int
) -> None:
    method, error_code, status = route
    fake_daemon.route(
        method,
        "/v1/connections/eth0/mappings",
        error_reply(status, error_code, f"no: {error_code}"),
    )
    result = on(fake_daemon, *ADD, "--protocol", "tcp", "--external-port", "80")
    assert_one_error_line(result, code, f"sharewall: error: no: {error_code}")


def test_share_and_firewall_and_icmp(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route("POST", "/v1/sharing", json_reply({"sharing": SHARING}))
    fake_daemon.route("PUT", "/v1/connections/eth0/firewall", json_reply({"firewall": True}))
    icmp = {name: name == "inbound_echo_request" for name in ICMP_OPTIONS}
    fake_daemon.route("PATCH", "/v1/connections/eth0/icmp", json_reply({"icmp": icmp}))

    result = on(fake_daemon, "share", "eth0", "lan0", "--private-address", "10.9.0.1/24")
    assert result.stdout == "Sharing eth0 (203.0.113.5) with lan0.\n"
    assert fake_daemon.requests[-1].body == {
        "public": "eth0", "private": ["lan0"], "private_address": "10.9.0.1/24"}  # fmt: skip
    assert on(fake_daemon, "firewall", "enable", "eth0").stdout == "Firewall on for eth0.\n"
    result = on(fake_daemon, "firewall", "icmp", "eth0", "--allow", "Inbound-Echo-Request",
                "--deny", "AllowRedirect")  # fmt: skip
    assert fake_daemon.requests[-1].body == {
        "allow": ["inbound_echo_request"],
        "deny": ["redirect"],
    }
    assert ["inbound-echo-request", "yes"] in [line.split() for line in result.stdout.splitlines()]


# -- mappings import ------------------------------------------------------------------------------

IMPORT_PATH = "/v1/connections/eth0/mappings/import"


def test_import_csv_is_one_request(fake_daemon: FakeDaemon, tmp_path: Path) -> None:
    fake_daemon.route("POST", IMPORT_PATH, json_reply({"added": 3}))
    source = tmp_path / "maps.csv"
    source.write_text(
        "name,protocol,external_port,internal_port,target,enabled\n"
        "web,tcp,8080,80,192.168.137.10,yes\n"
        "\n"
        "dns,UDP,5353,,,\n"
        "ssh,tcp,2222,22,nas,false\n"
    )
    result = on(fake_daemon, "mappings", "import", "eth0", str(source))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Imported 3 mappings into eth0.\n"
    assert len(fake_daemon.requests) == 1
    assert fake_daemon.requests[0].body == {
        "mappings": [
            {"name": "web", "protocol": "tcp", "external_port": 8080, "internal_port": 80,
             "target": "192.168.137.10", "enabled": True},
            {"name": "dns", "protocol": "udp", "external_port": 5353, "internal_port": 5353,
             "target": "gateway", "enabled": True},
            {"name": "ssh", "protocol": "tcp", "external_port": 2222, "internal_port": 22,
             "target": "nas", "enabled": False},
        ]
    }  # fmt: skip


def test_import_accepts_a_listing(fake_daemon: FakeDaemon, tmp_path: Path) -> None:
    """`mappings list --json` output imports as is; built-in and UPnP entries are skipped."""
    fake_daemon.route("POST", IMPORT_PATH, json_reply({"added": 1}))
    builtin = dict(MAPPING, name="FTP Server", builtin=True, external_port=21)
    upnp = dict(MAPPING, name="upnp-1", source="upnp", external_port=9999)
    source = tmp_path / "listing"
    source.write_text(json.dumps({"mappings": [builtin, MAPPING, upnp]}))
    result = on(fake_daemon, "mappings", "import", "eth0", str(source))
    assert result.exit_code == 0, result.stderr
    assert "skipped 2" in result.stdout
    sent = fake_daemon.requests[0].body["mappings"]
    assert [m["name"] for m in sent] == ["web"]


def test_import_from_stdin(fake_daemon: FakeDaemon) -> None:
    fake_daemon.route("POST", IMPORT_PATH, json_reply({"added": 1}))
    stdin = json.dumps([{"name": "a", "protocol": "tcp", "external_port": 1000}])
    result = CliRunner().invoke(
        cli, ["--socket", fake_daemon.socket_path, "mappings", "import", "eth0", "-"], input=stdin
    )
    assert result.exit_code == 0, result.stderr


BAD_IMPORTS: list[tuple[str, str, str]] = [
    ("bad.csv", "name,protocol,external_port\nweb,tcp,80\nftp,tcp,0\n", "bad.csv line 3: external port"),
    ("dup.csv", "name,protocol,external_port\na,tcp,80\nb,tcp,80\n", "tcp port 80 already mapped at"),
    ("dupname.csv", "name,protocol,external_port\na,tcp,80\na,udp,80\n", "'a' already used"),
    ("col.csv", "name,proto,external_port\n", "unknown CSV column 'proto'"),
    ("short.csv", "name,protocol\na,tcp\n", "missing external_port"),
    ("cells.csv", "name,protocol,external_port\na,tcp,80,extra\n", "more cells"),
    ("flag.csv", "name,protocol,external_port,enabled\na,tcp,80,maybe\n", "enabled must be"),
    ("empty.csv", "", "empty CSV"),
    ("none.json", "[]", "holds no mappings"),
    ("bad.json", "[{", "not valid JSON"),
    ("shape.json", '{"items": []}', "expected a JSON list"),
    ("field.json", '[{"name": "a", "protocol": "tcp", "external_port": 1, "x": 2}]', "field 'x'"),
    ("type.json", '[{"name": "a", "protocol": "tcp", "external_port": 1, "enabled": "yes"}]',
     "entry 1: enabled must be true or false"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "fragment"), BAD_IMPORTS, ids=lambda v: str(v)[:20])
def test_bad_import_files_send_nothing(
    fake_daemon: FakeDaemon, tmp_path: Path, name: str, content: str, fragment: str
) -> None:
    source = tmp_path / name
    source.write_text(content)
    result = on(fake_daemon, "mappings", "import", "eth0", str(source))
    assert_one_error_line(result, EXIT_USAGE, fragment)
    assert fake_daemon.requests == []


def test_import_of_missing_file_is_usage_error(tmp_path: Path) -> None:
    result = run("mappings", "import", "eth0", str(tmp_path / "nope.csv"))
    assert_one_error_line(result, EXIT_USAGE, "nope.csv")


# -- lab ------------------------------------------------------------------------------------------


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_lab_missing_module_is_one_line(as_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sharewall.lab_demo", None)
    result = run("lab", "demo")
    assert_one_error_line(result, EXIT_FAILED, "sharewall.lab_demo is not available")


def test_lab_calls_the_lab_with_its_prefix(as_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    module = types.ModuleType("sharewall.lab_demo")
    module.up = lambda prefix="sw-lab": calls.append(("up", prefix)) or 0  # type: ignore[attr-defined]
    module.down = lambda prefix="sw-lab": calls.append(("down", prefix)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sharewall.lab_demo", module)
    assert run("lab", "up", "--prefix", "swx").exit_code == 0
    assert run("lab", "down").exit_code == 0
    assert calls == [("up", "swx"), ("down", "sw-lab")]


def test_lab_command_failure_is_one_line(as_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_up(prefix: str = "sw-lab") -> int:
        raise subprocess.CalledProcessError(2, ["ip", "netns", "add", "x"], stderr="no\nway")

    module = types.ModuleType("sharewall.lab_demo")
    module.up = broken_up  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sharewall.lab_demo", module)
    assert_one_error_line(run("lab", "up"), EXIT_FAILED, "lab up failed")


def test_lab_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert_one_error_line(run("lab", "up"), EXIT_FAILED, "needs root")
