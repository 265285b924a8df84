"""The fast path: element deltas for mapping changes, without recompiling the whole table.

Pure: no I/O. ``delta_for_mapping_changes`` must always agree with a full ``compile_desired`` followed by
``plan`` (a Hypothesis stateful test checks exactly that).
"""

from __future__ import annotations

from collections.abc import Iterable

from sharewall.compiler.mappings import Elements, MappingSets, mapping_elements, slot_of
from sharewall.compiler.plan import ElementDelta
from sharewall.compiler.ruleset import Key, Value
from sharewall.facts import Facts
from sharewall.model.changes import MappingChange
from sharewall.model.config import Config


def delta_for_mapping_changes(
    config: Config, facts: Facts, changes: Iterable[MappingChange]
) -> ElementDelta:
    """Elements to delete and add for *changes* (already applied to *config*), given *facts*.

    A connection that is not present has no sets in the kernel, so its changes produce nothing here;
    the full compile adds its elements when it appears.
    """
    removed: Elements = {}
    added: Elements = {}
    for change in changes:
        conn = config.connections.get(change.connection_id)
        if conn is None or conn.name not in facts.links:
            continue
        sets = MappingSets.for_slot(slot_of(conn.id))
        old = mapping_elements(sets, change.old, facts.resolved) if change.old else {}
        new = mapping_elements(sets, change.new, facts.resolved) if change.new else {}
        for name in sorted(set(old) | set(new)):
            o = old.get(name, {})
            n = new.get(name, {})
            for key, value in o.items():
                if n.get(key, _MISSING) != value:
                    _remove(removed, added, name, key, value)
            for key, value in n.items():
                if o.get(key, _MISSING) != value:
                    _add(removed, added, name, key, value)
    return ElementDelta(deletes=removed, adds=added)


_MISSING = object()


def _remove(removed: Elements, added: Elements, name: str, key: Key, value: Value) -> None:
    """Compose a removal after earlier steps of the same batch."""
    pending = added.get(name, {})
    if key in pending:
        del pending[key]  # added earlier in this batch: the kernel never saw it
    else:
        removed.setdefault(name, {})[key] = value


def _add(removed: Elements, added: Elements, name: str, key: Key, value: Value) -> None:
    gone = removed.get(name, {})
    if gone.get(key, _MISSING) == value:
        del gone[key]  # removed earlier in this batch with the same value: net no change
    else:
        added.setdefault(name, {})[key] = value
