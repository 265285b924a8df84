"""Read sharewall's nft maps in a lab namespace, the way tests need them."""

from __future__ import annotations

import json
from typing import Any


def slot(connection_id: str) -> str:
    """The nft name prefix of a connection (see sharewall.compiler.mappings.slot_of)."""
    return "c" + "".join(ch for ch in connection_id.lower() if ch in "0123456789abcdef")[:8]


def element_key(raw: Any) -> tuple[Any, ...]:
    """An element's key as a tuple; elements of maps with counters arrive wrapped in {"elem": ...}."""
    if isinstance(raw, dict) and "elem" in raw:
        raw = raw["elem"]["val"]
    if isinstance(raw, dict) and "concat" in raw:
        return tuple(raw["concat"])
    return (raw,)


def map_items(lab: Any, name: str) -> dict[tuple[Any, ...], Any]:
    """key -> data of map *name* in table inet sharewall of the lab's gateway."""
    out = lab.run("gw", "nft", "-j", "list", "map", "inet", "sharewall", name).stdout
    for obj in json.loads(out)["nftables"]:
        if "map" in obj:
            return {element_key(e[0]): e[1] for e in obj["map"].get("elem", [])}
    return {}


def nft_objects(lab: Any) -> list[dict[str, Any]]:
    """Every object of table inet sharewall in the lab's gateway (nft -j list table)."""
    out = lab.run("gw", "nft", "-j", "list", "table", "inet", "sharewall").stdout
    objects: list[dict[str, Any]] = json.loads(out)["nftables"]
    return objects


def chains(lab: Any) -> set[str]:
    return {o["chain"]["name"] for o in nft_objects(lab) if "chain" in o}


def elements(lab: Any, name: str) -> list[Any]:
    """The raw elements of set or map *name* (each may be wrapped, see :func:`element_key`)."""
    for obj in nft_objects(lab):
        body = obj.get("map") or obj.get("set")
        if body is not None and body["name"] == name:
            return list(body.get("elem", []))
    raise AssertionError(f"no set or map {name} in the ruleset")


def dnat_ports(lab: Any, connection_id: str) -> dict[int, str]:
    """external port -> private address, from the connection's DNAT map."""
    return {int(k[1]): v for k, v in map_items(lab, slot(connection_id) + "_dnat_addr").items()}


def gateway_tcp_ports(lab: Any, connection_id: str) -> set[int]:
    """External TCP ports mapped to the gateway itself on the connection."""
    return {int(element_key(e)[0]) for e in elements(lab, slot(connection_id) + "_gw_tcp")}
