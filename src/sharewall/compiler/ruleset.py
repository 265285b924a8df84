"""The compiled nftables ruleset as data, and its rendering to libnftables JSON commands.

Pure: no I/O. A ``Ruleset`` separates *structure* (sets, chains, rules: changes need a table replace) from
*elements* (map and set contents: changes are element adds/deletes, ~0.1 ms each). Everything is kept in a
deterministic order so that equal inputs give byte-identical JSON (golden tests, "no change" detection).

Interface names only ever appear as JSON strings (stack.md §1b pitfall 2): never in nft text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAMILY = "inet"
TABLE = "sharewall"

Json = dict[str, Any]
Key = tuple[str | int, ...]
Value = str | int | None


@dataclass(frozen=True, slots=True)
class SetDecl:
    """A named set (``data_type`` None) or map (``data_type`` set)."""

    name: str
    key_type: tuple[str, ...]
    data_type: str | None = None
    comment: str = ""
    counter: bool = False  # every element counts the packets that matched it

    def to_json(self) -> Json:
        body: Json = {
            "family": FAMILY,
            "table": TABLE,
            "name": self.name,
            "type": self.key_type[0] if len(self.key_type) == 1 else list(self.key_type),
        }
        if self.counter:
            body["stmt"] = [{"counter": None}]
        if self.data_type is not None:
            body["map"] = self.data_type
            return {"map": body}
        return {"set": body}


@dataclass(frozen=True, slots=True)
class ChainDecl:
    name: str
    hook: str | None = None  # base chains only
    chain_type: str = "filter"
    priority: int = 0
    policy: str = "accept"

    def to_json(self) -> Json:
        body: Json = {"family": FAMILY, "table": TABLE, "name": self.name}
        if self.hook is not None:
            body.update(
                type=self.chain_type, hook=self.hook, prio=self.priority, policy=self.policy
            )
        return {"chain": body}


@dataclass(frozen=True, slots=True)
class Rule:
    chain: str
    expr: tuple[Json, ...]
    comment: str = ""

    def to_json(self) -> Json:
        body: Json = {
            "family": FAMILY,
            "table": TABLE,
            "chain": self.chain,
            "expr": list(self.expr),
        }
        if self.comment:
            body["comment"] = self.comment
        return {"rule": body}


@dataclass(slots=True)
class Ruleset:
    """One table's desired content. ``elements[set_name]`` maps key -> data (None for plain sets)."""

    sets: list[SetDecl] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)  # named counter objects
    chains: list[ChainDecl] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    elements: dict[str, dict[Key, Value]] = field(default_factory=dict)

    def structure(
        self,
    ) -> tuple[tuple[SetDecl, ...], tuple[str, ...], tuple[ChainDecl, ...], tuple[Rule, ...]]:
        return (tuple(self.sets), tuple(self.counters), tuple(self.chains), tuple(self.rules))

    def same_structure(self, other: Ruleset) -> bool:
        # Rules hold dicts (unhashable) but compare by value; tuple equality is enough here.
        return self.structure() == other.structure()

    def copy(self) -> Ruleset:
        return Ruleset(
            sets=list(self.sets),
            counters=list(self.counters),
            chains=list(self.chains),
            rules=list(self.rules),
            elements={name: dict(elems) for name, elems in self.elements.items()},
        )

    def replace_commands(self) -> list[Json]:
        """The commands that atomically replace our table (and only it) with this ruleset.

        ``add table`` first makes ``delete table`` safe when the table does not exist yet; nft 1.0.6 has
        no ``destroy`` (stack.md §1b). Nothing outside table inet sharewall is touched.
        """
        table = {"family": FAMILY, "name": TABLE}
        commands: list[Json] = [
            {"add": {"table": dict(table)}},
            {"delete": {"table": dict(table)}},
            {"add": {"table": dict(table)}},
        ]
        commands.extend({"add": s.to_json()} for s in self.sets)
        commands.extend(
            {"add": {"counter": {"family": FAMILY, "table": TABLE, "name": n}}}
            for n in self.counters
        )
        commands.extend({"add": c.to_json()} for c in self.chains)
        commands.extend({"add": r.to_json()} for r in self.rules)
        for decl in self.sets:
            elems = self.elements.get(decl.name)
            if elems:
                commands.append(element_command("add", decl, elems))
        return commands

    def to_json(self) -> Json:
        """A stable, comparable rendering (golden files)."""
        return {
            "sets": [s.to_json() for s in self.sets],
            "counters": list(self.counters),
            "chains": [c.to_json() for c in self.chains],
            "rules": [r.to_json() for r in self.rules],
            "elements": {
                name: sorted(([list(k), v] for k, v in elems.items()), key=_sort_key)
                for name, elems in sorted(self.elements.items())
                if elems
            },
        }


def _sort_key(item: list[Any]) -> str:
    return repr(item)


def key_json(key: Key) -> Any:
    return key[0] if len(key) == 1 else {"concat": list(key)}


def element_command(verb: str, decl: SetDecl, elems: dict[Key, Value]) -> Json:
    """``add``/``delete`` of several elements of one set or map as one command."""
    items: list[Any] = []
    for key, value in elems.items():
        if decl.data_type is None or verb == "delete":
            items.append(key_json(key))
        else:
            items.append([key_json(key), value])
    return {verb: {"element": {"family": FAMILY, "table": TABLE, "name": decl.name, "elem": items}}}


# --- tiny expression builders for readable rule code -------------------------------------------


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def payload(protocol: str, fld: str) -> Json:
    return {"payload": {"protocol": protocol, "field": fld}}


def ct(key: str, direction: str | None = None) -> Json:
    body: dict[str, str] = {"key": key}
    if direction:
        body["dir"] = direction
    return {"ct": body}


def match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def anon_set(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else {"set": list(values)}


def prefix(network: str) -> Json:
    addr, _, length = network.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


def concat(*parts: Json) -> Json:
    return {"concat": list(parts)}


def map_lookup(key: Json, name: str) -> Json:
    return {"map": {"key": key, "data": f"@{name}"}}


ACCEPT: Json = {"accept": None}
DROP: Json = {"drop": None}


def jump(chain: str) -> Json:
    return {"jump": {"target": chain}}


def counter() -> Json:
    return {"counter": None}
