"""The local API: HTTP + JSON over a Unix socket (aiohttp), authorised by SO_PEERCRED.

Anyone who can open the socket may read. Changes need uid 0 or membership of group ``sharewall``.
Errors are ``{"error": {"code": ..., "message": ...}}`` with a stable code (sharewall.errors.ErrorCode).
"""

from __future__ import annotations

import grp
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sharewall.errors import (
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    SharewallError,
    ValidationError,
)
from sharewall.model.dhcp import make_reservation, normalize_mac
from sharewall.model.mapping import make_mapping

from .engine import Engine
from .openapi import openapi_document
from .private_services import PrivateServices
from .seclog import SecurityLog
from .views import connection_view, mapping_view, sharing_view, status_view

log = logging.getLogger("sharewall.ipc")

MAX_BODY_BYTES = 32 * 1024 * 1024  # a 10,000-mapping import is ~2 MB of JSON
ADMIN_GROUP = "sharewall"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_credentials(request: web.Request) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process on the other end of the Unix socket."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        raise PermissionDeniedError("cannot identify the caller")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def may_change(pid: int, uid: int, gid: int) -> bool:
    if uid == 0:
        return True
    try:
        admin_gid = grp.getgrnam(ADMIN_GROUP).gr_gid
    except KeyError:
        return False
    if gid == admin_gid:
        return True
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return str(admin_gid) in line.split()[1:]
    except OSError:
        return False
    return False


def error_response(err: SharewallError) -> web.Response:
    return web.json_response({"error": err.to_dict()}, status=err.http_status)


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.method not in {"GET", "HEAD"}:
            pid, uid, gid = peer_credentials(request)
            if not may_change(pid, uid, gid):
                raise PermissionDeniedError(
                    f"changing sharewall needs root or membership of group {ADMIN_GROUP!r} (uid {uid})"
                )
        return await handler(request)
    except SharewallError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = ErrorCode.INVALID_ARGUMENT if exc.status < 500 else ErrorCode.INTERNAL
            return web.json_response(
                {"error": {"code": str(code), "message": exc.reason}}, status=exc.status
            )
        raise
    except Exception:
        log.exception("internal error handling %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"code": "internal", "message": "internal error; see the daemon log"}},
            status=500,
        )


async def body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def want_bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValidationError(f"{key!r} must be true or false")
    return value


def want_str_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{key!r} must be a list of strings")
    return value


def build_app(
    engine: Engine,
    *,
    services: PrivateServices | None = None,
    security_log: SecurityLog | None = None,
    counter_nft: Any = None,
    on_teardown: Callable[[], None] | None = None,
) -> web.Application:
    app = web.Application(middlewares=[errors_and_auth], client_max_size=MAX_BODY_BYTES)
    routes = web.RouteTableDef()

    @routes.get("/")
    async def admin_page(_: web.Request) -> web.Response:
        from .web.admin import render_admin_page

        html = render_admin_page(
            engine,
            leases=services.lease_views() if services is not None else [],
            events=security_log.tail(30) if security_log is not None else [],
        )
        return web.Response(text=html, content_type="text/html")

    @routes.get("/openapi.json")
    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    @routes.get("/v1/status")
    async def status(_: web.Request) -> web.Response:
        return web.json_response(status_view(engine))

    @routes.get("/v1/connections")
    async def connections(_: web.Request) -> web.Response:
        conns = sorted(
            engine.config.connections.values(),
            key=lambda c: (c.name not in engine.facts.links, c.name),
        )
        return web.json_response({"connections": [connection_view(engine, c) for c in conns]})

    @routes.get("/v1/active")
    async def active(_: web.Request) -> web.Response:
        from .active import active_view

        return web.json_response(await active_view(engine))

    @routes.get("/v1/connections/{ref:[^/]+}")
    async def connection(request: web.Request) -> web.Response:
        conn = engine.desired.connection(request.match_info["ref"])
        return web.json_response(connection_view(engine, conn, detail=True))

    @routes.post("/v1/sharing")
    async def share(request: web.Request) -> web.Response:
        data = await body(request)
        public = data.get("public")
        if not isinstance(public, str):
            raise ValidationError("'public' must be a connection name or id")
        private_address = data.get("private_address")
        if private_address is not None and not isinstance(private_address, str):
            raise ValidationError("'private_address' must be a string like 192.168.137.1/24")
        await engine.share(public, want_str_list(data, "private"), private_address)
        return web.json_response({"sharing": sharing_view(engine)})

    @routes.delete("/v1/sharing")
    async def unshare(_: web.Request) -> web.Response:
        await engine.unshare()
        return web.json_response({"sharing": sharing_view(engine)})

    @routes.put("/v1/connections/{ref:[^/]+}/firewall")
    async def firewall(request: web.Request) -> web.Response:
        data = await body(request)
        enabled = await engine.set_firewall(request.match_info["ref"], want_bool(data, "enabled"))
        return web.json_response({"firewall": enabled})

    @routes.patch("/v1/connections/{ref:[^/]+}/icmp")
    async def icmp(request: web.Request) -> web.Response:
        data = await body(request)
        settings = await engine.change_icmp(
            request.match_info["ref"], want_str_list(data, "allow"), want_str_list(data, "deny")
        )
        from msgspec import to_builtins

        return web.json_response({"icmp": to_builtins(settings)})

    @routes.get("/v1/connections/{ref:[^/]+}/mappings")
    async def mappings(request: web.Request) -> web.Response:
        conn = engine.desired.connection(request.match_info["ref"])
        items = [mapping_view(engine, conn, m) for m in conn.effective_mappings()]
        if request.query.get("counters") in ("1", "true") and counter_nft is not None:
            from .active import mapping_hits

            try:
                hits = await mapping_hits(counter_nft, conn.id)
            except SharewallError:
                hits = {}  # the connection is not present: its maps are not in the kernel
            for item in items:
                item["hits"] = hits.get((item["protocol"], item["external_port"]))
        return web.json_response({"mappings": items})

    def parse_mapping(data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("each mapping must be a JSON object")
        unknown = set(data) - {
            "name",
            "protocol",
            "external_port",
            "internal_port",
            "target",
            "enabled",
            "options",
        }
        if unknown:
            raise ValidationError(f"unknown mapping field(s): {', '.join(sorted(unknown))}")
        for required in ("name", "protocol", "external_port"):
            if required not in data:
                raise ValidationError(f"mapping field {required!r} is required")
        return make_mapping(
            name=data["name"],
            protocol=data["protocol"],
            external_port=data["external_port"],
            internal_port=data.get("internal_port"),
            target=data.get("target", "gateway"),
            enabled=data.get("enabled", True),
            options=data.get("options", 0),
        )

    @routes.post("/v1/connections/{ref:[^/]+}/mappings")
    async def add_mapping(request: web.Request) -> web.Response:
        mapping = parse_mapping(await body(request))
        ref = request.match_info["ref"]
        await engine.add_mappings(ref, [mapping])
        conn = engine.desired.connection(ref)
        return web.json_response({"mapping": mapping_view(engine, conn, mapping)}, status=201)

    @routes.post("/v1/connections/{ref:[^/]+}/mappings/import")
    async def import_mappings(request: web.Request) -> web.Response:
        data = await body(request)
        items = data.get("mappings")
        if not isinstance(items, list):
            raise ValidationError("'mappings' must be a list")
        parsed = []
        for index, item in enumerate(items):
            try:
                parsed.append(parse_mapping(item))
            except ValidationError as err:
                raise ValidationError(f"mapping #{index + 1}: {err.message}") from None
        if parsed:
            await engine.add_mappings(request.match_info["ref"], parsed)
        return web.json_response({"added": len(parsed)})

    @routes.patch("/v1/connections/{ref:[^/]+}/mappings/{name:[^/]+}")
    async def change_mapping(request: web.Request) -> web.Response:
        data = await body(request)
        ref, name = request.match_info["ref"], request.match_info["name"]
        change = await engine.set_mapping_enabled(ref, name, want_bool(data, "enabled"))
        conn = engine.desired.connection(ref)
        assert change.new is not None
        return web.json_response({"mapping": mapping_view(engine, conn, change.new)})

    @routes.delete("/v1/connections/{ref:[^/]+}/mappings/{name:[^/]+}")
    async def remove_mapping(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await engine.remove_mapping(request.match_info["ref"], name)
        return web.json_response({"removed": name})

    def private_services() -> PrivateServices:
        if services is None:
            raise NotFoundError("the DHCP allocator is not available in this daemon")
        return services

    def reservation_views() -> list[dict[str, Any]]:
        return [
            {"mac": r.mac, "ip": r.ip, "hostname": r.hostname} for r in engine.config.reservations
        ]

    @routes.get("/v1/leases")
    async def leases(_: web.Request) -> web.Response:
        return web.json_response({"leases": private_services().lease_views()})

    @routes.get("/v1/reservations")
    async def reservations(_: web.Request) -> web.Response:
        return web.json_response({"reservations": reservation_views()})

    @routes.post("/v1/reservations")
    async def add_reservation(request: web.Request) -> web.Response:
        data = await body(request)
        mac, ip, hostname = data.get("mac"), data.get("ip"), data.get("hostname")
        if not isinstance(mac, str) or not isinstance(ip, str):
            raise ValidationError("'mac' and 'ip' are required strings")
        if hostname is not None and not isinstance(hostname, str):
            raise ValidationError("'hostname' must be a string")
        reservation = make_reservation(mac, ip, hostname, private_services().private_gateways())
        kept = [r for r in engine.config.reservations if r.mac != reservation.mac]
        await engine.set_reservations([*kept, reservation])
        return web.json_response(
            {
                "reservation": {
                    "mac": reservation.mac,
                    "ip": reservation.ip,
                    "hostname": reservation.hostname,
                }
            },
            status=201,
        )

    @routes.delete("/v1/reservations/{mac:[^/]+}")
    async def remove_reservation(request: web.Request) -> web.Response:
        mac = normalize_mac(request.match_info["mac"])
        kept = [r for r in engine.config.reservations if r.mac != mac]
        if len(kept) == len(engine.config.reservations):
            raise NotFoundError(f"no reservation for {mac}", code=ErrorCode.UNKNOWN_MAPPING)
        await engine.set_reservations(kept)
        return web.json_response({"removed": mac})

    def the_log() -> SecurityLog:
        if security_log is None:
            raise NotFoundError("the security log is not available in this daemon")
        return security_log

    @routes.put("/v1/connections/{ref:[^/]+}/log")
    async def set_log(request: web.Request) -> web.Response:
        data = await body(request)
        unknown = set(data) - {"log_dropped", "log_connections"}
        if unknown:
            raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
        values = {}
        for key in ("log_dropped", "log_connections"):
            if key in data:
                values[key] = want_bool(data, key)
        settings = await engine.set_security_log(
            request.match_info["ref"],
            dropped=values.get("log_dropped"),
            connections=values.get("log_connections"),
        )
        from msgspec import to_builtins

        return web.json_response({"log": to_builtins(settings)})

    @routes.get("/v1/log")
    async def log_tail(request: web.Request) -> web.StreamResponse:
        try:
            lines = int(request.query.get("lines", "50"))
        except ValueError:
            raise ValidationError("'lines' must be a number") from None
        lines = max(0, min(lines, 1000))
        sec = the_log()
        if request.query.get("follow") not in ("1", "true"):
            return web.json_response({"events": sec.tail(lines)})
        # Newline-delimited JSON, one event per line, until the client goes away.
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        async with sec.subscribe() as queue:
            for event in sec.tail(lines):
                await response.write(json.dumps(event).encode() + b"\n")
            while True:
                event = await queue.get()
                await response.write(json.dumps(event).encode() + b"\n")

    @routes.post("/v1/teardown")
    async def teardown(_: web.Request) -> web.Response:
        await engine.teardown()
        if on_teardown is not None:
            on_teardown()
        return web.json_response({"ok": True})

    app.add_routes(routes)
    return app


async def serve(app: web.Application, socket_path: Path) -> web.AppRunner:
    """Listen on *socket_path* (mode 0666: authorisation is by peer credentials, not file mode)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists() or socket_path.is_symlink():
        socket_path.unlink()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.UnixSite(runner, str(socket_path))
    await site.start()
    os.chmod(socket_path, 0o666)
    return runner
