"""Compiler golden tests: (config, facts) -> expected ruleset JSON. SHAREWALL_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from sharewall.compiler import compile_desired

from .cases import CASES

GOLDEN = Path(__file__).parent / "golden"


def _facts_json(facts: object) -> object:
    from sharewall.facts import Facts

    assert isinstance(facts, Facts)
    return {
        "links": {
            name: {
                "index": link.index,
                "kind": link.kind,
                "mac": link.mac,
                "up": link.up,
                "carrier": link.carrier,
                "ipv4": [str(a) for a in link.ipv4],
                "ipv6": [str(a) for a in link.ipv6],
            }
            for name, link in facts.links.items()
        },
        "resolved": {k: str(v) for k, v in facts.resolved.items()},
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    intent, build = CASES[case]
    config, facts = build()
    actual = json.dumps(compile_desired(config, facts).to_json(), indent=1, sort_keys=True) + "\n"
    folder = GOLDEN / case
    if os.environ.get("SHAREWALL_UPDATE_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README").write_text(intent + "\n")
        (folder / "config.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(config)) + b"\n"
        )
        (folder / "facts.json").write_text(
            json.dumps(_facts_json(facts), indent=1, sort_keys=True) + "\n"
        )
        (folder / "expected.json").write_text(actual)
    expected = (folder / "expected.json").read_text()
    assert actual == expected, f"{case}: {intent}"


def test_compile_is_deterministic() -> None:
    for _, build in CASES.values():
        a = compile_desired(*build()).to_json()
        b = compile_desired(*build()).to_json()
        assert a == b


def test_odd_interface_name_is_a_json_string() -> None:
    _, build = CASES["odd-interface-name"]
    commands = compile_desired(*build()).replace_commands()
    text = json.dumps(commands)
    assert json.dumps('x";{$') in text
