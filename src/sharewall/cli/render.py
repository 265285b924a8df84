"""Human output of the CLI: tables and key/value blocks.

Promise: rich is imported only when a table is drawn on a terminal. Piped output (not a TTY) and
``TERM=dumb`` get plain, space-aligned columns that ``grep``/``awk`` handle; ``NO_COLOR`` is honoured
by rich itself. Machine output is ``--json``, never these tables.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["print_json", "print_table", "use_rich"]


def use_rich(stream: TextIO) -> bool:
    """Whether *stream* is a terminal that should get rich tables."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def print_json(data: object, stream: TextIO | None = None) -> None:
    """Print *data* as indented JSON, keys in the daemon's order, non-ASCII kept."""
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in [[h.upper() for h in headers], *rows]:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
        out.write(line.rstrip() + "\n")


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print rows under headers: a rich table on a terminal, aligned plain text otherwise.

    Args:
        headers: column titles.
        rows: cells as strings, one list per row, each as long as *headers*.
        title: a heading line for rich tables (plain output omits it to stay parseable).
        stream: where to write; standard output by default.
    """
    out = stream or sys.stdout
    if not use_rich(out):
        _plain_table(headers, rows, out)
        out.flush()
        return
    # Imported here, not at the top: rich costs ~40 ms and only terminal tables need it.
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", box=box.SIMPLE_HEAD)  # light rules: more room for data
    for header in headers:
        # Fold, never truncate with an ellipsis: a cut address would be a wrong address.
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text(), not str: a mapping named "[red]x" must print as written, not as markup.
        table.add_row(*(Text(cell) for cell in row))
    console = Console(file=out)
    if title:
        # A line of its own: a table caption would wrap to the width of a narrow table.
        console.print(Text(title, style="bold"))
    console.print(table)
