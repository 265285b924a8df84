"""The Pythonic library: the public names, and the asyncio variant against a real daemon."""

from __future__ import annotations

import asyncio

import pytest

import sharewall
from sharewall.errors import ErrorCode, NotFoundError


def test_public_names_are_exported() -> None:
    for name in sharewall.__all__:
        assert getattr(sharewall, name) is not None


@pytest.mark.netns
def test_async_client_does_what_the_sync_one_does(lab, gateway) -> None:
    async def scenario() -> None:
        async with sharewall.AsyncClient(str(gateway.socket)) as sw:
            sharing = await sw.share("wan0", ["lan0"])
            assert sharing["active"] and sharing["public"]["name"] == "wan0"
            added = await sw.add_mapping("wan0", name="web", protocol="tcp", external_port=8080,
                                         internal_port=80, target=lab.LAN2)  # fmt: skip
            assert added["active"]
            names = [m["name"] for m in await sw.mappings("wan0")]
            assert "web" in names
            with pytest.raises(NotFoundError) as err:
                await sw.remove_mapping("wan0", "missing")
            assert err.value.code is ErrorCode.UNKNOWN_MAPPING
            statuses = await asyncio.gather(*(sw.status() for _ in range(5)))
            assert all(s["mappings"] == 1 for s in statuses)

    asyncio.run(scenario())
