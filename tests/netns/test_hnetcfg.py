"""The HNetCfg-compatible layer against a real sharewalld: Microsoft's semantics, checked in the kernel.

Each test drives the layer the way a ported script would and looks at the effect where it lands: the
nft ruleset in the gateway namespace, the daemon's state, and real packets from the Internet host.
"""

from __future__ import annotations

import pytest

from sharewall.api import fwmgr as fw
from sharewall.api import hnetcfg as hn
from sharewall.api.hnetcfg import CreateObject, HResultError
from tests.support.nftmaps import chains, dnat_ports, gateway_tcp_ports, slot
from tests.support.traffic import ping, probe, start_server, wait_until

pytestmark = pytest.mark.netns


# --- kernel views --------------------------------------------------------------------------------


def hresult_of(excinfo: pytest.ExceptionInfo[HResultError]) -> int:
    return excinfo.value.hresult


# --- helpers on the layer ------------------------------------------------------------------------


def manager(gateway) -> hn.INetSharingManager:
    return CreateObject("HNetCfg.HNetShare.1", socket_path=str(gateway.socket))


def find(mgr: hn.INetSharingManager, name: str) -> hn.INetConnection:
    for conn in mgr.EnumEveryConnection:
        if mgr.NetConnectionProps(conn).Name == name:
            return conn
    raise AssertionError(f"no connection {name}")


def config(mgr: hn.INetSharingManager, name: str) -> hn.INetSharingConfiguration:
    return mgr.INetSharingConfigurationForINetConnection(find(mgr, name))


def test_connections_properties_and_firewall_switch(lab, gateway, monkeypatch) -> None:
    """Enumeration, INetConnectionProps, flags checking, enumerators and Enable/DisableInternetFirewall."""
    mgr = manager(gateway)
    assert mgr.SharingInstalled is True
    every = mgr.EnumEveryConnection
    assert every.Count == 2 == len(every)
    daemon = {c["name"]: c for c in gateway.client().connections()}
    for conn in every:
        props = mgr.NetConnectionProps(conn)
        info = daemon[props.Name]
        assert (props.Guid, props.DeviceName) == (info["id"], info["device"])
        assert props.Guid.startswith("{") and props.Guid.endswith("}")
        assert props.Status == hn.NCS_CONNECTED
        assert props.MediaType == hn.NCM_LAN
        assert props.Characteristics == info["characteristics"]
        assert props.Characteristics & hn.NCCF_FIREWALLED == 0
        assert conn.GetProperties().pszwName == props.Name
    assert mgr.EnumPublicConnections(hn.ICSSC_DEFAULT).Count == 0
    assert mgr.EnumPrivateConnections(hn.ICSSC_DEFAULT).Count == 0
    for call in (mgr.EnumPublicConnections, mgr.EnumPrivateConnections):
        with pytest.raises(HResultError) as bad_flags:
            call(hn.ICSSC_ENABLED)
        assert hresult_of(bad_flags) == hn.E_INVALIDARG

    # The C++ way: _NewEnum -> IEnumVARIANT -> Next / Skip / Reset / Clone.
    enum = mgr.get_EnumEveryConnection().get__NewEnum()
    first = enum.Next(1)
    assert len(first) == 1
    clone = enum.Clone()
    assert enum.Skip(1) is True and enum.Next(1) == ()
    assert enum.Skip(1) is False
    assert clone.Next(5) != () and clone.Next(1) == ()
    enum.Reset()
    assert enum.Next(2)[0] == first[0]

    with pytest.raises(HResultError) as unknown:
        mgr.NetConnectionProps("nosuch0")
    assert (hresult_of(unknown), unknown.value.code) == (hn.E_INVALIDARG, "unknown_connection")
    with pytest.raises(HResultError) as notimpl:
        find(mgr, "wan0").Disconnect()
    assert hresult_of(notimpl) == hn.E_NOTIMPL

    # The socket may come from $SHAREWALL_SOCKET; ProgIDs are case-insensitive.
    monkeypatch.setenv("SHAREWALL_SOCKET", str(gateway.socket))
    via_env = CreateObject("hnetcfg.hnetshare")
    assert isinstance(via_env, hn.INetSharingManager)
    wan = via_env.INetSharingConfigurationForINetConnection("wan0")
    wan_id = mgr.NetConnectionProps("wan0").Guid

    assert wan.InternetFirewallEnabled is False
    assert f"fwd_{slot(wan_id)}" not in chains(lab)
    start_server(lab.ns("gw"), "tcp", 22, "gw")
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == f"gw {lab.INET}"
    wan.EnableInternetFirewall()
    assert wan.get_InternetFirewallEnabled() is True
    assert f"fwd_{slot(wan_id)}" in chains(lab)
    assert mgr.NetConnectionProps("wan0").Characteristics & hn.NCCF_FIREWALLED
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == "timeout"
    wan.DisableInternetFirewall()
    wan.DisableInternetFirewall()  # succeeds when already off
    assert f"fwd_{slot(wan_id)}" not in chains(lab)
    assert probe(lab.ns("inet"), "tcp", lab.WAN_GW, 22) == f"gw {lab.INET}"


def test_sharing_in_two_steps_and_public_replacement(lab, gateway) -> None:
    """EnableSharing(PUBLIC) then (PRIVATE) shares; a new PUBLIC replaces the old; DisableSharing."""
    start_server(lab.ns("inet"), "tcp", 80, "inet")
    mgr = manager(gateway)
    wan, lan = config(mgr, "wan0"), config(mgr, "lan0")
    wan_id = mgr.NetConnectionProps("wan0").Guid

    wan.EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    # Windows turns the public connection's firewall on at once; the partner is still missing.
    assert gateway.client().status()["sharing"]["active"] is False
    assert f"fwd_{slot(wan_id)}" in chains(lab)
    assert wan.SharingEnabled is True and wan.SharingConnectionType == hn.ICSSHARINGTYPE_PUBLIC
    assert [mgr.NetConnectionProps(c).Name for c in mgr.EnumPublicConnections(0)] == ["wan0"]
    assert lan.SharingEnabled is False

    lan.EnableSharing(hn.ICSSHARINGTYPE_PRIVATE)
    sharing = gateway.client().status()["sharing"]
    assert sharing["active"] and sharing["public"]["name"] == "wan0"
    assert [p["name"] for p in sharing["private"]] == ["lan0"]
    assert lan.SharingConnectionType == hn.ICSSHARINGTYPE_PRIVATE
    assert mgr.NetConnectionProps("lan0").Characteristics & hn.NCCF_SHARED_PRIVATE
    wan_chars = mgr.NetConnectionProps("wan0").Characteristics
    assert wan_chars & hn.NCCF_SHARED and wan_chars & hn.NCCF_FIREWALLED
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"

    with pytest.raises(HResultError) as bad_type:
        wan.EnableSharing(2)
    assert hresult_of(bad_type) == hn.E_INVALIDARG

    # A second uplink appears; sharing it publicly replaces wan0 and turns its firewall on.
    lab.run(
        "gw", "ip", "link", "add", "wan1", "type", "veth", "peer", "eth1", "netns", lab.ns("inet")
    )
    lab.run("gw", "ip", "link", "set", "wan1", "up")
    assert wait_until(lambda: mgr.EnumEveryConnection.Count == 3, timeout=10)
    wan1 = config(mgr, "wan1")
    wan1.EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    sharing = gateway.client().status()["sharing"]
    assert sharing["public"]["name"] == "wan1"
    assert [p["name"] for p in sharing["private"]] == ["lan0"]
    assert wan.SharingEnabled is False and wan1.InternetFirewallEnabled is True
    wan1_id = mgr.NetConnectionProps("wan1").Guid
    assert f"fwd_{slot(wan1_id)}" in chains(lab)

    # Disabling the public side stops sharing (kernel: no masquerade); lan0 waits as private.
    wan1.DisableSharing()
    assert gateway.client().status()["sharing"]["active"] is False
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == "timeout"
    assert lan.SharingEnabled is True and wan1.InternetFirewallEnabled is True
    wan.EnableSharing(hn.ICSSHARINGTYPE_PUBLIC)
    assert gateway.client().status()["sharing"]["public"]["name"] == "wan0"
    assert probe(lab.ns("lan1"), "tcp", lab.INET, 80) == f"inet {lab.WAN_GW}"

    lan.DisableSharing()
    assert gateway.client().status()["sharing"]["active"] is False
    assert wan.SharingEnabled is True  # pending again: waiting for a private connection
    assert lan.SharingEnabled is False


def test_port_mappings(lab, gateway) -> None:
    """AddPortMapping starts disabled; Enable/Disable/Delete/RemovePortMapping; snapshots; errors."""
    gateway.client().share("wan0", ["lan0"])
    start_server(lab.ns("lan2"), "tcp", 80, "lan2")
    mgr = manager(gateway)
    wan = config(mgr, "wan0")
    wan_id = mgr.NetConnectionProps("wan0").Guid
    inet = lab.ns("inet")

    web = wan.AddPortMapping("web", hn.NAT_PROTOCOL_TCP, 8080, 80, 0, lab.LAN2, hn.ICSTT_IPADDRESS)
    props = web.Properties
    assert (props.Name, props.IPProtocol, props.ExternalPort, props.InternalPort) == (
        "web",
        hn.NAT_PROTOCOL_TCP,
        8080,
        80,
    )
    assert (props.TargetName, props.TargetIPAddress, props.Options) == ("", lab.LAN2, 0)
    assert props.Enabled is False  # "When first added, the new mapping is in a disabled state"
    assert 8080 not in dnat_ports(lab, wan_id)
    web.Enable()
    assert dnat_ports(lab, wan_id)[8080] == lab.LAN2
    assert probe(inet, "tcp", lab.WAN_GW, 8080) == f"lan2 {lab.INET}"
    snapshot = web.Properties
    web.Disable()
    assert snapshot.Enabled is True and web.get_Properties().Enabled is False
    assert 8080 not in dnat_ports(lab, wan_id)

    listed = wan.EnumPortMappings(hn.ICSSC_DEFAULT)
    names = [m.Properties.Name for m in listed]
    assert listed.Count == 10 and names[-1] == "web" and "FTP Server" in names
    with pytest.raises(HResultError) as bad_flags:
        wan.EnumPortMappings(hn.ICSSC_ENABLED)
    assert hresult_of(bad_flags) == hn.E_INVALIDARG

    # Duplicates and bad arguments: E_INVALIDARG, with sharewall's code when the daemon refused.
    for args in (
        ("web", hn.NAT_PROTOCOL_UDP, 9000, 9000, 0, lab.LAN2, hn.ICSTT_IPADDRESS),
        ("web2", hn.NAT_PROTOCOL_TCP, 8080, 81, 0, lab.LAN1, hn.ICSTT_IPADDRESS),
    ):
        with pytest.raises(HResultError) as duplicate:
            wan.AddPortMapping(*args)
        assert (hresult_of(duplicate), duplicate.value.code) == (
            hn.E_INVALIDARG,
            "duplicate_mapping",
        )
    for args in (
        ("x", 1, 9000, 9000, 0, lab.LAN2, hn.ICSTT_IPADDRESS),
        ("x", hn.NAT_PROTOCOL_TCP, 0, 9000, 0, lab.LAN2, hn.ICSTT_IPADDRESS),
        ("x", hn.NAT_PROTOCOL_TCP, 9000, 9000, 0, "not-an-ip", hn.ICSTT_IPADDRESS),
        ("x", hn.NAT_PROTOCOL_TCP, 9000, 9000, 0, lab.LAN2, 2),
    ):
        with pytest.raises(HResultError) as invalid:
            wan.AddPortMapping(*args)
        assert hresult_of(invalid) == hn.E_INVALIDARG

    # Targets: a host name is kept (unresolved: no address yet); loopback/localhost = the gateway.
    nas = wan.AddPortMapping("nas", hn.NAT_PROTOCOL_UDP, 5000, 5000, 3, "nas-box", hn.ICSTT_NAME)
    assert (nas.Properties.TargetName, nas.Properties.TargetIPAddress) == ("nas-box", "")
    assert nas.Properties.Options == 3
    ssh = wan.AddPortMapping("ssh", hn.NAT_PROTOCOL_TCP, 2222, 22, 0, "127.0.0.1", 1)
    www = wan.AddPortMapping("www", hn.NAT_PROTOCOL_TCP, 8000, 8000, 0, "localhost", 0)
    for mapping in (ssh, www):
        assert (mapping.Properties.TargetName, mapping.Properties.TargetIPAddress) == (
            "gateway",
            "127.0.0.1",
        )
        mapping.Enable()
    assert {2222, 8000} <= gateway_tcp_ports(lab, wan_id)

    # Built-in services: enable yes, delete no.
    ftp = next(m for m in wan.EnumPortMappings(0) if m.Properties.Name == "FTP Server")
    with pytest.raises(HResultError) as builtin:
        ftp.Delete()
    assert (hresult_of(builtin), builtin.value.code) == (hn.E_ACCESSDENIED, "builtin_mapping")
    ftp.Enable()
    assert 21 in gateway_tcp_ports(lab, wan_id)

    # RemovePortMapping and Delete; a handle of a removed mapping, or another connection's, is invalid.
    wan.RemovePortMapping(web)
    nas.Delete()
    with pytest.raises(HResultError) as gone:
        web.Properties  # noqa: B018 - reading the property is the call under test
    assert hresult_of(gone) == hn.E_INVALIDARG
    lan = config(mgr, "lan0")
    with pytest.raises(HResultError) as foreign:
        lan.RemovePortMapping(ssh)
    assert hresult_of(foreign) == hn.E_INVALIDARG
    assert [m.Properties.Name for m in wan.EnumPortMappings(0)][-2:] == ["ssh", "www"]

    # DisableSharing disables every mapping of the connection and stops sharing, firewall kept.
    wan.DisableSharing()
    assert gateway.client().status()["sharing"]["active"] is False
    assert not any(m.Properties.Enabled for m in wan.EnumPortMappings(0))
    assert gateway_tcp_ports(lab, wan_id) == set()
    assert wan.InternetFirewallEnabled is True


def test_windows_firewall_subset(lab, gateway) -> None:
    """HNetCfg.FwMgr: profile switch, open ports (with real packets), ICMP, services, queries, restore."""
    mgr = CreateObject("HNetCfg.FwMgr", socket_path=str(gateway.socket))
    profile = mgr.LocalPolicy.CurrentProfile
    assert profile.Type == fw.NET_FW_PROFILE_STANDARD == mgr.CurrentProfileType
    ids = {c["name"]: c["id"] for c in gateway.client().connections()}
    inet = lab.ns("inet")

    assert profile.FirewallEnabled is False
    profile.FirewallEnabled = True
    assert {f"fwd_{slot(ids['wan0'])}", f"fwd_{slot(ids['lan0'])}"} <= chains(lab)
    assert profile.FirewallEnabled is True

    ports = profile.GloballyOpenPorts
    assert ports.Count == 0
    port = CreateObject("HNetCfg.FWOpenPort")
    port.Name = "HTTP"
    port.Protocol = fw.NET_FW_IP_PROTOCOL_TCP
    port.Port = 8000
    port.Scope = fw.NET_FW_SCOPE_ALL
    for prop, value in (("Scope", fw.NET_FW_SCOPE_LOCAL_SUBNET), ("RemoteAddresses", "10.0.0.0/8")):
        with pytest.raises(HResultError) as narrow:
            setattr(port, prop, value)
        assert hresult_of(narrow) == hn.E_NOTIMPL
    ports.Add(port)
    assert ports.Count == 1 and ports.Item(8000, fw.NET_FW_IP_PROTOCOL_TCP).Name == "HTTP"
    assert 8000 in gateway_tcp_ports(lab, ids["wan0"]) & gateway_tcp_ports(lab, ids["lan0"])
    start_server(lab.ns("gw"), "tcp", 8000, "gw")
    assert probe(inet, "tcp", lab.WAN_GW, 8000) == f"gw {lab.INET}"
    assert mgr.IsPortAllowed(None, fw.NET_FW_IP_VERSION_ANY, 8000, None, 6) == (True, False)
    assert mgr.IsPortAllowed(None, fw.NET_FW_IP_VERSION_V4, 8000, lab.WAN_GW, 6) == (True, False)
    assert mgr.IsPortAllowed(None, fw.NET_FW_IP_VERSION_ANY, 8001, None, 6) == (False, False)
    with pytest.raises(HResultError) as not_ours:
        mgr.IsPortAllowed(None, fw.NET_FW_IP_VERSION_V4, 8000, "192.0.2.99", 6)
    assert hresult_of(not_ours) == hn.E_INVALIDARG

    # A port taken from the collection writes through; Add of an open port overwrites it.
    ports.Item(8000, 6).Enabled = False
    assert 8000 not in gateway_tcp_ports(lab, ids["wan0"])
    assert mgr.IsPortAllowed(None, fw.NET_FW_IP_VERSION_ANY, 8000, None, 6) == (False, False)
    port.Name = "Web"
    ports.Add(port)
    assert [(p.Name, p.Enabled) for p in ports] == [("Web", True)]
    ports.Remove(8000, 6)
    ports.Remove(8000, 6)  # closed already: no effect
    assert ports.Count == 0 and 8000 not in gateway_tcp_ports(lab, ids["wan0"])
    with pytest.raises(HResultError) as missing:
        ports.Item(8000, 6)
    assert hresult_of(missing) == 0x80070002

    # ICMP: the switch is on for every connection of the profile, and it works.
    icmp = profile.IcmpSettings
    assert icmp.AllowInboundEchoRequest is False and icmp.AllowOutboundPacketTooBig is True
    assert not ping(inet, lab.WAN_GW)
    icmp.AllowInboundEchoRequest = True
    assert icmp.AllowInboundEchoRequest is True
    assert ping(inet, lab.WAN_GW)
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V4, None, 8) == (True, False)
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V6, None, 128) == (True, False)
    assert mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_V4, None, 13) == (False, False)
    with pytest.raises(HResultError) as any_version:
        mgr.IsIcmpTypeAllowed(fw.NET_FW_IP_VERSION_ANY, None, 8)
    assert hresult_of(any_version) == hn.E_INVALIDARG

    # Services are sharewall's built-in mappings.
    services = profile.Services
    assert services.Count == 9
    rdp = services.Item(fw.NET_FW_SERVICE_REMOTE_DESKTOP)
    assert (rdp.Name, rdp.Enabled, rdp.Customized) == ("Remote Desktop", False, False)
    with pytest.raises(HResultError) as no_file_sharing:
        services.Item(fw.NET_FW_SERVICE_FILE_AND_PRINT)
    assert hresult_of(no_file_sharing) == 0x80070002
    rdp.Enabled = True
    assert 3389 in gateway_tcp_ports(lab, ids["wan0"])
    rdp_port = rdp.GloballyOpenPorts.Item(3389, 6)
    assert rdp_port.BuiltIn and rdp_port.Enabled
    with pytest.raises(HResultError) as builtin:
        rdp_port.Port = 3390
    assert hresult_of(builtin) == hn.E_ACCESSDENIED
    rdp_port.Enabled = False
    assert 3389 not in gateway_tcp_ports(lab, ids["wan0"])

    with pytest.raises(HResultError) as no_switch:
        profile.ExceptionsNotAllowed = True
    assert hresult_of(no_switch) == hn.E_NOTIMPL

    # Sharing: the private side leaves the profile. Then RestoreDefaults undoes everything.
    gateway.client().share("wan0", ["lan0"])
    ports.Add(port)
    assert [c["name"] for c in gateway.client().connections() if c["sharing"] == "public"] == [
        "wan0"
    ]
    assert 8000 in gateway_tcp_ports(lab, ids["wan0"])
    assert all(m["name"] != "Web" for m in gateway.client().mappings("lan0"))
    mgr.RestoreDefaults()
    status = gateway.client().status()
    assert status["sharing"]["active"] is False and status["mappings"] == 0
    for name in ("wan0", "lan0"):
        details = gateway.client().connection(name)
        assert details["firewall"] is True and details["icmp"]["inbound_echo_request"] is False
        assert not any(m["enabled"] for m in gateway.client().mappings(name))
    assert not ping(inet, lab.WAN_GW)
