"""The NAT traversal service's decisions, on a real Engine over a fake kernel (no sockets, no root).

Requests go in as the bytes a client would send (NAT-PMP/PCP datagrams, SOAP bodies) and answers
come out as bytes, so these tests exercise the same glue the daemon runs, with a fake clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharewall.backends.store import Store
from sharewall.daemon.engine import Engine
from sharewall.daemon.nat_traversal import NatTraversal, load_settings
from sharewall.errors import KernelError, SharewallError
from sharewall.facts import Link
from sharewall.model.mapping import make_mapping
from sharewall.model.nat_policy import NatTraversalSettings
from sharewall.protocols import igd, natpmp, pcp, soap

WAN, LAN = "swtwan9", "swtlan9"  # names no real interface has: nothing is ever sent anywhere
PUBLIC = "11.0.0.1"
ME, OTHER = "192.168.137.11", "192.168.137.12"
A = ipaddress.IPv4Address


class FakeNft:
    def __init__(self) -> None:
        self.transactions: list[list[dict[str, Any]]] = []

    async def apply(self, commands: list[dict[str, Any]]) -> None:
        self.transactions.append(commands)

    async def delete_table(self, family: str, name: str) -> None:
        pass


class FakeNetlink:
    def __init__(self) -> None:
        self.links = {
            WAN: Link(
                index=2,
                name=WAN,
                up=True,
                carrier=True,
                ipv4=(ipaddress.IPv4Interface(f"{PUBLIC}/24"),),
            ),
            LAN: Link(index=3, name=LAN, up=True, carrier=True),  # no MAC: no ARP announce
        }

    async def snapshot(self) -> dict[str, Link]:
        return dict(self.links)

    async def add_address(self, ifname: str, cidr: str) -> None:
        link = self.links[ifname]
        self.links[ifname] = Link(
            index=link.index,
            name=ifname,
            up=True,
            carrier=True,
            ipv4=(*link.ipv4, ipaddress.IPv4Interface(cidr)),
        )

    async def remove_address(self, ifname: str, cidr: str) -> None:
        pass

    async def set_up(self, ifname: str) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.wall = 1_000_000.0
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class World:
    def __init__(self, tmp_path: Path, nat: NatTraversalSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store(tmp_path / "state")
        self.nft = FakeNft()
        sysctl = {"net/ipv4/ip_forward": "0"}
        self.engine = Engine(
            store=self.store,
            nft=self.nft,
            netlink=FakeNetlink(),
            read_sysctl=lambda k: sysctl[k],
            write_sysctl=lambda k, v: sysctl.__setitem__(k, str(v)),
        )
        self.run(self.engine.start())
        self.run(self.engine.share(WAN, [LAN], None))
        self.clock = Clock()
        self.service = NatTraversal(
            self.engine, nat, wall_clock=lambda: self.clock.wall, monotonic=lambda: self.clock.mono
        )

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.loop.close()
        self.store.close()

    # clients

    def natpmp(self, request: Any, source: str = ME) -> Any:
        answer = self.run(
            self.service.handle_datagram(natpmp.render_request(request), (source, 5350))
        )
        return natpmp.parse_response(answer)

    def pcp_map(self, internal_port: int, suggested: int, *, source: str = ME, **kw: Any) -> Any:
        fields: dict[str, Any] = {
            "client_address": A(source),
            "lifetime_s": 60,
            "nonce": b"n" * 12,
            "protocol": 6,
            "internal_port": internal_port,
            "suggested_external_port": suggested,
        }
        fields.update(kw)
        data = pcp.render_request(pcp.MapRequest(**fields))
        return pcp.parse_response(self.run(self.service.handle_datagram(data, (source, 40000))))

    def soap(
        self, action: str, arguments: list[tuple[str, str]], *, peer: str = ME, version: int = 1
    ) -> tuple[int, dict[str, str] | int]:
        service = igd.WAN_IP_CONNECTION_2 if version == 2 else igd.WAN_IP_CONNECTION_1
        body, header = soap.render_request(service, action, arguments)
        status, answer = self.run(self.service.control("/ctl/IPConn", body, header, A(peer)))
        try:
            return status, soap.parse_response(answer, service, action)
        except Exception as error:  # a fault: its code
            return status, getattr(error, "upnp_error", -1)

    def dynamic(self) -> dict[str, Any]:
        conn = self.engine.desired.connection(WAN)
        return {name: m for name, m in conn.mappings.items() if m.is_dynamic}


def add_args(
    external: int, internal: int, client: str = ME, lease: int = 0, proto: str = "TCP"
) -> list[tuple[str, str]]:
    return [
        ("NewRemoteHost", ""),
        ("NewExternalPort", str(external)),
        ("NewProtocol", proto),
        ("NewInternalPort", str(internal)),
        ("NewInternalClient", client),
        ("NewEnabled", "1"),
        ("NewPortMappingDescription", "test"),
        ("NewLeaseDuration", str(lease)),
    ]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, NatTraversalSettings(requests_per_second=0))
    yield w
    w.close()


@pytest.fixture
def world2(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, NatTraversalSettings(igd_version=2, max_mappings_per_client=3))
    yield w
    w.close()


def test_natpmp_map_renew_delete(world: World) -> None:
    answer = world.natpmp(natpmp.PublicAddressRequest())
    assert answer.public_address == A(PUBLIC) and answer.result_code == 0
    answer = world.natpmp(natpmp.MapRequest(6, 7000, 17000, 60))
    assert (answer.result_code, answer.external_port, answer.lifetime_s) == (0, 17000, 60)
    mapping = world.dynamic()["natpmp:tcp:17000"]
    assert (
        mapping.target == ME
        and mapping.client == ME
        and mapping.expires_at == world.clock.wall + 60
    )
    world.clock.advance(30)
    answer = world.natpmp(natpmp.MapRequest(6, 7000, 19999, 100))  # renewal: same port
    assert answer.external_port == 17000
    assert world.dynamic()["natpmp:tcp:17000"].expires_at == world.clock.wall + 100
    # Another host asking for the same port gets a neighbour.
    answer = world.natpmp(natpmp.MapRequest(6, 7000, 17000, 60), source=OTHER)
    assert answer.result_code == 0 and answer.external_port in (16999, 17001)
    # Delete (lifetime 0): only the asker's own mapping goes.
    answer = world.natpmp(natpmp.MapRequest(6, 7000, 0, 0))
    assert (answer.result_code, answer.external_port, answer.lifetime_s) == (0, 0, 0)
    assert list(world.dynamic()) == [f"natpmp:tcp:{17001 if 17001 in _ports(world) else 16999}"]


def _ports(world: World) -> set[int]:
    return {m.external_port for m in world.dynamic().values()}


def test_natpmp_lifetimes_are_capped_and_expire_through_the_engine(world: World) -> None:
    answer = world.natpmp(natpmp.MapRequest(17, 5000, 5000, 10**9))
    assert answer.lifetime_s == 86400
    world.clock.advance(86400)
    world.run(world.engine.expire(world.clock.wall))
    assert world.dynamic() == {}


def test_natpmp_quota_and_low_ports(world: World) -> None:
    answer = world.natpmp(natpmp.MapRequest(6, 80, 80, 60))
    assert answer.result_code == 0 and answer.external_port >= 1024  # another port, not 80
    codes = [world.natpmp(natpmp.MapRequest(17, p, p, 60)).result_code for p in range(20000, 20064)]
    assert codes.count(0) == 63 and codes[-1] == natpmp.ResultCode.OUT_OF_RESOURCES
    # Unsupported version and opcode get their error answers; garbage gets silence.
    reply = world.run(world.service.handle_datagram(b"\x00\x07", (ME, 1)))
    assert natpmp.parse_response(reply).result_code == natpmp.ResultCode.UNSUPPORTED_OPCODE
    assert world.run(world.service.handle_datagram(b"\x00", (ME, 1))) is None


def test_pcp_map_nonce_third_party_and_delete(world: World) -> None:
    answer = world.pcp_map(7100, 17100)
    assert (answer.result_code, answer.assigned_external_port) == (0, 17100)
    assert answer.assigned_external_address == A(PUBLIC)
    assert world.pcp_map(7100, 17100, nonce=b"x" * 12).result_code == pcp.ResultCode.NOT_AUTHORIZED
    assert world.pcp_map(7101, 0, third_party=A(OTHER)).result_code == pcp.ResultCode.NOT_AUTHORIZED
    assert world.pcp_map(7102, 0, protocol=1).result_code == pcp.ResultCode.UNSUPP_PROTOCOL
    assert world.pcp_map(0, 0).result_code == pcp.ResultCode.MALFORMED_REQUEST
    assert world.pcp_map(7103, 17100, prefer_failure=True).result_code == (
        pcp.ResultCode.CANNOT_PROVIDE_EXTERNAL
    )
    gone = world.pcp_map(7100, 0, lifetime_s=0)
    assert (gone.result_code, gone.lifetime_s, gone.assigned_external_port) == (0, 0, 17100)
    assert "pcp:tcp:17100" not in world.dynamic()


def test_upnp_v1_add_overwrite_conflict_refusals_and_listing(world: World) -> None:
    assert world.soap("AddPortMapping", add_args(18080, 8080)) == (200, {})
    assert world.soap("AddPortMapping", add_args(18080, 8081, lease=60)) == (200, {})  # overwrite
    assert world.dynamic()["upnp:tcp:18080"].internal_port == 8081
    assert world.soap("AddPortMapping", add_args(18080, 8080, OTHER), peer=OTHER) == (500, 718)
    assert world.soap("AddPortMapping", add_args(18081, 8080, OTHER)) == (500, 718)  # not self
    assert world.soap("AddPortMapping", add_args(80, 80)) == (500, 718)  # rule
    assert world.soap("AddPortMapping", add_args(0, 80)) == (500, 716)
    status, entry = world.soap("GetGenericPortMappingEntry", [("NewPortMappingIndex", "0")])
    assert status == 200 and isinstance(entry, dict)
    assert entry["NewExternalPort"] == "18080" and entry["NewInternalClient"] == ME
    assert entry["NewLeaseDuration"] == "60"
    assert world.soap("GetGenericPortMappingEntry", [("NewPortMappingIndex", "1")]) == (500, 713)
    key = [("NewRemoteHost", ""), ("NewExternalPort", "18080"), ("NewProtocol", "TCP")]
    assert world.soap("DeletePortMapping", key, peer=OTHER) == (500, 714)  # not its own (v1)
    assert world.soap("DeletePortMapping", key) == (200, {})
    assert world.soap("DeletePortMapping", key) == (500, 714)
    assert world.soap("GetSpecificPortMappingEntry", key) == (500, 714)


def test_upnp_v2_any_port_quota_ranges_and_static_conflicts(world2: World) -> None:
    world = world2
    world.run(
        world.engine.add_mappings(
            WAN,
            [make_mapping(name="static", protocol="tcp", external_port=19600, target=OTHER)],
        )
    )
    assert world.soap("AddPortMapping", add_args(19600, 80), version=2) == (500, 729)
    status, reserved = world.soap("AddAnyPortMapping", add_args(19600, 80), version=2)
    assert status == 200 and isinstance(reserved, dict)
    assert reserved["NewReservedPort"] in ("19599", "19601")
    # IGD:2: lease 0 means the maximum, a week.
    lease = world.dynamic()[f"upnp:tcp:{reserved['NewReservedPort']}"].expires_at
    assert lease == world.clock.wall + 604800
    assert world.soap("AddPortMapping", add_args(19700, 80, OTHER), version=2) == (500, 606)
    assert world.soap("AddPortMapping", add_args(19701, 80), version=2)[0] == 200
    assert world.soap("AddPortMapping", add_args(19702, 80, proto="UDP"), version=2)[0] == 200
    assert world.soap("AddPortMapping", add_args(19703, 80), version=2) == (500, 728)  # quota 3
    listing_args = [
        ("NewStartPort", "19000"),
        ("NewEndPort", "20000"),
        ("NewProtocol", "TCP"),
        ("NewManage", "1"),
        ("NewNumberOfPorts", "0"),
    ]
    status, listing = world.soap("GetListOfPortMappings", listing_args, version=2)
    assert status == 200 and isinstance(listing, dict)
    assert listing["NewPortListing"].count("<p:PortMappingEntry>") == 3  # 2 ours + static
    range_args = [
        ("NewStartPort", "19000"),
        ("NewEndPort", "20000"),
        ("NewProtocol", "TCP"),
        ("NewManage", "0"),
    ]
    assert world.soap("DeletePortMappingRange", range_args, peer=OTHER, version=2) == (500, 730)
    assert world.soap("DeletePortMappingRange", range_args, version=2) == (200, {})
    assert sorted(world.dynamic()) == ["upnp:udp:19702"]
    assert "static" in world.engine.desired.connection(WAN).mappings


def test_renewal_is_one_element_free_transaction(world: World) -> None:
    world.natpmp(natpmp.MapRequest(6, 7000, 17000, 60))
    before = len(world.nft.transactions)
    world.natpmp(natpmp.MapRequest(6, 7000, 17000, 120))
    assert len(world.nft.transactions) == before  # only the lease changed: nothing for nft


def test_kernel_refusal_leaves_the_table_as_it_was(world: World) -> None:
    async def refuse(commands: list[dict[str, Any]]) -> None:
        raise KernelError("refused")

    world.nft.apply = refuse  # type: ignore[method-assign]
    answer = world.natpmp(natpmp.MapRequest(6, 7000, 17000, 60))
    assert answer.result_code == natpmp.ResultCode.OUT_OF_RESOURCES
    assert world.dynamic() == {}


def test_settings_file(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "missing.toml") == NatTraversalSettings()
    path = tmp_path / "nat.toml"
    path.write_text("secure_mode = false\n")
    assert not load_settings(path).secure_mode
    path.write_text("secure_mode = 3\n")
    with pytest.raises(SharewallError, match=r"nat\.toml"):
        load_settings(path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=1200))
def test_any_datagram_gets_bytes_or_silence(world: World, data: bytes) -> None:
    answer = world.run(world.service.handle_datagram(data, (ME, 5350)))
    assert answer is None or isinstance(answer, bytes)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(
            lambda t: soap.render_request(igd.WAN_IP_CONNECTION_1, "AddPortMapping", [("X", t)])[0]
        ),
    ),
    action=st.one_of(st.none(), st.text(max_size=80)),
)
def test_any_control_request_gets_an_http_answer(
    world: World, body: bytes, action: str | None
) -> None:
    status, answer = world.run(world.service.control("/ctl/IPConn", body, action, A(ME)))
    assert status in (200, 400, 413, 500, 503) and isinstance(answer, bytes)


def walk(world: World) -> list[str]:
    ports = []
    for index in range(100):
        status, entry = world.soap(
            "GetGenericPortMappingEntry", [("NewPortMappingIndex", str(index))]
        )
        if status != 200:
            assert entry == 713
            return ports
        assert isinstance(entry, dict)
        ports.append(entry["NewExternalPort"])
    raise AssertionError("no end of the list")


def test_generic_entry_walk_follows_changes_by_us_and_by_the_admin(world: World) -> None:
    for port in range(18000, 18005):
        assert world.soap("AddPortMapping", add_args(port, 80))[0] == 200
    assert walk(world) == [str(p) for p in range(18000, 18005)]
    world.run(world.engine.remove_mapping(WAN, "upnp:tcp:18002"))  # the admin revokes one
    assert walk(world) == ["18000", "18001", "18003", "18004"]
    world.run(world.engine.set_mapping_enabled(WAN, "upnp:tcp:18000", False))
    assert walk(world) == ["18001", "18003", "18004"]


def test_switches(tmp_path: Path) -> None:
    off = World(tmp_path / "off", NatTraversalSettings(enabled=False))
    try:
        assert off.engine.config.sharing.active and off.service.private_links() == {}
        # Even a request that reached it (it is not listening) would be refused.
        answer = off.natpmp(natpmp.MapRequest(6, 7000, 17000, 60))
        assert answer.result_code == natpmp.ResultCode.NOT_AUTHORIZED
    finally:
        off.close()
    no_pmp = World(tmp_path / "no_pmp", NatTraversalSettings(natpmp=False))
    try:
        assert no_pmp.service.private_links() != {}
        answer = no_pmp.natpmp(natpmp.PublicAddressRequest())
        assert answer.result_code == natpmp.ResultCode.NOT_AUTHORIZED
        assert no_pmp.pcp_map(7100, 17100).result_code == 0  # PCP still on
    finally:
        no_pmp.close()
