"""The OpenAPI 3.1 description of the local API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

import sharewall

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, *, body: dict[str, Any] | None = None, ok: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {
                "description": "success",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": _ERROR}},
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


_REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "connection name or id",
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "mapping name (URL-encoded)",
}
_MAPPING = {
    "type": "object",
    "required": ["name", "protocol", "external_port"],
    "properties": {
        "name": {"type": "string", "maxLength": 255},
        "protocol": {"enum": ["tcp", "udp"]},
        "external_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "internal_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "target": {"type": "string", "description": "'gateway', an IPv4 address or a host name"},
        "enabled": {"type": "boolean", "default": True},
        "options": {"type": "integer", "minimum": 0},
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "sharewall local API", "version": sharewall.__version__},
        "paths": {
            "/v1/status": {"get": _op("Sharing state, counts and problems")},
            "/v1/connections": {"get": _op("Every network connection")},
            "/v1/connections/{ref}": {
                "parameters": [_REF],
                "get": _op("One connection with ICMP settings"),
            },
            "/v1/sharing": {
                "post": _op(
                    "Share a public connection with private ones",
                    body={
                        "type": "object",
                        "required": ["public", "private"],
                        "properties": {
                            "public": {"type": "string"},
                            "private": {"type": "array", "items": {"type": "string"}},
                            "private_address": {"type": ["string", "null"]},
                        },
                    },
                ),
                "delete": _op("Stop sharing, undoing exactly what sharing did"),
            },
            "/v1/connections/{ref}/firewall": {
                "parameters": [_REF],
                "put": _op(
                    "Turn ICF on or off",
                    body={
                        "type": "object",
                        "required": ["enabled"],
                        "properties": {"enabled": {"type": "boolean"}},
                    },
                ),
            },
            "/v1/connections/{ref}/icmp": {
                "parameters": [_REF],
                "patch": _op(
                    "Allow or deny ICMP options",
                    body={
                        "type": "object",
                        "properties": {
                            "allow": {"type": "array", "items": {"type": "string"}},
                            "deny": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                ),
            },
            "/v1/connections/{ref}/mappings": {
                "parameters": [_REF],
                "get": _op("Port mappings (built-in services first)"),
                "post": _op("Add a port mapping", body=_MAPPING, ok="201"),
            },
            "/v1/connections/{ref}/mappings/import": {
                "parameters": [_REF],
                "post": _op(
                    "Add many mappings in one transaction",
                    body={
                        "type": "object",
                        "required": ["mappings"],
                        "properties": {"mappings": {"type": "array", "items": _MAPPING}},
                    },
                ),
            },
            "/v1/connections/{ref}/mappings/{name}": {
                "parameters": [_REF, _NAME],
                "patch": _op(
                    "Enable or disable a mapping",
                    body={
                        "type": "object",
                        "required": ["enabled"],
                        "properties": {"enabled": {"type": "boolean"}},
                    },
                ),
                "delete": _op("Remove a mapping (built-in services cannot be removed)"),
            },
            "/v1/active": {
                "get": _op(
                    "Conntrack entries through the gateway, by private client and by mapping"
                )
            },
            "/v1/log": {"get": _op("Recent security log events; ?follow=1 streams NDJSON")},
            "/v1/connections/{ref}/log": {
                "parameters": [_REF],
                "put": _op(
                    "Switch the security log of a connection",
                    body={
                        "type": "object",
                        "properties": {
                            "log_dropped": {"type": "boolean"},
                            "log_connections": {"type": "boolean"},
                        },
                    },
                ),
            },
            "/v1/leases": {"get": _op("DHCP leases: MAC, address, host name, expiry, connection")},
            "/v1/reservations": {
                "get": _op("DHCP reservations"),
                "post": _op(
                    "Reserve an address for a MAC (replaces that MAC's reservation)",
                    body={
                        "type": "object",
                        "required": ["mac", "ip"],
                        "properties": {
                            "mac": {"type": "string"},
                            "ip": {"type": "string"},
                            "hostname": {"type": ["string", "null"]},
                        },
                    },
                    ok="201",
                ),
            },
            "/v1/reservations/{mac}": {
                "parameters": [
                    {"name": "mac", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "delete": _op("Remove a reservation (leases are kept)"),
            },
            "/v1/teardown": {
                "post": _op("Remove everything sharewall put into the kernel and stop")
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            }
        },
    }
