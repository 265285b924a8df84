"""The HNetCfg layer without a daemon: constants, HRESULT mapping, enumerators, targets, pending roles.

A small in-memory stand-in for :class:`sharewall.api.client.Client` (``FakeClient``) plays the daemon
where the layer's own semantics are under test (the two-step EnableSharing, the Windows Firewall
queries); the real daemon is exercised in tests/netns/test_hnetcfg.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sharewall.api import fwmgr as fw
from sharewall.api import hnetcfg as hn
from sharewall.api.hnetcfg import CreateObject, HResultError
from sharewall.api.natupnp import IUPnPNAT
from sharewall.errors import (
    ConflictError,
    DaemonUnavailableError,
    ErrorCode,
    KernelError,
    NotFoundError,
    PermissionDeniedError,
    SharewallError,
    ValidationError,
)
from sharewall.model.connection import Characteristics, ConnectionStatus, MediaType
from sharewall.model.firewall import ICMP_OPTIONS, IcmpSettings

WAN = "{11111111-0000-4000-8000-000000000001}"
LAN = "{22222222-0000-4000-8000-000000000002}"
WAN2 = "{33333333-0000-4000-8000-000000000003}"


class FakeClient:
    """Just enough of sharewalld's behaviour, in memory, with the Client's method names."""

    def __init__(self, socket_path: str = "/fake/sharewall.sock") -> None:
        self.socket_path = socket_path
        self.closed = 0
        self.calls: list[str] = []
        self.conns: dict[str, dict[str, Any]] = {}
        self.maps: dict[str, list[dict[str, Any]]] = {}
        self.icmp: dict[str, dict[str, bool]] = {}
        self.public: str | None = None
        self.private: list[str] = []
        for cid, name, addr in ((WAN, "wan0", "198.51.100.1/24"), (LAN, "lan0", "")):
            self.add_connection(cid, name, addr)

    def add_connection(self, cid: str, name: str, addr: str) -> None:
        self.conns[cid] = {
            "id": cid,
            "name": name,
            "device": "veth",
            "status_code": 2,
            "media_type_code": 3,
            "characteristics": 1,
            "firewall": False,
            "ipv4": [addr] if addr else [],
            "ipv6": [],
        }
        self.maps[cid] = [
            self._mapping("FTP Server", "tcp", 21, 21, "gateway", False, builtin=True),
            self._mapping("Remote Desktop", "tcp", 3389, 3389, "gateway", False, builtin=True),
        ]
        self.icmp[cid] = {o: getattr(IcmpSettings(), o) for o in ICMP_OPTIONS}

    @staticmethod
    def _mapping(name, protocol, ext, internal, target, enabled, builtin=False, options=0):
        return {
            "name": name,
            "protocol": protocol,
            "external_port": ext,
            "internal_port": internal,
            "target": target,
            "enabled": enabled,
            "builtin": builtin,
            "options": options,
            "active": enabled,
            "target_address": None,
            "source": "static",
        }

    def _id(self, ref: str) -> str:
        for cid, conn in self.conns.items():
            if ref in (cid.strip("{}"), conn["name"]):
                return cid
        raise NotFoundError(f"unknown connection {ref!r}", code=ErrorCode.UNKNOWN_CONNECTION)

    def _view(self, cid: str) -> dict[str, Any]:
        view = dict(self.conns[cid])
        role = "public" if cid == self.public else "private" if cid in self.private else "none"
        view["sharing"] = role
        return view

    def close(self) -> None:
        self.closed += 1

    def status(self) -> dict[str, Any]:
        self.calls.append("status")
        ref = lambda cid: {"id": cid, "name": self.conns[cid]["name"]}  # noqa: E731
        active = self.public is not None
        return {
            "sharing": {
                "active": active,
                "public": ref(self.public) if active else None,
                "private": [ref(p) for p in self.private] if active else [],
            }
        }

    def connections(self) -> list[dict[str, Any]]:
        return [self._view(cid) for cid in self.conns]

    def connection(self, ref: str) -> dict[str, Any]:
        cid = self._id(ref)
        return self._view(cid) | {"icmp": dict(self.icmp[cid])}

    def mappings(self, ref: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.maps[self._id(ref)])

    def share(self, public: str, private: list[str]) -> None:
        self.calls.append(f"share {public} {private}")
        self.public = self._id(public)
        self.private = [self._id(p) for p in private]
        self.conns[self.public]["firewall"] = True

    def unshare(self) -> None:
        self.calls.append("unshare")
        self.public, self.private = None, []

    def set_firewall(self, ref: str, enabled: bool) -> bool:
        self.calls.append(f"firewall {ref} {enabled}")
        self.conns[self._id(ref)]["firewall"] = enabled
        return enabled

    def change_icmp(self, ref: str, allow=(), deny=()) -> dict[str, bool]:
        settings = self.icmp[self._id(ref)]
        settings.update(dict.fromkeys(allow, True) | dict.fromkeys(deny, False))
        return dict(settings)

    def _find(self, ref: str, name: str) -> dict[str, Any]:
        for m in self.maps[self._id(ref)]:
            if m["name"] == name:
                return m
        raise NotFoundError(f"no mapping {name!r}", code=ErrorCode.UNKNOWN_MAPPING)

    def add_mapping(self, ref, *, name, protocol, external_port, internal_port, target, enabled):
        cid = self._id(ref)
        if any(m["name"] == name for m in self.maps[cid]):
            raise ConflictError("duplicate", code=ErrorCode.DUPLICATE_MAPPING)
        mapping = self._mapping(name, protocol, external_port, internal_port, target, enabled)
        self.maps[cid].append(mapping)
        return mapping

    def request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert method == "POST" and path.endswith("/mappings")
        ref = path.split("/")[3]
        assert "{" not in ref and "%7B" not in ref  # ids travel without braces
        fields = {k: v for k, v in body.items() if k != "options"}
        mapping = self.add_mapping(ref, **fields)
        mapping["options"] = body["options"]
        return {"mapping": mapping}

    def set_mapping_enabled(self, ref: str, name: str, enabled: bool) -> dict[str, Any]:
        mapping = self._find(ref, name)
        mapping["enabled"] = enabled
        return mapping

    def remove_mapping(self, ref: str, name: str) -> str:
        mapping = self._find(ref, name)
        if mapping["builtin"]:
            raise ConflictError("built in", code=ErrorCode.BUILTIN_MAPPING)
        self.maps[self._id(ref)].remove(mapping)
        return name


@pytest.fixture(autouse=True)
def _no_pending_roles_between_tests():
    hn._PENDING.clear()
    yield
    hn._PENDING.clear()


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


def configs(
    fake: FakeClient,
) -> tuple[hn.INetSharingManager, dict[str, hn.INetSharingConfiguration]]:
    mgr = hn.INetSharingManager(fake)  # type: ignore[arg-type]
    return mgr, {
        mgr.NetConnectionProps(c).Name: mgr.INetSharingConfigurationForINetConnection(c)
        for c in mgr.EnumEveryConnection
    }


def hresult(call) -> int:
    with pytest.raises(HResultError) as excinfo:
        call()
    return excinfo.value.hresult


# --- constants and errors ----------------------------------------------------------------------


def test_enum_values_are_microsofts_and_match_the_model() -> None:
    for member in MediaType:
        assert getattr(hn, f"NCM_{member.name}") == member.value
    for member in ConnectionStatus:
        assert getattr(hn, f"NCS_{member.name}") == member.value
    for member in Characteristics:
        assert getattr(hn, f"NCCF_{member.name}") == member.value
    assert (hn.ICSSHARINGTYPE_PUBLIC, hn.ICSSHARINGTYPE_PRIVATE) == (0, 1)
    assert (hn.ICSSC_DEFAULT, hn.ICSSC_ENABLED, hn.ICSTT_NAME, hn.ICSTT_IPADDRESS) == (0, 1, 0, 1)
    assert (hn.NAT_PROTOCOL_TCP, hn.NAT_PROTOCOL_UDP) == (6, 17)
    assert (hn.NCS_CONNECT_FAILED, hn.NCCF_WIFI_DIRECT, hn.NCCF_LAN_MASK) == (15, 0x40000, 0xF00000)
    assert (fw.NET_FW_SERVICE_REMOTE_DESKTOP, fw.NET_FW_IP_VERSION_ANY, fw.NET_FW_SCOPE_CUSTOM) == (
        2,
        2,
        2,
    )
    assert hn.E_INVALIDARG == 0x80070057 and hn.E_FAIL == 0x80004005
    assert hn.HRESULT_FROM_WIN32(2) == 0x80070002 and hn.HRESULT_FROM_WIN32(0) == 0
    assert hn.E_SERVER_UNAVAILABLE == 0x800706BA


def test_dispids_name_real_members() -> None:
    for cls in (
        hn.INetSharingManager,
        hn.INetSharingConfiguration,
        hn.INetSharingPortMapping,
        hn.INetSharingPortMappingProps,
        hn.INetConnectionProps,
        fw.INetFwMgr,
        fw.INetFwProfile,
        fw.INetFwOpenPort,
        fw.INetFwOpenPorts,
        fw.INetFwIcmpSettings,
        fw.INetFwService,
        fw.INetFwServices,
    ):
        for name in cls._dispids_:
            assert hasattr(cls, name), (cls.__name__, name)
        assert cls._iid_.startswith("{") and len(cls._iid_) == 38
    assert hn.INetSharingConfiguration._dispids_["RemovePortMapping"] == 10
    assert fw.INetFwIcmpSettings._dispids_["AllowOutboundPacketTooBig"] == 10


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValidationError("bad"), hn.E_INVALIDARG),
        (NotFoundError("gone"), hn.E_INVALIDARG),
        (ConflictError("dup", code=ErrorCode.DUPLICATE_MAPPING), hn.E_INVALIDARG),
        (ConflictError("builtin", code=ErrorCode.BUILTIN_MAPPING), hn.E_ACCESSDENIED),
        (ConflictError("role"), hn.E_FAIL),
        (PermissionDeniedError("no"), hn.E_ACCESSDENIED),
        (KernelError("nft"), hn.E_FAIL),
        (DaemonUnavailableError("down"), 0x800706BA),
        (SharewallError("odd reply"), hn.E_UNEXPECTED),
    ],
)
def test_sharewall_errors_become_hresults(error: SharewallError, expected: int) -> None:
    assert hn.hresult_for(error) == expected


def test_hresult_error_carries_code_and_text() -> None:
    err = HResultError(hn.E_INVALIDARG)
    assert err.hresult == 0x80070057 and err.code is None
    assert err.strerror == "One of the parameters is invalid."
    assert str(err) == "One of the parameters is invalid. (HRESULT 0x80070057)"
    assert HResultError(-2147024809).hresult == hn.E_INVALIDARG  # a signed HRESULT is accepted
    assert hn.com_error is HResultError


def test_client_errors_are_translated_and_the_socket_closed(fake: FakeClient) -> None:
    mgr = hn.INetSharingManager(fake)  # type: ignore[arg-type]
    with pytest.raises(HResultError) as excinfo:
        mgr.NetConnectionProps("nosuch")
    assert excinfo.value.code == "unknown_connection"
    assert isinstance(excinfo.value.__cause__, NotFoundError)
    before = fake.closed
    mgr.EnumEveryConnection  # noqa: B018 - a property read is a call
    assert fake.closed == before + 1


# --- CreateObject ------------------------------------------------------------------------------


def test_create_object_by_progid(tmp_path) -> None:
    socket_path = str(tmp_path / "none.sock")
    for progid in ("HNetCfg.HNetShare", "HNetCfg.HNetShare.1", "hnetcfg.hnetshare"):
        assert isinstance(CreateObject(progid, socket_path=socket_path), hn.INetSharingManager)
    assert isinstance(CreateObject("HNetCfg.FwMgr", socket_path=socket_path), fw.INetFwMgr)
    assert isinstance(hn.Dispatch("HNetCfg.FwMgr", socket_path=socket_path), fw.INetFwMgr)
    assert isinstance(CreateObject("HNetCfg.NATUPnP.1"), IUPnPNAT)
    assert hresult(lambda: CreateObject("HNetCfg.FwAuthorizedApplication")) == (
        hn.REGDB_E_CLASSNOTREG
    )
    assert hresult(lambda: CreateObject("Shell.Application")) == hn.CO_E_CLASSSTRING


def test_sharing_installed_is_false_without_a_daemon(tmp_path) -> None:
    mgr = CreateObject("HNetCfg.HNetShare", socket_path=str(tmp_path / "none.sock"), timeout=2)
    assert mgr.SharingInstalled is False
    assert hresult(lambda: mgr.EnumEveryConnection) == 0x800706BA


def test_socket_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SHAREWALL_SOCKET", str(tmp_path / "env.sock"))
    mgr = CreateObject("HNetCfg.HNetShare")
    assert mgr._session.socket_path == str(tmp_path / "env.sock")


def test_new_open_port_defaults_and_checks() -> None:
    port = CreateObject("HNetCfg.FWOpenPort")
    assert (port.Name, port.Protocol, port.Port, port.Enabled, port.BuiltIn) == (
        "",
        fw.NET_FW_IP_PROTOCOL_TCP,
        0,
        True,
        False,
    )
    assert (port.Scope, port.RemoteAddresses, port.IpVersion) == (0, "*", fw.NET_FW_IP_VERSION_ANY)
    port.Scope = fw.NET_FW_SCOPE_ALL
    port.RemoteAddresses = " * "
    port.IpVersion = fw.NET_FW_IP_VERSION_ANY

    def assign(prop: str, value: object):
        return lambda: setattr(port, prop, value)

    assert hresult(assign("Scope", fw.NET_FW_SCOPE_LOCAL_SUBNET)) == hn.E_NOTIMPL
    assert hresult(assign("RemoteAddresses", "LocalSubnet")) == hn.E_NOTIMPL
    assert hresult(assign("Scope", 7)) == hn.E_INVALIDARG
    assert hresult(assign("IpVersion", fw.NET_FW_IP_VERSION_V4)) == hn.E_INVALIDARG
    assert hresult(assign("Protocol", fw.NET_FW_IP_PROTOCOL_ANY)) == hn.E_INVALIDARG
    assert hresult(assign("Port", 0)) == hn.E_INVALIDARG
    assert hresult(assign("Port", 65536)) == hn.E_INVALIDARG


# --- enumeration helpers -----------------------------------------------------------------------


def test_ienumvariant_and_jscript_enumerator() -> None:
    enum = hn.IEnumVARIANT(["a", "b", "c"])
    assert enum.Next(2) == ("a", "b")
    clone = enum.Clone()
    assert enum.Next(5) == ("c",) and enum.Next(1) == ()
    assert clone.Next(1) == ("c",)
    enum.Reset()
    assert enum.Skip(2) is True and enum.Skip(2) is False and enum.Next(1) == ()
    assert list(hn.IEnumVARIANT(["x", "y"])) == ["x", "y"]
    assert hresult(lambda: enum.Next(-1)) == hn.E_INVALIDARG

    seen = []
    e = hn.Enumerator(["p", "q"])
    e.moveFirst()
    while not e.atEnd():
        seen.append(e.item())
        e.moveNext()
    e.moveNext()
    assert seen == ["p", "q"] and e.item() is None

    coll = hn.INetSharingPortMappingCollection([])
    assert (coll.Count, len(coll), list(coll), coll._NewEnum.Next(1)) == (0, 0, [], ())


@pytest.mark.parametrize(
    ("target", "kind", "expected"),
    [
        ("192.168.0.2", hn.ICSTT_IPADDRESS, "192.168.0.2"),
        ("127.0.0.1", hn.ICSTT_IPADDRESS, "gateway"),
        ("127.1.2.3", hn.ICSTT_IPADDRESS, "gateway"),
        ("compnametst2", hn.ICSTT_NAME, "compnametst2"),
        ("LocalHost", hn.ICSTT_NAME, "gateway"),
        ("gateway", hn.ICSTT_NAME, "gateway"),
    ],
)
def test_target_conventions(target: str, kind: int, expected: str) -> None:
    assert hn._target_for(target, kind) == expected


@pytest.mark.parametrize(
    ("target", "kind"),
    [("host", hn.ICSTT_IPADDRESS), ("192.168.0.2", 2), ("x", True), (None, hn.ICSTT_NAME)],
)
def test_bad_targets(target: object, kind: object) -> None:
    assert hresult(lambda: hn._target_for(target, kind)) == hn.E_INVALIDARG


def test_port_mapping_props_target_views() -> None:
    base = FakeClient._mapping("m", "udp", 5000, 5001, "gateway", True, options=9)
    props = hn.INetSharingPortMappingProps(base)
    assert (props.IPProtocol, props.ExternalPort, props.InternalPort, props.Options) == (
        17,
        5000,
        5001,
        9,
    )
    assert (props.TargetName, props.TargetIPAddress, props.Enabled) == (
        "gateway",
        "127.0.0.1",
        True,
    )
    by_ip = hn.INetSharingPortMappingProps(base | {"target": "192.168.137.12"})
    assert (by_ip.TargetName, by_ip.TargetIPAddress) == ("", "192.168.137.12")
    by_name = hn.INetSharingPortMappingProps(base | {"target": "nas"})
    assert (by_name.TargetName, by_name.TargetIPAddress) == ("nas", "")
    resolved = hn.INetSharingPortMappingProps(
        base | {"target": "nas", "target_address": "192.168.137.40"}
    )
    assert resolved.get_TargetIPAddress() == "192.168.137.40"


# --- the manager over the fake daemon ----------------------------------------------------------


def test_flags_must_be_default(fake: FakeClient) -> None:
    mgr, cfg = configs(fake)
    for call in (
        lambda: mgr.EnumPublicConnections(hn.ICSSC_ENABLED),
        lambda: mgr.EnumPrivateConnections(2),
        lambda: mgr.EnumPublicConnections(False),
        lambda: cfg["wan0"].EnumPortMappings(hn.ICSSC_ENABLED),
    ):
        assert hresult(call) == hn.E_INVALIDARG
    assert hresult(lambda: mgr.NetConnectionProps(42)) == hn.E_INVALIDARG  # type: ignore[arg-type]


def test_enable_sharing_public_first_then_private(fake: FakeClient) -> None:
    mgr, cfg = configs(fake)
    cfg["wan0"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert fake.public is None and fake.conns[WAN]["firewall"] is True  # pending, firewalled
    assert cfg["wan0"].SharingEnabled and not cfg["lan0"].SharingEnabled
    assert [mgr.NetConnectionProps(c).Name for c in mgr.EnumPublicConnections(0)] == ["wan0"]
    # Another manager of this process sees the same pending role (machine-wide state).
    other = hn.INetSharingManager(fake)  # type: ignore[arg-type]
    assert other.EnumPublicConnections(0).Count == 1
    cfg["lan0"].EnableSharing(hn.ICSSHARINGTYPE_PRIVATE)
    assert (fake.public, fake.private) == (WAN, [LAN])
    assert hn._PENDING[fake.socket_path].public is None


def test_enable_sharing_private_first_then_public(fake: FakeClient) -> None:
    _, cfg = configs(fake)
    cfg["lan0"].EnableSharing(hn.ICSSHARINGTYPE_PRIVATE)
    assert fake.public is None and fake.conns[LAN]["firewall"] is False
    assert cfg["lan0"].SharingConnectionType == hn.ICSSHARINGTYPE_PRIVATE
    cfg["wan0"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert (fake.public, fake.private) == (WAN, [LAN])


def test_public_replacement_and_role_swap(fake: FakeClient) -> None:
    fake.add_connection(WAN2, "wan1", "203.0.113.9/24")
    fake.share("wan0", ["lan0"])
    _, cfg = configs(fake)
    cfg["wan1"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert (fake.public, fake.private) == (WAN2, [LAN])
    assert cfg["wan0"].SharingEnabled is False
    # The private connection made public leaves none private: sharing stops, lan0 waits as public.
    cfg["lan0"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert fake.public is None and fake.calls[-2:] == [
        "unshare",
        "firewall 22222222-0000-4000-8000-000000000002 True",
    ]
    assert cfg["lan0"].SharingConnectionType == hn.ICSSHARINGTYPE_PUBLIC
    assert hresult(lambda: cfg["lan0"].EnableSharing(3)) == hn.E_INVALIDARG


def test_disable_sharing(fake: FakeClient) -> None:
    fake.add_connection(WAN2, "lan1", "")
    fake.share("wan0", ["lan0", "lan1"])
    fake.maps[WAN].append(FakeClient._mapping("web", "tcp", 8080, 80, "192.168.137.9", True))
    fake.maps[WAN][0]["enabled"] = True  # FTP Server
    _, cfg = configs(fake)
    cfg["lan1"].DisableSharing()
    assert (fake.public, fake.private) == (WAN, [LAN])
    cfg["wan0"].DisableSharing()
    assert fake.public is None and fake.conns[WAN]["firewall"] is True  # ICF is kept
    assert not any(m["enabled"] for m in fake.maps[WAN])
    assert cfg["lan0"].SharingEnabled is True  # waits for the next public connection
    cfg["wan0"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert (fake.public, fake.private) == (WAN, [LAN])
    cfg["lan1"].DisableSharing()  # not shared: succeeds, changes no sharing
    assert (fake.public, fake.private) == (WAN, [LAN])


def test_daemon_sharing_overrides_pending_roles(fake: FakeClient) -> None:
    _, cfg = configs(fake)
    cfg["lan0"].EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)  # pending here...
    fake.share("wan0", ["lan0"])  # ...while another program shares
    assert cfg["lan0"].SharingConnectionType == hn.ICSSHARINGTYPE_PRIVATE
    assert hn._PENDING[fake.socket_path].public is None


def test_add_port_mapping_is_disabled_and_keeps_options(fake: FakeClient) -> None:
    _, cfg = configs(fake)
    mapping = cfg["wan0"].AddPortMapping("web", 6, 8080, 80, 5, "192.168.137.9", hn.ICSTT_IPADDRESS)
    props = mapping.Properties
    assert (props.Enabled, props.Options, props.TargetIPAddress) == (False, 5, "192.168.137.9")
    assert hresult(lambda: cfg["wan0"].AddPortMapping("x", 1, 1, 1, 0, "a", 0)) == hn.E_INVALIDARG
    assert hresult(lambda: cfg["wan0"].AddPortMapping("web", 17, 1, 1, 0, "a", 0)) == (
        hn.E_INVALIDARG
    )
    ftp = next(m for m in cfg["wan0"].EnumPortMappings(0) if m.Properties.Name == "FTP Server")
    assert hresult(ftp.Delete) == hn.E_ACCESSDENIED
    assert hresult(lambda: cfg["lan0"].RemovePortMapping(mapping)) == hn.E_INVALIDARG
    cfg["wan0"].RemovePortMapping(mapping)
    assert hresult(lambda: mapping.Properties) == hn.E_INVALIDARG


def test_connection_folder_operations_are_not_implemented(fake: FakeClient) -> None:
    mgr, _ = configs(fake)
    conn = next(iter(mgr.EnumEveryConnection))
    for call in (conn.Connect, conn.Disconnect, conn.Delete, conn.GetUiObjectClassId):
        assert hresult(call) == hn.E_NOTIMPL
    assert hresult(lambda: conn.Rename("x")) == hn.E_NOTIMPL
    props = conn.GetProperties()
    assert (props.pszwName, props.MediaType, props.Status) == ("wan0", 3, 2)


# --- Windows Firewall over the fake daemon -----------------------------------------------------


def firewall(fake: FakeClient) -> tuple[fw.INetFwMgr, fw.INetFwProfile]:
    mgr = fw.INetFwMgr(fake)  # type: ignore[arg-type]
    return mgr, mgr.LocalPolicy.CurrentProfile


def test_profile_switches_cover_all_but_the_private_side(fake: FakeClient) -> None:
    mgr, profile = firewall(fake)
    fake.conns[WAN]["firewall"] = True
    assert profile.FirewallEnabled is False  # lan0 is not firewalled yet
    fake.share("wan0", ["lan0"])
    assert profile.FirewallEnabled is True  # the private side is not part of the profile
    profile.IcmpSettings.AllowInboundEchoRequest = True
    assert fake.icmp[WAN]["inbound_echo_request"] and not fake.icmp[LAN]["inbound_echo_request"]
    assert profile.IcmpSettings.AllowInboundEchoRequest is True
    assert mgr.LocalPolicy.GetProfileByType(fw.NET_FW_PROFILE_DOMAIN).Type == 0
    assert hresult(lambda: mgr.LocalPolicy.GetProfileByType(7)) == hn.E_INVALIDARG
    assert profile.NotificationsDisabled is True
    profile.NotificationsDisabled = True
    assert hresult(lambda: setattr(profile, "NotificationsDisabled", False)) == hn.E_NOTIMPL
    assert hresult(lambda: setattr(profile.RemoteAdminSettings, "Enabled", True)) == hn.E_NOTIMPL
    apps = profile.AuthorizedApplications
    assert apps.Count == 0 and hresult(lambda: apps.Add(object())) == hn.E_NOTIMPL


def test_is_port_allowed_and_restricted(fake: FakeClient) -> None:
    mgr, profile = firewall(fake)
    fake.conns[WAN]["firewall"] = True
    # lan0 has no firewall: every port is allowed there, blocked on wan0 -> restricted.
    assert mgr.IsPortAllowed(None, 2, 80, None, 6) == (True, True)
    assert mgr.IsPortAllowed(None, 0, 80, "198.51.100.1", 6) == (False, False)
    fake.conns[LAN]["firewall"] = True
    port = fw.INetFwOpenPort(Name="HTTP", Port=80)
    profile.GloballyOpenPorts.Add(port)
    assert mgr.IsPortAllowed(r"C:\x.exe", 2, 80, None, 6) == (True, False)
    assert mgr.IsPortAllowed(None, 2, 80, None, 17) == (False, False)
    assert hresult(lambda: mgr.IsPortAllowed(None, 2, 80, "198.51.100.1", 6)) == hn.E_INVALIDARG
    assert hresult(lambda: mgr.IsPortAllowed(None, 5, 80, None, 6)) == hn.E_INVALIDARG
    assert hresult(lambda: mgr.IsPortAllowed(None, 0, 80, "192.0.2.1", 6)) == hn.E_INVALIDARG
    assert hresult(lambda: mgr.IsPortAllowed(None, 0, 80, "nonsense", 6)) == hn.E_INVALIDARG


def test_is_icmp_type_allowed_tables(fake: FakeClient) -> None:
    mgr, profile = firewall(fake)
    fake.conns[WAN]["firewall"] = fake.conns[LAN]["firewall"] = True
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V4, None, 8) == (False, False)
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V6, None, 2) == (True, False)  # too big
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V6, None, 135) == (True, False)  # ND
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V4, None, 0) == (False, False)
    profile.IcmpSettings.AllowOutboundSourceQuench = True
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V4, None, 4) == (True, False)
    # The same number means parameter problem in ICMPv6, a separate switch.
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V6, None, 4) == (False, False)
    assert hresult(lambda: mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_ANY, None, 8)) == (
        hn.E_INVALIDARG
    )


def test_open_ports_overwrite_write_through_and_remove(fake: FakeClient) -> None:
    _, profile = firewall(fake)
    ports = profile.GloballyOpenPorts
    ports.Add(fw.INetFwOpenPort(Name="HTTP", Port=80, Enabled=False))
    assert [(p.Name, p.Port, p.Enabled) for p in ports] == [("HTTP", 80, False)]
    assert all(m["target"] == "gateway" for m in fake.maps[WAN] if m["name"] == "HTTP")
    ports.Add(fw.INetFwOpenPort(Name="Web", Port=80))  # already open: replaced
    assert [(p.Name, p.Enabled) for p in ports] == [("Web", True)]
    item = ports.Item(80, 6)
    item.Port = 8080  # moves the port
    assert [(p.Name, p.Port) for p in ports] == [("Web", 8080)]
    item.Enabled = False
    assert ports.Item(8080, 6).Enabled is False
    # An ICS mapping to a private host is not an open port of the gateway.
    fake.maps[WAN].append(FakeClient._mapping("lanweb", "tcp", 81, 81, "192.168.137.9", True))
    assert ports.Count == 1
    assert hresult(lambda: ports.Item(81, 6)) == 0x80070002
    ports.Remove(8080, 6)
    ports.Remove(8080, 6)
    assert ports.Count == 0
    assert hresult(lambda: ports.Add(fw.INetFwOpenPort(Port=80))) == hn.E_INVALIDARG  # no name


def test_services_are_the_builtin_mappings(fake: FakeClient) -> None:
    _, profile = firewall(fake)
    services = profile.Services
    assert [s.Name for s in services] == ["FTP Server", "Remote Desktop"]
    rdp = services.Item(fw.NET_FW_SERVICE_REMOTE_DESKTOP)
    assert services.Item("FTP Server").Type == fw.NET_FW_SERVICE_NONE
    assert hresult(lambda: services.Item(fw.NET_FW_SERVICE_NONE)) == 0x80070002
    assert hresult(lambda: services.Item(fw.NET_FW_SERVICE_UPNP)) == 0x80070002
    rdp.Enabled = True
    assert rdp.Enabled and all(
        m["enabled"] for m in fake.maps[LAN] if m["name"] == "Remote Desktop"
    )
    port = rdp.GloballyOpenPorts.Item(3389, 6)
    assert hresult(lambda: setattr(port, "Name", "x")) == hn.E_ACCESSDENIED
    assert hresult(lambda: rdp.GloballyOpenPorts.Remove(3389, 6)) == hn.E_ACCESSDENIED
    port.Enabled = False
    assert rdp.Enabled is False


def test_restore_defaults(fake: FakeClient) -> None:
    mgr, profile = firewall(fake)
    hn._PENDING[fake.socket_path] = hn._PendingSharing(public=WAN)
    fake.share("wan0", ["lan0"])
    profile.GloballyOpenPorts.Add(fw.INetFwOpenPort(Name="HTTP", Port=80))
    profile.Services.Item("FTP Server").Enabled = True
    fake.icmp[LAN]["redirect"] = True
    mgr.RestoreDefaults()
    assert fake.public is None and hn._PENDING[fake.socket_path].public is None
    for cid in (WAN, LAN):
        assert [m["name"] for m in fake.maps[cid]] == ["FTP Server", "Remote Desktop"]
        assert not any(m["enabled"] for m in fake.maps[cid])
        assert fake.icmp[cid] == {o: getattr(IcmpSettings(), o) for o in ICMP_OPTIONS}
        assert fake.conns[cid]["firewall"] is True
