"""The engine's ordering and rollback rules, with a fake kernel (fakes, not mocks; the namespace tests run
the same paths against real nft and netlink)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from sharewall.backends.store import Store
from sharewall.daemon.configfile import parse_config_file
from sharewall.daemon.engine import Engine
from sharewall.errors import ConflictError, ErrorCode, KernelError, ValidationError
from sharewall.facts import Link
from sharewall.model.mapping import make_mapping


class FakeNft:
    """Records transactions; can refuse the next ones (all or nothing, like nft)."""

    def __init__(self) -> None:
        self.transactions: list[list[dict[str, Any]]] = []
        self.refuse: int = 0
        self.refuse_elements_only = False

    async def apply(self, commands: list[dict[str, Any]]) -> None:
        is_replace = any("delete" in c and "table" in c["delete"] for c in commands)
        if self.refuse and not (self.refuse_elements_only and is_replace):
            self.refuse -= 1
            raise KernelError("Error: Could not process rule: No such file or directory")
        self.transactions.append(commands)

    async def delete_table(self, family: str, name: str) -> None:
        self.transactions.append([{"delete": {"table": {"family": family, "name": name}}}])


class FakeNetlink:
    def __init__(self) -> None:
        self.links = {
            "wan0": Link(
                index=2,
                name="wan0",
                mac="02:00:00:00:00:02",
                up=True,
                carrier=True,
                ipv4=(ipaddress.IPv4Interface("198.51.100.1/24"),),
            ),
            "lan0": Link(index=3, name="lan0", mac="02:00:00:00:00:03", up=True, carrier=True),
        }

    async def snapshot(self) -> dict[str, Link]:
        return dict(self.links)

    async def add_address(self, ifname: str, cidr: str) -> None:
        link = self.links[ifname]
        iface = ipaddress.IPv4Interface(cidr)
        self.links[ifname] = Link(
            index=link.index,
            name=ifname,
            mac=link.mac,
            up=True,
            carrier=True,
            ipv4=(*link.ipv4, iface),
        )

    async def remove_address(self, ifname: str, cidr: str) -> None:
        link = self.links[ifname]
        iface = ipaddress.IPv4Interface(cidr)
        self.links[ifname] = Link(
            index=link.index,
            name=ifname,
            mac=link.mac,
            up=True,
            carrier=True,
            ipv4=tuple(a for a in link.ipv4 if a != iface),
        )

    async def set_up(self, ifname: str) -> None:
        pass


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nft = FakeNft()
        self.netlink = FakeNetlink()
        self.sysctl: dict[str, str] = {"net/ipv4/ip_forward": "0"}
        self.store = Store(tmp_path / "state")

    def engine(self) -> Engine:
        return Engine(
            store=self.store,
            nft=self.nft,
            netlink=self.netlink,
            read_sysctl=lambda k: self.sysctl[k],
            write_sysctl=lambda k, v: self.sysctl.__setitem__(k, str(v)),
        )

    def peek(self) -> Any:
        """The configuration as stored, read through a second connection."""
        other = Store(self.tmp_path / "state")
        try:
            return other.load()
        finally:
            other.close()

    def reopen(self) -> Engine:
        self.store.close()
        self.store = Store(self.tmp_path / "state")
        return self.engine()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def web(**kw: Any):
    fields: dict[str, Any] = {
        "name": "web",
        "protocol": "tcp",
        "external_port": 8080,
        "internal_port": 80,
        "target": "192.168.137.12",
    }
    fields.update(kw)
    return make_mapping(**fields)


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path)
    yield w
    w.store.close()


def test_start_replaces_only_our_table_and_ids_are_stable(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    first = world.nft.transactions[0]
    assert first[:3] == [
        {"add": {"table": {"family": "inet", "name": "sharewall"}}},
        {"delete": {"table": {"family": "inet", "name": "sharewall"}}},
        {"add": {"table": {"family": "inet", "name": "sharewall"}}},
    ]
    ids = {c.name: c.id for c in engine.config.connections.values()}
    again = world.reopen()
    run(again.start())
    assert {c.name: c.id for c in again.config.connections.values()} == ids


def test_a_mapping_is_persisted_and_applied_as_element_adds(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    run(engine.share("wan0", ["lan0"], None))
    before = len(world.nft.transactions)
    run(engine.add_mappings("wan0", [web()]))
    (tx,) = world.nft.transactions[before:]
    assert all("add" in c and "element" in c["add"] for c in tx)
    reloaded = world.reopen()
    assert "web" in reloaded.config.connection_by_name("wan0").mappings  # type: ignore[union-attr]


def test_kernel_refusal_rolls_back_memory_and_store(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    world.nft.refuse = 2  # the element add and the resync both fail
    with pytest.raises(KernelError):
        run(engine.add_mappings("wan0", [web()]))
    assert "web" not in engine.config.connection_by_name("wan0").mappings  # type: ignore[union-attr]
    assert "web" not in world.peek().connection_by_name("wan0").mappings
    run(engine.add_mappings("wan0", [web()]))  # and the engine still works afterwards


def test_a_refused_element_update_resyncs_with_a_table_replace(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    run(engine.add_mappings("wan0", [web()]))
    world.nft.refuse = 1
    world.nft.refuse_elements_only = True
    before = len(world.nft.transactions)
    run(engine.remove_mapping("wan0", "web"))
    (tx,) = world.nft.transactions[before:]
    assert {"delete": {"table": {"family": "inet", "name": "sharewall"}}} in tx
    assert "web" not in engine.config.connection_by_name("wan0").mappings  # type: ignore[union-attr]


def test_share_and_unshare_undo_exactly_what_sharing_did(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    run(engine.share("wan0", ["lan0"], None))
    assert world.sysctl["net/ipv4/ip_forward"] == "1"
    assert ipaddress.IPv4Interface("192.168.137.1/24") in world.netlink.links["lan0"].ipv4
    run(engine.unshare())
    assert world.sysctl["net/ipv4/ip_forward"] == "0"
    assert world.netlink.links["lan0"].ipv4 == ()
    assert engine.config.connection_by_name("wan0").firewall  # type: ignore[union-attr]  # ICF stays on


def test_duplicate_is_refused_before_anything_is_written(world: World) -> None:
    engine = world.engine()
    run(engine.start())
    run(engine.add_mappings("wan0", [web()]))
    count = len(world.nft.transactions)
    with pytest.raises(ConflictError):
        run(engine.add_mappings("wan0", [web(name="other")]))
    assert len(world.nft.transactions) == count


def test_config_file_is_imported_once_and_a_bad_one_names_the_key(
    world: World, tmp_path: Path
) -> None:
    engine = world.engine()
    run(engine.start())
    path = tmp_path / "sharewall.toml"
    path.write_text(
        '[sharing]\npublic = "wan0"\nprivate = ["lan0"]\n\n[connections.wan0]\nfirewall = true\n'
        "icmp = { inbound_echo_request = true }\n\n[[connections.wan0.mappings]]\n"
        'name = "web"\nprotocol = "tcp"\nexternal_port = 8080\ninternal_port = 80\ntarget = "192.168.137.12"\n'
    )
    parsed = parse_config_file(path)
    assert parsed is not None
    assert run(engine.import_config_file(parsed)) is True
    assert run(engine.import_config_file(parsed)) is False  # unchanged file: nothing to do
    wan = engine.config.connection_by_name("wan0")
    assert wan is not None and wan.icmp.inbound_echo_request and "web" in wan.mappings
    assert engine.config.sharing.active

    path.write_text("[connections.wan0]\nfirewal = true\n")
    with pytest.raises(ValidationError) as err:
        parse_config_file(path)
    assert err.value.code is ErrorCode.INVALID_CONFIG and "firewal" in err.value.message
    path.write_text(
        '[[connections.wan0.mappings]]\nname = "x"\nprotocol = "tcp"\nexternal_port = 99999\n'
    )
    with pytest.raises(ValidationError, match=r"connections.wan0.mappings\[0\].*65535"):
        parse_config_file(path)
    assert "web" in wan.mappings  # the last good state is kept
