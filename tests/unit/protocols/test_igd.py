"""IGD layer: descriptions, action argument validation and its UPnP errors, GENA, CallStranger."""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharewall.protocols import igd, soap
from sharewall.protocols._limits import IGD_MAX_DESCRIPTION_CHARS, IGD_MAX_LEASE_S
from sharewall.protocols.errors import RemoteProtocolError

DEVICE_NS = "{urn:schemas-upnp-org:device-1-0}"
SERVICE_NS = "{urn:schemas-upnp-org:service-1-0}"
UUIDS = (
    "5f3b2a10-0000-4000-8000-000000000001",
    "5f3b2a10-0000-4000-8000-000000000002",
    "5f3b2a10-0000-4000-8000-000000000003",
)
ADD = {
    "NewRemoteHost": "",
    "NewExternalPort": "8080",
    "NewProtocol": "TCP",
    "NewInternalPort": "80",
    "NewInternalClient": "10.99.0.1",
    "NewEnabled": "1",
    "NewPortMappingDescription": "libminiupnpc",
    "NewLeaseDuration": "3600",
}


def description(igd_version: int = 1, **changes: object) -> igd.DeviceDescription:
    fields: dict[str, object] = {
        "root_uuid": UUIDS[0],
        "wan_device_uuid": UUIDS[1],
        "wan_connection_device_uuid": UUIDS[2],
        "friendly_name": "sharewall gateway",
        "igd_version": igd_version,
        "presentation_url": "http://192.168.137.1/",
    }
    fields.update(changes)
    return igd.DeviceDescription(**fields)  # type: ignore[arg-type]


def action(
    name: str, arguments: dict[str, str] | None = None, service: str = igd.WAN_IP_CONNECTION_1
) -> soap.SoapAction:
    return soap.SoapAction(service, name, dict(arguments or {}))


def parse(
    name: str,
    arguments: dict[str, str] | None = None,
    *,
    igd_version: int = 2,
    service: str | None = None,
) -> igd.IgdRequest:
    if service is None:
        service = igd.WAN_IP_CONNECTION_2 if igd_version == 2 else igd.WAN_IP_CONNECTION_1
    return igd.parse_action(action(name, arguments, service), igd_version=igd_version)


def upnp_error(name: str, arguments: dict[str, str] | None = None, **kwargs: object) -> int | None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse(name, arguments, **kwargs)  # type: ignore[arg-type]
    return caught.value.upnp_error


# --- descriptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("igd_version", [1, 2])
def test_device_description_tree(igd_version: int) -> None:
    root = ET.fromstring(igd.render_device_description(description(igd_version)))
    assert root.tag == f"{DEVICE_NS}root"
    assert root.findtext(f"{DEVICE_NS}specVersion/{DEVICE_NS}minor") == str(igd_version - 1)
    devices = list(root.iter(f"{DEVICE_NS}device"))
    assert [d.findtext(f"{DEVICE_NS}deviceType") for d in devices] == [
        f"urn:schemas-upnp-org:device:{kind}:{igd_version}"
        for kind in ("InternetGatewayDevice", "WANDevice", "WANConnectionDevice")
    ]
    assert [d.findtext(f"{DEVICE_NS}UDN") for d in devices] == [f"uuid:{u}" for u in UUIDS]
    found = {
        s.findtext(f"{DEVICE_NS}serviceType"): (
            s.findtext(f"{DEVICE_NS}SCPDURL"),
            s.findtext(f"{DEVICE_NS}controlURL"),
            s.findtext(f"{DEVICE_NS}eventSubURL"),
        )
        for s in root.iter(f"{DEVICE_NS}service")
    }
    assert found == {
        spec.service_type: (spec.scpd_path, spec.control_path, spec.event_path)
        for spec in igd.services(igd_version)
    }
    wanip = igd.WAN_IP_CONNECTION_2 if igd_version == 2 else igd.WAN_IP_CONNECTION_1
    assert wanip in found
    assert root.findtext(f"{DEVICE_NS}device/{DEVICE_NS}presentationURL") == "http://192.168.137.1/"
    assert ("configId" in root.attrib) == (igd_version == 2)


def test_device_description_escapes_and_omits() -> None:
    xml = igd.render_device_description(
        description(friendly_name="A & B <gw>", layer3_forwarding=False, base_url="http://x/")
    )
    root = ET.fromstring(xml)
    assert root.findtext(f"{DEVICE_NS}device/{DEVICE_NS}friendlyName") == "A & B <gw>"
    assert root.findtext(f"{DEVICE_NS}URLBase") == "http://x/"
    assert b"Layer3Forwarding" not in xml
    assert b"<manufacturerURL>" not in xml  # empty optional fields are left out


@pytest.mark.parametrize(
    "service_type",
    [
        igd.WAN_IP_CONNECTION_1,
        igd.WAN_IP_CONNECTION_2,
        igd.WAN_COMMON_INTERFACE_CONFIG_1,
        igd.LAYER3_FORWARDING_1,
    ],
)
def test_scpd_is_consistent(service_type: str) -> None:
    """Every argument names a declared state variable; names are unique."""
    root = ET.fromstring(igd.render_scpd(service_type))
    variables = [v.findtext(f"{SERVICE_NS}name") for v in root.iter(f"{SERVICE_NS}stateVariable")]
    assert len(variables) == len(set(variables))
    actions = [a.findtext(f"{SERVICE_NS}name") for a in root.iter(f"{SERVICE_NS}action")]
    assert len(actions) == len(set(actions))
    for argument in root.iter(f"{SERVICE_NS}argument"):
        assert argument.findtext(f"{SERVICE_NS}relatedStateVariable") in variables


def test_scpd_versions_differ_by_the_v2_actions() -> None:
    def actions(service_type: str) -> set[str | None]:
        root = ET.fromstring(igd.render_scpd(service_type))
        return {a.findtext(f"{SERVICE_NS}name") for a in root.iter(f"{SERVICE_NS}action")}

    assert actions(igd.WAN_IP_CONNECTION_2) - actions(igd.WAN_IP_CONNECTION_1) == {
        "AddAnyPortMapping",
        "DeletePortMappingRange",
        "GetListOfPortMappings",
    }
    with pytest.raises(KeyError):
        igd.render_scpd("urn:schemas-upnp-org:service:WANPPPConnection:1")


def test_evented_variables() -> None:
    assert igd.evented_variables(igd.WAN_IP_CONNECTION_1) == (
        "PossibleConnectionTypes",
        "ConnectionStatus",
        "ExternalIPAddress",
        "PortMappingNumberOfEntries",
    )
    assert "SystemUpdateID" in igd.evented_variables(igd.WAN_IP_CONNECTION_2)
    assert igd.evented_variables(igd.WAN_COMMON_INTERFACE_CONFIG_1) == ("PhysicalLinkStatus",)


def test_service_lookup_by_path() -> None:
    spec = igd.service_by_control_path("/ctl/IPConn", 2)
    assert spec is not None and spec.service_type == igd.WAN_IP_CONNECTION_2
    assert igd.service_by_control_path("/evt/CmnIfCfg", 1) is not None
    assert igd.service_by_control_path("/ctl/L3F", 1, layer3_forwarding=False) is None
    assert igd.service_by_control_path("/nope", 1) is None
    with pytest.raises(ValueError, match="igd_version"):
        igd.services(3)


# --- actions ---------------------------------------------------------------------------------


def test_upnpc_add_port_mapping() -> None:
    """The arguments upnpc sent (captured), on both device versions."""
    expected = igd.AddPortMapping(
        remote_host="",
        external_port=8080,
        protocol=igd.IPPROTO_TCP,
        internal_port=80,
        internal_client=ipaddress.IPv4Address("10.99.0.1"),
        enabled=True,
        description="libminiupnpc",
        lease_duration_s=3600,
    )
    assert parse("AddPortMapping", ADD, igd_version=1) == expected
    assert parse("AddPortMapping", ADD, igd_version=2) == expected


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"NewExternalPort": None}, 402),
        ({"NewInternalPort": None}, 402),
        ({"NewProtocol": None}, 402),
        ({"NewInternalClient": None}, 402),
        ({"NewInternalClient": ""}, 402),
        ({"NewInternalClient": "printer.lan"}, 402),  # names are not resolved
        ({"NewInternalClient": "0.0.0.0"}, 402),
        ({"NewInternalClient": "224.0.0.1"}, 402),
        ({"NewProtocol": "ICMP"}, 402),
        ({"NewExternalPort": "65536"}, 402),
        ({"NewExternalPort": "-1"}, 402),
        ({"NewExternalPort": "80a"}, 402),
        ({"NewExternalPort": "\uff10"}, 402),  # a fullwidth digit is not a digit here
        ({"NewLeaseDuration": "soon"}, 402),
        ({"NewEnabled": "maybe"}, 402),
        ({"NewRemoteHost": "198.51.100.1"}, 726),
        ({"NewExternalPort": "*"}, 716),
        ({"NewExternalPort": "0"}, 716),
        ({"NewInternalPort": "0"}, 732),
        ({"NewInternalPort": "*"}, 732),
    ],
)
def test_add_port_mapping_errors(changes: dict[str, str | None], code: int) -> None:
    arguments = {k: v for k, v in {**ADD, **changes}.items() if v is not None}
    assert upnp_error("AddPortMapping", arguments) == code


def test_add_port_mapping_v1_specifics() -> None:
    assert upnp_error("AddPortMapping", {**ADD, "NewInternalPort": "0"}, igd_version=1) == 402
    permanent = parse("AddPortMapping", {**ADD, "NewLeaseDuration": "0"}, igd_version=1)
    assert isinstance(permanent, igd.AddPortMapping) and permanent.lease_duration_s == 0


@pytest.mark.parametrize(
    ("lease", "expected"), [("0", IGD_MAX_LEASE_S), ("604801", IGD_MAX_LEASE_S), ("60", 60)]
)
def test_v2_lease_rules(lease: str, expected: int) -> None:
    request = parse("AddPortMapping", {**ADD, "NewLeaseDuration": lease})
    assert isinstance(request, igd.AddPortMapping) and request.lease_duration_s == expected


def test_lenient_readings() -> None:
    request = parse(
        "AddPortMapping",
        {
            **ADD,
            "NewRemoteHost": "*",
            "NewProtocol": " udp ",
            "NewExternalPort": " 8080\n",
            "NewEnabled": "false",
            "NewPortMappingDescription": "tab\there\x7f" + "x" * 300,
        },
    )
    assert isinstance(request, igd.AddPortMapping)
    assert (request.remote_host, request.protocol, request.external_port) == ("", 17, 8080)
    assert request.enabled is False
    assert request.description.startswith("tab here ")
    assert len(request.description) == IGD_MAX_DESCRIPTION_CHARS
    no_optional = {k: v for k, v in ADD.items() if k not in ("NewRemoteHost", "NewEnabled")}
    assert isinstance(parse("AddPortMapping", no_optional), igd.AddPortMapping)


def test_add_any_port_mapping() -> None:
    request = parse("AddAnyPortMapping", {**ADD, "NewExternalPort": "*"})
    assert isinstance(request, igd.AddAnyPortMapping) and request.external_port == 0
    assert upnp_error("AddAnyPortMapping", ADD, igd_version=1) == 401
    assert upnp_error("AddAnyPortMapping", ADD, service=igd.WAN_IP_CONNECTION_1) == 401


def test_v1_service_type_is_served_by_a_v2_device() -> None:
    request = parse("GetExternalIPAddress", service=igd.WAN_IP_CONNECTION_1, igd_version=2)
    assert request == igd.GetExternalIPAddress()
    assert upnp_error("GetExternalIPAddress", service=igd.WAN_IP_CONNECTION_2, igd_version=1) == 401


@pytest.mark.parametrize("name", ["DeletePortMapping", "GetSpecificPortMappingEntry"])
def test_mapping_key_actions(name: str) -> None:
    key = {"NewRemoteHost": "", "NewExternalPort": "8080", "NewProtocol": "TCP"}
    request = parse(name, key)
    assert (request.remote_host, request.external_port, request.protocol) == ("", 8080, 6)  # type: ignore[union-attr]
    assert upnp_error(name, {**key, "NewExternalPort": "0"}) == 402
    assert upnp_error(name, {**key, "NewExternalPort": "*"}) == 402
    assert upnp_error(name, {"NewExternalPort": "8080"}) == 402


def test_generic_entry_index() -> None:
    assert parse("GetGenericPortMappingEntry", {"NewPortMappingIndex": "7"}) == (
        igd.GetGenericPortMappingEntry(7)
    )
    assert upnp_error("GetGenericPortMappingEntry", {"NewPortMappingIndex": "x"}) == 402
    assert upnp_error("GetGenericPortMappingEntry", {}) == 402


def test_ranges() -> None:
    args = {"NewStartPort": "1000", "NewEndPort": "2000", "NewProtocol": "UDP", "NewManage": "1"}
    assert parse("DeletePortMappingRange", args) == igd.DeletePortMappingRange(1000, 2000, 17, True)
    assert upnp_error("DeletePortMappingRange", {**args, "NewStartPort": "3000"}) == 733
    assert upnp_error("DeletePortMappingRange", {**args, "NewManage": "2"}) == 402
    listing = {**args, "NewNumberOfPorts": "0"}
    assert parse("GetListOfPortMappings", listing) == igd.GetListOfPortMappings(
        1000, 2000, 17, True, 1000
    )
    big = parse("GetListOfPortMappings", {**listing, "NewNumberOfPorts": "50000"})
    assert isinstance(big, igd.GetListOfPortMappings) and big.number_of_ports == 1000
    assert upnp_error("GetListOfPortMappings", args) == 402


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("SetConnectionType", 731),
        ("RequestConnection", 606),
        ("ForceTermination", 606),
        ("RequestTermination", 401),
        ("QueryStateVariable", 401),
        ("NoSuchAction", 401),
    ],
)
def test_refused_actions(name: str, code: int) -> None:
    assert upnp_error(name, {"NewConnectionType": "IP_Routed"}) == code


def test_no_argument_actions() -> None:
    for cls in (
        igd.GetExternalIPAddress,
        igd.GetStatusInfo,
        igd.GetConnectionTypeInfo,
        igd.GetNATRSIPStatus,
    ):
        assert parse(cls.__name__) == cls()
    for cls2 in (
        igd.GetCommonLinkProperties,
        igd.GetTotalBytesSent,
        igd.GetTotalBytesReceived,
        igd.GetTotalPacketsSent,
        igd.GetTotalPacketsReceived,
    ):
        assert parse(cls2.__name__, service=igd.WAN_COMMON_INTERFACE_CONFIG_1) == cls2()
    assert parse("GetDefaultConnectionService", service=igd.LAYER3_FORWARDING_1) == (
        igd.GetDefaultConnectionService()
    )
    assert upnp_error("SetDefaultConnectionService", service=igd.LAYER3_FORWARDING_1) == 606
    assert upnp_error("AddPortMapping", ADD, service=igd.WAN_COMMON_INTERFACE_CONFIG_1) == 401
    assert (
        upnp_error("GetStatusInfo", service="urn:schemas-upnp-org:service:WANPPPConnection:1")
        == 401
    )
    with pytest.raises(RemoteProtocolError):
        igd.parse_action(
            action("GetDefaultConnectionService", service=igd.LAYER3_FORWARDING_1),
            igd_version=1,
            layer3_forwarding=False,
        )


def test_not_authorized_error_by_version() -> None:
    assert (igd.not_authorized_error(1), igd.not_authorized_error(2)) == (718, 606)


# --- responses -------------------------------------------------------------------------------

ENTRY = igd.PortMappingEntry(
    external_port=8080,
    protocol=igd.IPPROTO_TCP,
    internal_port=80,
    internal_client="10.99.0.1",
    description="web & <more>",
    lease_duration_s=3600,
)


def test_entry_arguments_follow_the_scpd() -> None:
    root = ET.fromstring(igd.render_scpd(igd.WAN_IP_CONNECTION_1))

    def outputs(name: str) -> list[str | None]:
        for a in root.iter(f"{SERVICE_NS}action"):
            if a.findtext(f"{SERVICE_NS}name") == name:
                return [
                    arg.findtext(f"{SERVICE_NS}name")
                    for arg in a.iter(f"{SERVICE_NS}argument")
                    if arg.findtext(f"{SERVICE_NS}direction") == "out"
                ]
        raise AssertionError(name)

    assert [n for n, _ in igd.generic_entry_arguments(ENTRY)] == outputs(
        "GetGenericPortMappingEntry"
    )
    assert [n for n, _ in igd.specific_entry_arguments(ENTRY)] == outputs(
        "GetSpecificPortMappingEntry"
    )
    assert dict(igd.generic_entry_arguments(ENTRY))["NewProtocol"] == "TCP"


def test_port_mapping_list_travels_as_cdata_and_parses() -> None:
    listing = igd.render_port_mapping_list([ENTRY, ENTRY])
    assert isinstance(listing, soap.CData)
    body = soap.render_response(
        igd.WAN_IP_CONNECTION_2, "GetListOfPortMappings", [("NewPortListing", listing)]
    )
    assert b"<NewPortListing><![CDATA[<?xml" in body
    inner = soap.parse_response(body, igd.WAN_IP_CONNECTION_2, "GetListOfPortMappings")[
        "NewPortListing"
    ]
    tree = ET.fromstring(inner.encode())
    p = "{urn:schemas-upnp-org:gw:WANIPConnection}"
    assert tree.tag == f"{p}PortMappingList"
    entries = tree.findall(f"{p}PortMappingEntry")
    assert len(entries) == 2
    assert entries[0].findtext(f"{p}NewDescription") == "web & <more>"
    assert entries[0].findtext(f"{p}NewLeaseTime") == "3600"


# --- GENA ------------------------------------------------------------------------------------

SUBSCRIBER = "192.168.137.20"


def test_subscribe_and_renew() -> None:
    headers = {
        "CALLBACK": f"<http://{SUBSCRIBER}:49152/evt> <http://203.0.113.5/steal>",
        "NT": "upnp:event",
        "TIMEOUT": "Second-1800",
    }
    assert igd.parse_subscribe(headers, subscriber_ip=SUBSCRIBER) == igd.Subscribe(
        callbacks=(f"http://{SUBSCRIBER}:49152/evt",), timeout_s=1800
    )
    renewal = igd.parse_subscribe(
        {"Sid": "uuid:abc-1", "Timeout": "Second-infinite"}, subscriber_ip=SUBSCRIBER
    )
    assert renewal == igd.Renewal(sid="uuid:abc-1", timeout_s=None)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"CALLBACK": "<http://203.0.113.5/>", "NT": "upnp:event"}, 412),  # CallStranger
        ({"CALLBACK": f"<http://{SUBSCRIBER}/>"}, 412),  # no NT
        ({"CALLBACK": f"<http://{SUBSCRIBER}/>", "NT": "upnp:other"}, 412),
        ({"NT": "upnp:event"}, 412),  # no CALLBACK
        ({"CALLBACK": f"http://{SUBSCRIBER}/", "NT": "upnp:event"}, 412),  # no angle brackets
        ({"SID": "uuid:1", "NT": "upnp:event"}, 400),
        ({"SID": "uuid:1", "CALLBACK": f"<http://{SUBSCRIBER}/>"}, 400),
        ({"SID": "not-a-uuid"}, 412),
        ({"CALLBACK": "<" + "a" * 2000 + ">", "NT": "upnp:event"}, 400),
    ],
)
def test_subscribe_refusals(headers: dict[str, str], status: int) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        igd.parse_subscribe(headers, subscriber_ip=SUBSCRIBER)
    assert caught.value.http_status == status


def test_unsubscribe() -> None:
    assert igd.parse_unsubscribe({"SID": "uuid:abc"}) == igd.Unsubscribe("uuid:abc")
    for headers, status in (({}, 412), ({"SID": "uuid:a", "NT": "upnp:event"}, 400)):
        with pytest.raises(RemoteProtocolError) as caught:
            igd.parse_unsubscribe(headers)
        assert caught.value.http_status == status


@pytest.mark.parametrize(
    ("url", "subscriber", "allowed"),
    [
        ("http://192.168.137.20/", SUBSCRIBER, True),
        ("http://192.168.137.20:5000/notify?x=1", SUBSCRIBER, True),
        ("HTTP://192.168.137.20/", SUBSCRIBER, True),
        ("http://[fe80::1]:80/", "fe80::1", True),
        ("http://192.168.137.20/", "::ffff:192.168.137.20", True),
        ("https://192.168.137.20/", SUBSCRIBER, False),
        ("http://192.168.137.21/", SUBSCRIBER, False),
        ("http://203.0.113.5/", SUBSCRIBER, False),
        ("http://router.lan/", SUBSCRIBER, False),
        ("http://192.168.137.20@203.0.113.5/", SUBSCRIBER, False),
        ("http://x@192.168.137.20/", SUBSCRIBER, False),
        ("http://192.168.137.20\\@203.0.113.5/", SUBSCRIBER, False),
        ("http://192.168.137.20:99999/", SUBSCRIBER, False),
        ("http://192.168.137.20 /", SUBSCRIBER, False),
        ("http://192.168.137.20\r\nHost: evil/", SUBSCRIBER, False),
        ("http://0xc0.168.137.20/", SUBSCRIBER, False),
        ("http://192.168.137.020/", SUBSCRIBER, False),
        ("http:///path", SUBSCRIBER, False),
        ("file:///etc/passwd", SUBSCRIBER, False),
        ("http://192.168.137.20/", "not an ip", False),
    ],
)
def test_callback_allowed(url: str, subscriber: str, allowed: bool) -> None:
    assert igd.callback_allowed(url, subscriber) is allowed


def test_propertyset_and_headers() -> None:
    body = igd.render_propertyset(
        [("ExternalIPAddress", "203.0.113.9"), ("ConnectionStatus", "Connected")]
    )
    tree = ET.fromstring(body)
    e = "{urn:schemas-upnp-org:event-1-0}"
    assert tree.tag == f"{e}propertyset"
    assert [p[0].tag for p in tree.findall(f"{e}property")] == [
        "ExternalIPAddress",
        "ConnectionStatus",
    ]
    with pytest.raises(ValueError, match="state variable"):
        igd.render_propertyset({"bad name": "1"})
    assert igd.notify_headers("uuid:1", 0)["NTS"] == "upnp:propchange"
    assert igd.subscribe_response_headers("uuid:1", 1800, "S")["TIMEOUT"] == "Second-1800"


# --- Hypothesis ------------------------------------------------------------------------------

ports = st.integers(1, 0xFFFF)
clients = st.builds(ipaddress.IPv4Address, st.integers(0x0A000001, 0x0AFFFFFE))
descriptions = st.text(
    st.characters(
        min_codepoint=32, exclude_categories=["Cs"], exclude_characters="\x7f\ufffe\uffff"
    ),
    max_size=IGD_MAX_DESCRIPTION_CHARS,
)
protocols = st.sampled_from([igd.IPPROTO_TCP, igd.IPPROTO_UDP])
typed_requests = st.one_of(
    st.builds(
        igd.AddPortMapping,
        remote_host=st.just(""),
        external_port=ports,
        protocol=protocols,
        internal_port=ports,
        internal_client=clients,
        enabled=st.booleans(),
        description=descriptions,
        lease_duration_s=st.integers(1, IGD_MAX_LEASE_S),
    ),
    st.builds(
        igd.AddAnyPortMapping,
        remote_host=st.just(""),
        external_port=st.integers(0, 0xFFFF),
        protocol=protocols,
        internal_port=ports,
        internal_client=clients,
        enabled=st.booleans(),
        description=descriptions,
        lease_duration_s=st.integers(1, IGD_MAX_LEASE_S),
    ),
    st.builds(igd.DeletePortMapping, st.just(""), ports, protocols),
    st.builds(igd.GetSpecificPortMappingEntry, st.just(""), ports, protocols),
    st.builds(igd.GetGenericPortMappingEntry, st.integers(0, 2**32 - 1)),
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), protocols, st.booleans()).map(
        lambda t: igd.DeletePortMappingRange(min(t[0], t[1]), max(t[0], t[1]), t[2], t[3])
    ),
    st.tuples(
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        protocols,
        st.booleans(),
        st.integers(1, 1000),
    ).map(lambda t: igd.GetListOfPortMappings(min(t[0], t[1]), max(t[0], t[1]), *t[2:])),
    st.sampled_from([igd.GetExternalIPAddress(), igd.GetStatusInfo(), igd.GetNATRSIPStatus()]),
)


@settings(deadline=None)
@given(typed_requests)
def test_action_round_trip_through_soap(request: igd.IgdRequest) -> None:
    """request_arguments → soap.render_request → soap.parse_request → parse_action is identity."""
    name, arguments = igd.request_arguments(request)
    body, header = soap.render_request(igd.WAN_IP_CONNECTION_2, name, arguments)
    assert igd.parse_action(soap.parse_request(body, header), igd_version=2) == request


argument_names = st.sampled_from(
    sorted(
        {
            *ADD,
            "NewPortMappingIndex",
            "NewStartPort",
            "NewEndPort",
            "NewManage",
            "NewNumberOfPorts",
            "Other",
        }
    )
)
action_names = st.sampled_from(
    [
        "AddPortMapping",
        "AddAnyPortMapping",
        "DeletePortMapping",
        "DeletePortMappingRange",
        "GetGenericPortMappingEntry",
        "GetSpecificPortMappingEntry",
        "GetListOfPortMappings",
        "GetExternalIPAddress",
        "SetConnectionType",
        "Bogus",
    ]
)
values = st.one_of(
    st.sampled_from(
        ["", "*", "0", "1", "65535", "65536", "TCP", "udp", "10.0.0.1", "true", "4294967296"]
    ),
    st.text(max_size=20),
)


@settings(deadline=None)
@given(
    action_names,
    st.dictionaries(argument_names, values, max_size=10),
    st.sampled_from([1, 2]),
    st.sampled_from(
        [igd.WAN_IP_CONNECTION_1, igd.WAN_IP_CONNECTION_2, igd.WAN_COMMON_INTERFACE_CONFIG_1]
    ),
)
def test_parse_action_returns_or_raises_upnp_error(
    name: str, arguments: dict[str, str], igd_version: int, service: str
) -> None:
    try:
        igd.parse_action(soap.SoapAction(service, name, arguments), igd_version=igd_version)
    except RemoteProtocolError as error:
        assert error.upnp_error is not None
        assert error.upnp_error in soap.UPNP_ERROR_DESCRIPTIONS


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["SID", "NT", "CALLBACK", "TIMEOUT", "X"]), st.text(max_size=60), max_size=5
    )
)
def test_gena_parsers_return_or_raise_protocol_error(headers: dict[str, str]) -> None:
    for parse_headers in (
        lambda: igd.parse_subscribe(headers, subscriber_ip=SUBSCRIBER),
        lambda: igd.parse_unsubscribe(headers),
    ):
        try:
            parse_headers()
        except RemoteProtocolError as error:
            assert error.http_status in (400, 412)


@settings(deadline=None)
@given(
    st.text(max_size=60)
    | st.from_regex(re.compile(r"https?://[\w.:@\[\]%/\\-]{0,40}"), fullmatch=True)
)
def test_callback_allowed_never_raises_and_only_admits_the_subscriber(url: str) -> None:
    if igd.callback_allowed(url, SUBSCRIBER):
        assert url.lower().startswith(f"http://{SUBSCRIBER}")
