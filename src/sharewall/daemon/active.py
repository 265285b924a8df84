"""Who is connected through the gateway right now: conntrack, grouped by private client and by mapping.

Read on demand from a kernel dump (about 20 ms per 1,000 entries, no nft involved), so looking never slows
the data path or waits behind mapping updates.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sharewall.backends.conntrack import ConntrackEntry, count, dump

from .engine import Engine

MAX_LISTED = 500  # entries returned in full; the groups always cover the whole dump


def _bytes(entry: ConntrackEntry) -> tuple[int, int]:
    packets = (entry.orig_packets or 0) + (entry.reply_packets or 0)
    octets = (entry.orig_bytes or 0) + (entry.reply_bytes or 0)
    return packets, octets


async def active_view(engine: Engine, *, limit: int = 10000) -> dict[str, Any]:
    config = engine.config
    private_nets: list[ipaddress.IPv4Network] = []
    for conn_id in config.sharing.private:
        conn = config.connections.get(conn_id)
        link = engine.facts.links.get(conn.name) if conn else None
        if link is not None:
            private_nets.extend(i.network for i in link.ipv4)
    public = config.connections.get(config.sharing.public or "")
    public_link = engine.facts.links.get(public.name) if public else None
    public_addrs = {str(i.ip) for i in public_link.ipv4} if public_link else set()
    mapping_names: dict[tuple[int, int], str] = {}
    if public is not None:
        for m in public.effective_mappings():
            if m.enabled:
                mapping_names[(m.protocol.number, m.external_port)] = m.name

    entries = await dump(limit=limit)
    clients: dict[str, dict[str, Any]] = {}
    mappings: dict[str, dict[str, Any]] = {}
    for entry in entries:
        orig = entry.original
        packets, octets = _bytes(entry)
        try:
            src = ipaddress.ip_address(orig.src)
        except ValueError:
            continue
        if isinstance(src, ipaddress.IPv4Address) and any(src in n for n in private_nets):
            group = clients.setdefault(
                orig.src, {"client": orig.src, "connections": 0, "packets": 0, "bytes": 0}
            )
            group["connections"] += 1
            group["packets"] += packets
            group["bytes"] += octets
        if orig.dst in public_addrs and orig.dst_port is not None:
            name = mapping_names.get((entry.protocol, orig.dst_port))
            if name is not None:
                group = mappings.setdefault(
                    name,
                    {"mapping": name, "connections": 0, "packets": 0, "bytes": 0, "remotes": set()},
                )
                group["connections"] += 1
                group["packets"] += packets
                group["bytes"] += octets
                group["remotes"].add(orig.src)
    for group in mappings.values():
        group["remotes"] = sorted(group["remotes"])
    return {
        "total": len(entries),
        "kernel_count": count(),
        "by_client": sorted(clients.values(), key=lambda g: -int(g["bytes"])),
        "by_mapping": sorted(mappings.values(), key=lambda g: -int(g["bytes"])),
        "connections": [e.to_json() for e in entries[:MAX_LISTED]],
        "counters": all(e.orig_bytes is not None for e in entries) if entries else True,
    }


async def mapping_hits(nft: Any, conn_id: str) -> dict[tuple[str, int], dict[str, int]]:
    """Connections opened through each mapping of a connection, from the nft map element counters.

    Read on a separate nft context (*nft*), so mapping updates never wait for it; it lists two maps,
    which costs a few tens of milliseconds with 10,000 mappings — on demand only.
    """
    from sharewall.compiler.mappings import MappingSets, slot_of
    from sharewall.compiler.ruleset import FAMILY, TABLE

    sets = MappingSets.for_slot(slot_of(conn_id))
    hits: dict[tuple[str, int], dict[str, int]] = {}
    for name in (sets.dnat_addr, sets.redir_port):
        out = await nft.run_json(
            [{"list": {"map": {"family": FAMILY, "table": TABLE, "name": name}}}]
        )
        for obj in out:
            for item in obj.get("map", {}).get("elem", []):
                elem = (
                    item[0].get("elem", {})
                    if isinstance(item, list) and isinstance(item[0], dict)
                    else {}
                )
                key = elem.get("val", {}).get("concat")
                counter = elem.get("counter")
                if isinstance(key, list) and len(key) == 2 and isinstance(counter, dict):
                    hits[(str(key[0]), int(key[1]))] = {
                        "connections": int(counter.get("packets", 0)),
                        "bytes": int(counter.get("bytes", 0)),
                    }
    return hits


async def flush_mapping_flows(engine: Engine, conn_id: str, keys: list[tuple[str, int]]) -> int:
    """End the tracked flows that came in through mappings that were just removed or disabled.

    Without this an existing flow (a UDP stream, an open TCP connection) would keep going through a
    mapping that no longer exists, until conntrack forgot it. Matches the original direction's
    protocol, destination port and destination address (this connection's own addresses, which also
    covers hairpin flows from the private side).
    """
    from sharewall.backends.conntrack import delete

    conn = engine.config.connections.get(conn_id)
    link = engine.facts.links.get(conn.name) if conn else None
    if link is None or not keys:
        return 0
    addresses = {str(i.ip) for i in link.ipv4}
    numbers = {"tcp": 6, "udp": 17}
    wanted = {(numbers[proto], port) for proto, port in keys if proto in numbers}
    doomed = [
        e
        for e in await dump(family=4)
        if (e.protocol, e.original.dst_port) in wanted and e.original.dst in addresses
    ]
    return await delete(doomed)
