"""The small admin page: served on the daemon's socket, shows the state, escapes what users typed."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.env import require_binary

pytestmark = pytest.mark.netns


def test_admin_page_shows_state_and_escapes_names(lab, gateway) -> None:
    require_binary("curl")
    c = gateway.client()
    c.share("wan0", ["lan0"])
    c.add_mapping("wan0", name="<script>alert(1)</script>", protocol="tcp", external_port=8080,
                  internal_port=80, target=lab.LAN2)  # fmt: skip
    page = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(gateway.socket), "-w", "\n%{http_code} %{content_type}",
         "http://sharewall/"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
    body, _, meta = page.rpartition("\n")
    assert meta.startswith("200 text/html")
    assert "Sharing</span> wan0" in body and lab.WAN_GW in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>" not in body
    assert "lan0" in body and "192.168.137.12" in body
