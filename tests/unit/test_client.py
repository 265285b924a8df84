"""The API client against a tiny fake daemon: decoding, URL encoding and typed errors.

The fake is a stdlib ``http.server`` on a Unix socket in a temporary directory, answering canned
JSON; it stands in for sharewalld only in these unit tests (the real daemon is tested in the
namespace tier). ``tests/unit/test_cli.py`` reuses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from sharewall.api.client import Client, default_socket_path
from sharewall.errors import (
    ConflictError,
    DaemonUnavailableError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    SharewallError,
    ValidationError,
)

CONNECTION: dict[str, Any] = {
    "id": "c0ffee01",
    "name": "eth0",
    "device": "veth",
    "status": "connected",
    "status_code": 2,
    "media_type": "lan",
    "media_type_code": 3,
    "characteristics": 0x0400,
    "sharing": "public",
    "firewall": True,
    "present": True,
    "mac": "02:00:00:00:00:01",
    "ipv4": ["203.0.113.5/24"],
    "ipv6": [],
}

MAPPING: dict[str, Any] = {
    "name": "web",
    "protocol": "tcp",
    "external_port": 8080,
    "internal_port": 80,
    "target": "192.168.137.10",
    "enabled": True,
    "builtin": False,
    "options": 0,
    "active": True,
    "target_address": "192.168.137.10",
    "source": "static",
}

SHARING: dict[str, Any] = {
    "active": True,
    "public": {"id": "c0ffee01", "name": "eth0"},
    "private": [{"id": "c0ffee02", "name": "lan0"}],
    "public_address": "203.0.113.5",
}

Reply = tuple[int, bytes]
Route = Callable[["RecordedRequest"], Reply]


def json_reply(body: object, status: int = 200) -> Route:
    data = json.dumps(body).encode()
    return lambda _request: (status, data)


def error_reply(status: int, code: str, message: str) -> Route:
    return json_reply({"error": {"code": code, "message": message}}, status)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDaemon:
    """Routes ``(method, raw path)`` to canned replies and records every request."""

    socket_path: str
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    connections_accepted: int = 0
    close_after_reply: bool = False  # drop keep-alive silently, as an idle timeout does
    hung_up: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def route(self, method: str, path: str, reply: Route) -> None:
        self.routes[(method, path)] = reply


def _handler_for(daemon: FakeDaemon) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp
        timeout = 5  # a stuck client cannot hold the test's server thread for ever

        def setup(self) -> None:
            daemon.connections_accepted += 1
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            request = RecordedRequest(self.command, self.path, dict(self.headers), body)
            daemon.requests.append(request)
            route = daemon.routes.get((self.command, self.path))
            if route is None:
                status, data = 404, b'{"error": {"code": "internal", "message": "no route"}}'
            else:
                status, data = route(request)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if daemon.close_after_reply:
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 - stdlib names

    return Handler


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing outlives a test

    def __init__(self, daemon: FakeDaemon) -> None:
        super().__init__(daemon.socket_path, _handler_for(daemon))
        self.fake = daemon

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.fake.hung_up.release()


@contextlib.contextmanager
def running_fake_daemon() -> Iterator[FakeDaemon]:
    """Serve a FakeDaemon on a short socket path (AF_UNIX paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        daemon = FakeDaemon(os.path.join(directory, "sw.sock"))
        server = _Server(daemon)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield daemon
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture
def fake_daemon() -> Iterator[FakeDaemon]:
    with running_fake_daemon() as daemon:
        yield daemon


@pytest.fixture
def client(fake_daemon: FakeDaemon) -> Iterator[Client]:
    with Client(fake_daemon.socket_path, timeout=5) as sw:
        yield sw


# -- decoding -------------------------------------------------------------------------------------


def test_status_is_decoded(fake_daemon: FakeDaemon, client: Client) -> None:
    """status() returns the daemon's object as it was sent."""
    status = {
        "version": "0.1.0",
        "sharing": SHARING,
        "connections": 3,
        "mappings": 9,
        "problems": ["config: bad key x"],
    }
    fake_daemon.route("GET", "/v1/status", json_reply(status))
    assert client.status() == status
    request = fake_daemon.requests[0]
    assert request.headers["Accept"] == "application/json"
    assert request.body is None


def test_lists_are_unwrapped(fake_daemon: FakeDaemon, client: Client) -> None:
    """connections() and mappings() return the list inside the reply object."""
    fake_daemon.route("GET", "/v1/connections", json_reply({"connections": [CONNECTION]}))
    fake_daemon.route("GET", "/v1/connections/eth0/mappings", json_reply({"mappings": [MAPPING]}))
    assert client.connections() == [CONNECTION]
    assert client.mappings("eth0") == [MAPPING]


def test_refs_and_names_are_url_encoded(fake_daemon: FakeDaemon, client: Client) -> None:
    """A connection or mapping name with '/', spaces or '%' stays one path segment."""
    detail = dict(CONNECTION, name="my wan/1", icmp={"redirect": False})
    fake_daemon.route("GET", "/v1/connections/my%20wan%2F1", json_reply(detail))
    fake_daemon.route(
        "PATCH",
        "/v1/connections/my%20wan%2F1/mappings/Web%20Server%20%28HTTP%29%2F100%25",
        json_reply({"mapping": MAPPING}),
    )
    assert client.connection("my wan/1")["icmp"] == {"redirect": False}
    client.set_mapping_enabled("my wan/1", "Web Server (HTTP)/100%", True)
    assert fake_daemon.requests[-1].body == {"enabled": True}


def test_change_bodies_follow_the_contract(fake_daemon: FakeDaemon, client: Client) -> None:
    """Each change method sends the documented body and returns the documented field."""
    fake_daemon.route("POST", "/v1/sharing", json_reply({"sharing": SHARING}))
    fake_daemon.route("DELETE", "/v1/sharing", json_reply({"sharing": dict(SHARING, active=False)}))
    fake_daemon.route("PUT", "/v1/connections/eth0/firewall", json_reply({"firewall": False}))
    fake_daemon.route(
        "PATCH", "/v1/connections/eth0/icmp", json_reply({"icmp": {"redirect": True}})
    )
    fake_daemon.route(
        "POST", "/v1/connections/eth0/mappings", json_reply({"mapping": MAPPING}, 201)
    )
    fake_daemon.route("POST", "/v1/connections/eth0/mappings/import", json_reply({"added": 2}))
    fake_daemon.route("DELETE", "/v1/connections/eth0/mappings/web", json_reply({"removed": "web"}))
    fake_daemon.route("POST", "/v1/teardown", json_reply({"ok": True}))

    assert client.share("eth0", ["lan0", "lan1"], "10.1.0.1/24") == SHARING
    assert fake_daemon.requests[-1].body == {
        "public": "eth0",
        "private": ["lan0", "lan1"],
        "private_address": "10.1.0.1/24",
    }
    client.share("eth0", "lan0")
    assert fake_daemon.requests[-1].body == {
        "public": "eth0",
        "private": ["lan0"],
        "private_address": None,
    }
    assert client.unshare()["active"] is False
    assert client.set_firewall("eth0", False) is False
    assert fake_daemon.requests[-1].body == {"enabled": False}
    assert client.change_icmp("eth0", allow=["redirect"]) == {"redirect": True}
    assert fake_daemon.requests[-1].body == {"allow": ["redirect"], "deny": []}
    assert client.add_mapping("eth0", name="web", protocol="tcp", external_port=8080) == MAPPING
    assert fake_daemon.requests[-1].body == {
        "name": "web",
        "protocol": "tcp",
        "external_port": 8080,
        "internal_port": 8080,
        "target": "gateway",
        "enabled": True,
    }
    entries = [{"name": "a", "protocol": "udp", "external_port": 1}]
    assert client.import_mappings("eth0", entries) == 2
    assert fake_daemon.requests[-1].body == {"mappings": entries}
    assert client.remove_mapping("eth0", "web") == "web"
    client.teardown()
    assert (fake_daemon.requests[-1].method, fake_daemon.requests[-1].body) == ("POST", None)


def test_one_connection_is_reused(fake_daemon: FakeDaemon, client: Client) -> None:
    """Keep-alive: several requests travel over one socket connection."""
    fake_daemon.route("GET", "/v1/connections", json_reply({"connections": []}))
    for _ in range(3):
        client.connections()
    assert fake_daemon.connections_accepted == 1


def test_a_connection_the_daemon_dropped_is_reopened(
    fake_daemon: FakeDaemon, client: Client
) -> None:
    """An idle connection closed by the daemon does not fail the next request, even a POST."""
    fake_daemon.close_after_reply = True
    fake_daemon.route("GET", "/v1/status", json_reply({"version": "x"}))
    fake_daemon.route("POST", "/v1/teardown", json_reply({"ok": True}))
    client.status()
    assert fake_daemon.hung_up.acquire(timeout=5)
    client.teardown()
    assert fake_daemon.hung_up.acquire(timeout=5)
    client.status()
    assert [r.method for r in fake_daemon.requests] == ["GET", "POST", "GET"]
    assert fake_daemon.connections_accepted == 3


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected_type"),
    [
        (404, "unknown_connection", NotFoundError),
        (404, "unknown_mapping", NotFoundError),
        (409, "duplicate_mapping", ConflictError),
        (409, "builtin_mapping", ConflictError),
        (400, "invalid_argument", ValidationError),
        (403, "permission_denied", PermissionDeniedError),
    ],
)
def test_error_objects_become_typed_exceptions(
    fake_daemon: FakeDaemon,
    client: Client,
    status: int,
    code: str,
    expected_type: type[SharewallError],
) -> None:
    """The daemon's {"error": {code, message}} is raised as the matching typed exception."""
    fake_daemon.route(
        "DELETE",
        "/v1/connections/eth0/mappings/web",
        error_reply(status, code, f"it went wrong: {code}"),
    )
    with pytest.raises(expected_type) as caught:
        client.remove_mapping("eth0", "web")
    assert caught.value.code == ErrorCode(code)
    assert caught.value.message == f"it went wrong: {code}"


def test_unknown_error_code_is_a_plain_sharewall_error(
    fake_daemon: FakeDaemon, client: Client
) -> None:
    fake_daemon.route("GET", "/v1/status", error_reply(500, "from_the_future", "new kind"))
    with pytest.raises(SharewallError, match="new kind") as caught:
        client.status()
    assert caught.value.code == ErrorCode.INTERNAL


@pytest.mark.parametrize(
    ("status", "data", "match"),
    [
        (200, b"<html>hello</html>", "is not JSON"),
        (200, b"[1, 2]", "is not a JSON object"),
        (200, b"\xff\xfe", "is not JSON"),
        (502, b"Bad Gateway", "HTTP 502"),
        (500, b'{"detail": "no error object"}', "HTTP 500"),
    ],
)
def test_replies_that_break_the_contract_raise_sharewall_error(
    fake_daemon: FakeDaemon, client: Client, status: int, data: bytes, match: str
) -> None:
    fake_daemon.route("GET", "/v1/status", lambda _request: (status, data))
    with pytest.raises(SharewallError, match=match) as caught:
        client.status()
    assert type(caught.value) is SharewallError


def test_reply_lacking_its_field_is_an_error(fake_daemon: FakeDaemon, client: Client) -> None:
    fake_daemon.route("GET", "/v1/connections", json_reply({"links": []}))
    with pytest.raises(SharewallError, match="lacks 'connections'"):
        client.connections()


def test_empty_ref_is_refused_without_a_request(fake_daemon: FakeDaemon, client: Client) -> None:
    with pytest.raises(ValidationError):
        client.mappings("")
    assert fake_daemon.requests == []


def test_missing_socket_is_daemon_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    with Client(path) as sw, pytest.raises(DaemonUnavailableError) as caught:
        sw.status()
    assert caught.value.message == (f"cannot reach sharewalld at {path}: No such file or directory")
    assert caught.value.code == ErrorCode.DAEMON_UNAVAILABLE


def test_refused_connection_is_daemon_unavailable() -> None:
    """A socket file nobody listens on (a daemon that died) gives ECONNREFUSED."""
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        path = os.path.join(directory, "dead.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bound_not_listening:
            bound_not_listening.bind(path)
            with Client(path) as sw, pytest.raises(DaemonUnavailableError, match="refused"):
                sw.status()


def test_daemon_that_never_answers_times_out() -> None:
    """A listening socket that never replies ends in DaemonUnavailableError, not a hang."""
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        path = os.path.join(directory, "mute.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
            mute.bind(path)
            mute.listen(1)
            with (
                Client(path, timeout=0.2) as sw,
                pytest.raises(DaemonUnavailableError, match="did not answer"),
            ):
                sw.status()


def test_daemon_dying_mid_change_says_the_outcome_is_unknown() -> None:
    """A POST whose connection is cut is not retried, and the error says so."""
    with tempfile.TemporaryDirectory(prefix="sw-t", dir="/tmp") as directory:
        path = os.path.join(directory, "dies.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(2)

            def accept_and_hang_up() -> None:
                conn, _ = server.accept()
                conn.recv(65536)
                conn.close()

            thread = threading.Thread(target=accept_and_hang_up)
            thread.start()
            try:
                with (
                    Client(path, timeout=5) as sw,
                    pytest.raises(DaemonUnavailableError, match="may or may not be applied"),
                ):
                    sw.teardown()
            finally:
                thread.join(timeout=10)


def test_socket_path_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHAREWALL_SOCKET", "/tmp/elsewhere.sock")
    assert default_socket_path() == "/tmp/elsewhere.sock"
    assert Client().socket_path == "/tmp/elsewhere.sock"
    monkeypatch.setenv("SHAREWALL_SOCKET", "")
    assert default_socket_path() == "/run/sharewall/sharewall.sock"
