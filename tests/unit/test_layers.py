"""The layers stay visible in the tree: pure packages import only pure things, and the CLI stays light.

A static check of import statements (the style.md §6.1 rules), so it needs no extra tool.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sharewall"

# Pure layers: stdlib (minus I/O and concurrency), msgspec, defusedxml, and each other.
PURE = [
    "model",
    "compiler",
    "protocols",
    "seclog/record.py",
    "seclog/w3c.py",
    "facts.py",
    "errors.py",
]
FORBIDDEN_IN_PURE = {
    "asyncio", "socket", "subprocess", "ctypes", "pyroute2", "aiohttp", "sqlite3", "threading",
    "sharewall.backends", "sharewall.daemon", "sharewall.servers", "sharewall.api", "sharewall.cli",
}  # fmt: skip


def python_files(entry: str) -> list[Path]:
    path = SRC / entry
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offending(names: set[str], forbidden: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("entry", PURE)
def test_pure_layers_import_nothing_impure(entry: str) -> None:
    for path in python_files(entry):
        bad = offending(imported_modules(path), FORBIDDEN_IN_PURE)
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_backends_never_import_the_daemon() -> None:
    for path in python_files("backends"):
        bad = offending(imported_modules(path), {"sharewall.daemon", "sharewall.cli"})
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_cli_imports_only_the_client_side() -> None:
    forbidden = {
        "sharewall.backends",
        "sharewall.daemon",
        "sharewall.servers",
        "aiohttp",
        "pyroute2",
    }
    for path in python_files("cli"):
        bad = offending(imported_modules(path), forbidden)
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"
