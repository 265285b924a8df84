"""JSON views of the engine's state for the local API (the shapes documented in docs/cli.md)."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import msgspec

import sharewall
from sharewall.facts import Link
from sharewall.model.config import ConnectionConfig
from sharewall.model.connection import (
    SHAREABLE_MEDIA,
    Characteristics,
    ConnectionStatus,
    MediaType,
    SharingRole,
    media_type_for_kind,
)
from sharewall.model.mapping import PortMapping
from sharewall.model.nat_policy import classify_public_address

from .engine import Engine


def connection_status(link: Link | None) -> ConnectionStatus:
    if link is None:
        return ConnectionStatus.HARDWARE_NOT_PRESENT
    if not link.up:
        return ConnectionStatus.DISCONNECTED
    if not link.carrier:
        return ConnectionStatus.MEDIA_DISCONNECTED
    return ConnectionStatus.CONNECTED


def sharing_role(engine: Engine, conn: ConnectionConfig) -> SharingRole:
    sharing = engine.config.sharing
    if sharing.public == conn.id:
        return SharingRole.PUBLIC
    if conn.id in sharing.private:
        return SharingRole.PRIVATE
    return SharingRole.NONE


def connection_view(
    engine: Engine, conn: ConnectionConfig, *, detail: bool = False
) -> dict[str, Any]:
    link = engine.facts.links.get(conn.name)
    status = connection_status(link)
    media = media_type_for_kind(link.kind if link else "", wireless=bool(link and link.wireless))
    role = sharing_role(engine, conn)
    chars = Characteristics.ALL_USERS
    if media in SHAREABLE_MEDIA:
        chars |= Characteristics.HOMENET_CAPABLE
    if role is SharingRole.PUBLIC:
        chars |= Characteristics.SHARED
    if role is SharingRole.PRIVATE:
        chars |= Characteristics.SHARED_PRIVATE
    if conn.firewall:
        chars |= Characteristics.FIREWALLED
    device = (
        "wireless" if link and link.wireless else (link.kind if link and link.kind else "ethernet")
    )
    view: dict[str, Any] = {
        "id": conn.id,
        "name": conn.name,
        "device": device,
        "status": status.name.lower().replace("_", "-"),
        "status_code": int(status),
        "media_type": media.name.lower(),
        "media_type_code": int(media),
        "characteristics": int(chars),
        "sharing": role.value,
        "firewall": conn.firewall,
        "present": link is not None,
        "mac": link.mac if link else conn.mac,
        "ipv4": [str(i) for i in link.ipv4] if link else [],
        "ipv6": [str(i) for i in link.ipv6] if link else [],
    }
    if detail:
        view["icmp"] = msgspec.to_builtins(conn.icmp)
    return view


def mapping_view(engine: Engine, conn: ConnectionConfig, mapping: PortMapping) -> dict[str, Any]:
    active, address = engine.mapping_active(conn, mapping)
    return {
        "name": mapping.name,
        "protocol": mapping.protocol.value,
        "external_port": mapping.external_port,
        "internal_port": mapping.internal_port,
        "target": mapping.target,
        "enabled": mapping.enabled,
        "builtin": mapping.builtin,
        "options": mapping.options,
        "active": active,
        "target_address": address,
        "source": mapping.source.value,
        "client": mapping.client or None,
        "description": mapping.description,
        "expires_at": mapping.expires_at,
        "remaining_s": None
        if mapping.expires_at is None
        else round(max(0.0, mapping.expires_at - time.time()), 1),
    }


def ref(conn: ConnectionConfig | None) -> dict[str, str] | None:
    return None if conn is None else {"id": conn.id, "name": conn.name}


def sharing_view(engine: Engine) -> dict[str, Any]:
    sharing = engine.config.sharing
    conns = engine.config.connections
    public = conns.get(sharing.public) if sharing.public else None
    public_address = None
    if public is not None:
        link = engine.facts.links.get(public.name)
        if link is not None and link.ipv4:
            public_address = str(link.ipv4[0].ip)
    return {
        "active": sharing.active,
        "public": ref(public),
        "private": [ref(conns[c]) for c in sharing.private if c in conns],
        "public_address": public_address,
        # NAT traversal (issue 4): whether mappings on that address are reachable from the Internet.
        "public_address_class": classify_public_address(
            None if public_address is None else ipaddress.IPv4Address(public_address)
        ).value,
    }


def status_view(engine: Engine) -> dict[str, Any]:
    return {
        "version": sharewall.__version__,
        "sharing": sharing_view(engine),
        "connections": sum(
            1 for c in engine.config.connections.values() if c.name in engine.facts.links
        ),
        "mappings": engine.desired.mapping_count(),
        "problems": engine.current_problems(),
    }


__all__ = ["MediaType", "connection_view", "mapping_view", "sharing_view", "status_view"]
