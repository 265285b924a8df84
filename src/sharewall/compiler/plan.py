"""The planner: what must change to turn the applied ruleset into the desired one.

Pure: no I/O. Two kinds of plan (fw4's reload-sets split, computed instead of chosen by hand):

- ``ElementDelta``: only map/set contents differ -> element deletes then adds, one transaction.
- ``ReplaceTable``: the structure differs -> replace our table (and only it) in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sharewall.compiler.ruleset import Json, Key, Ruleset, SetDecl, Value, element_command


@dataclass(slots=True)
class ElementDelta:
    """Element changes by set name. A changed map value is a delete plus an add."""

    deletes: dict[str, dict[Key, Value]] = field(default_factory=dict)
    adds: dict[str, dict[Key, Value]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.deletes.values()) and not any(self.adds.values())

    def commands(self, sets: list[SetDecl]) -> list[Json]:
        by_name = {s.name: s for s in sets}
        out: list[Json] = []
        for name, elems in sorted(self.deletes.items()):
            if elems:
                out.append(element_command("delete", by_name[name], elems))
        for name, elems in sorted(self.adds.items()):
            if elems:
                out.append(element_command("add", by_name[name], elems))
        return out

    def apply_to(self, ruleset: Ruleset) -> None:
        """Update an in-memory ruleset as the kernel would (bookkeeping after a successful apply)."""
        for name, elems in self.deletes.items():
            current = ruleset.elements.setdefault(name, {})
            for key in elems:
                current.pop(key, None)
        for name, elems in self.adds.items():
            ruleset.elements.setdefault(name, {}).update(elems)


@dataclass(slots=True)
class ReplaceTable:
    ruleset: Ruleset

    def commands(self) -> list[Json]:
        return self.ruleset.replace_commands()


Plan = ElementDelta | ReplaceTable


def diff_elements(
    applied: dict[str, dict[Key, Value]], desired: dict[str, dict[Key, Value]]
) -> ElementDelta:
    delta = ElementDelta()
    for name in sorted(set(applied) | set(desired)):
        old = applied.get(name, {})
        new = desired.get(name, {})
        dels = {k: v for k, v in old.items() if k not in new or new[k] != v}
        adds = {k: v for k, v in new.items() if k not in old or old[k] != v}
        if dels:
            delta.deletes[name] = dels
        if adds:
            delta.adds[name] = adds
    return delta


def plan(applied: Ruleset | None, desired: Ruleset) -> Plan:
    """The cheapest plan from *applied* (None: unknown or absent) to *desired*."""
    if applied is None or not applied.same_structure(desired):
        return ReplaceTable(desired)
    return diff_elements(applied.elements, desired.elements)
