"""nft and sysctl backends without root: output parsing, name checks, path choice, the subprocess path
against a fake ``nft`` script, and sysctl key mapping.

No test here opens a libnftables context or touches the kernel; the namespace tier
(``tests/netns/test_nft_backend.py``) runs both paths against the real kernel.
"""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from sharewall.backends import nft
from sharewall.backends.sysctl import sysctl_path, write_sysctl
from sharewall.errors import KernelError, ValidationError

METAINFO = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}

FAKE_NFT = """#!/bin/sh
# Records its argv and stdin next to itself; fails if a .fail file exists; prints a .out file.
printf '%s\\n' "$*" > "$0.args"
cat > "$0.stdin"
if [ -e "$0.fail" ]; then
    printf 'Error: Could not process rule: No such file or directory\\n\\n' >&2
    exit 1
fi
if [ -e "$0.out" ]; then cat "$0.out"; fi
exit 0
"""


@pytest.fixture
def fake_nft(tmp_path: Path) -> Path:
    path = tmp_path / "nft"
    path.write_text(FAKE_NFT)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def cli_only(monkeypatch: pytest.MonkeyPatch, fake_nft: Path) -> Path:
    """Make libnftables look missing and the fake script the nft binary."""
    monkeypatch.setattr(nft, "_library", lambda: None)
    monkeypatch.setattr(nft, "_find_nft_binary", lambda: str(fake_nft))
    return fake_nft


# --- output parsing ------------------------------------------------------------------------------


def test_parse_skips_metainfo_and_joins_documents() -> None:
    """Several documents (one per list command) become one list; metainfo objects are dropped."""
    table = {"table": {"family": "inet", "name": "t", "handle": 1}}
    chain = {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 1}}
    text = (
        json.dumps({"nftables": [METAINFO, table]})
        + "\n"
        + json.dumps({"nftables": [METAINFO, chain]}, indent=2)
        + "\n\n"
    )
    assert nft.parse_nft_output(text) == [table, chain]


@pytest.mark.parametrize("text", ["", "\n", "  \n\t"])
def test_parse_empty_output(text: str) -> None:
    assert nft.parse_nft_output(text) == []


@pytest.mark.parametrize("text", ["{", "[1, 2]", '{"other": []}', '{"nftables": 3}'])
def test_parse_rejects_non_nft_output(text: str) -> None:
    with pytest.raises(KernelError):
        nft.parse_nft_output(text)


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "name"), [("inet6", "t"), ("ip", ""), ("ip", "a\0b"), ("ip", "x" * 256)]
)
def test_table_reference_checks(family: str, name: str) -> None:
    with pytest.raises(ValidationError):
        nft._check_table_ref(family, name)


def test_table_names_are_json_not_text() -> None:
    """A hostile table name is only ever a JSON string; it is accepted as a name, never parsed."""
    nft._check_table_ref("ip", 'x"; flush ruleset')
    payload = nft._encode_commands([{"list": {"table": {"family": "ip", "name": 'x"; flush'}}}])
    assert json.loads(payload)["nftables"][0]["list"]["table"]["name"] == 'x"; flush'


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0"])
def test_netns_names_are_checked(name: str) -> None:
    with pytest.raises(ValidationError):
        nft._netns_path(name)


def test_netns_path() -> None:
    assert nft._netns_path("sw-tn1") == "/run/netns/sw-tn1"
    assert nft._netns_path("/proc/1/ns/net") == "/proc/1/ns/net"


def test_missing_library_is_reported_not_raised() -> None:
    assert nft._load_library("libsharewall-does-not-exist.so.9") is None


# --- the subprocess path, against a fake nft -----------------------------------------------------


def test_auto_mode_falls_back_to_the_binary(cli_only: Path) -> None:
    """Without libnftables, Nft() runs ``nft -j -f -`` with the whole batch on stdin."""
    (cli_only.parent / "nft.out").write_text(
        json.dumps({"nftables": [METAINFO, {"table": {"family": "ip", "name": "t"}}]})
    )
    ctx = nft.Nft()
    try:
        assert not ctx.uses_library
        commands = [{"add": {"table": {"family": "ip", "name": "t"}}}]
        assert ctx.run_json(commands) == [{"table": {"family": "ip", "name": "t"}}]
        assert (cli_only.parent / "nft.args").read_text().split() == ["-j", "-f", "-"]
        assert json.loads((cli_only.parent / "nft.stdin").read_text()) == {"nftables": commands}
        assert ctx.table_exists("ip", "t")
        assert not ctx.table_exists("ip", "other")
    finally:
        ctx.close()


def test_binary_failure_raises_kernel_error_with_nft_text(cli_only: Path) -> None:
    (cli_only.parent / "nft.fail").touch()
    ctx = nft.Nft(mode="cli")
    try:
        with pytest.raises(KernelError, match="No such file or directory") as info:
            ctx.run_json([{"delete": {"table": {"family": "ip", "name": "t"}}}])
        assert info.value.message == "Error: Could not process rule: No such file or directory"
        # An absent table: the list fails, and the header listing (same fake) fails too.
        with pytest.raises(KernelError):
            ctx.list_table("ip", "t")
    finally:
        ctx.close()


def test_binary_dry_run_and_text(cli_only: Path) -> None:
    ctx = nft.Nft(mode="cli")
    try:
        ctx.check_json([{"add": {"table": {"family": "ip", "name": "t"}}}])
        assert (cli_only.parent / "nft.args").read_text().split() == ["-j", "-c", "-f", "-"]
        (cli_only.parent / "nft.out").write_text("table ip t {\n}\n")
        assert ctx.run_text("list tables") == "table ip t {\n}\n"
        assert (cli_only.parent / "nft.args").read_text().split() == ["-f", "-"]
    finally:
        ctx.close()


def test_empty_batch_runs_nothing(cli_only: Path) -> None:
    ctx = nft.Nft(mode="cli")
    try:
        assert ctx.run_json([]) == []
        assert not (cli_only.parent / "nft.args").exists()
    finally:
        ctx.close()


def test_library_mode_refuses_to_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nft, "_library", lambda: None)
    with pytest.raises(KernelError, match=r"libnftables\.so\.1"):
        nft.Nft(mode="library")


def test_nothing_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nft, "_library", lambda: None)
    monkeypatch.setattr(nft, "_find_nft_binary", lambda: None)
    with pytest.raises(KernelError):
        nft.Nft()


def test_context_is_bound_to_its_thread(cli_only: Path) -> None:
    """Calls from another thread are refused: the subprocess path would act on that thread's netns."""
    ctx = nft.Nft(mode="cli")
    errors: list[BaseException] = []

    def use() -> None:
        try:
            ctx.run_json([{"add": {"table": {"family": "ip", "name": "t"}}}])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join(timeout=10)
    ctx.close()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_closed_context_refuses(cli_only: Path) -> None:
    ctx = nft.Nft(mode="cli")
    ctx.close()
    ctx.close()
    with pytest.raises(RuntimeError):
        ctx.run_json([{"add": {"table": {"family": "ip", "name": "t"}}}])


# --- sysctl keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        ("net.ipv4.conf.eth0/10.forwarding", "/proc/sys/net/ipv4/conf/eth0.10/forwarding"),
        ("net/ipv4/conf/eth0.10/forwarding", "/proc/sys/net/ipv4/conf/eth0.10/forwarding"),
    ],
)
def test_sysctl_key_forms(key: str, path: str) -> None:
    assert sysctl_path(key) == path


@pytest.mark.parametrize(
    "key",
    [
        "kernel/hostname",
        "kernel.hostname",
        "/proc/sys/net/ipv4/ip_forward",
        "net/../kernel/hostname",
        "net.ipv4..ip_forward",
        "net/ipv4/./ip_forward",
        "net",
        "net/",
        "net//ipv4",
        "net/ipv4/ip forward",
        "vm/../net/ipv4",
    ],
)
def test_sysctl_key_rejected(key: str) -> None:
    with pytest.raises(ValidationError):
        sysctl_path(key)


@pytest.mark.parametrize("value", ["1\n0", "a\0", "x" * 5000])
def test_sysctl_value_rejected_before_any_write(value: str) -> None:
    # A key that does not exist, so that even a regression could not change this namespace.
    with pytest.raises(ValidationError):
        write_sysctl("net/sharewall_no_such_key", value)
