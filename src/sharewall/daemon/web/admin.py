"""Render the admin page from the same views the local API serves (no logic of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from ..engine import Engine
from ..views import connection_view, mapping_view, status_view

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,  # names, host names and log fields come from users and the network
    undefined=jinja2.StrictUndefined,
)


def render_admin_page(
    engine: Engine, *, leases: list[dict[str, Any]], events: list[dict[str, Any]]
) -> str:
    conns = sorted(
        engine.config.connections.values(), key=lambda c: (c.name not in engine.facts.links, c.name)
    )
    present = [c for c in conns if c.name in engine.facts.links]
    mappings = [
        (
            c.name,
            [
                mapping_view(engine, c, m)
                for m in c.effective_mappings()
                if not m.builtin or m.enabled
            ],
        )
        for c in present
    ]
    return _ENV.get_template("page.html").render(
        status=status_view(engine),
        connections=[connection_view(engine, c) for c in conns],
        mappings=[(name, items) for name, items in mappings if items],
        leases=leases,
        events=list(reversed(events)),
    )
