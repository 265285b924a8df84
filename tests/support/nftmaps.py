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
