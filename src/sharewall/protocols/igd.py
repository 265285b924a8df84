"""UPnP Internet Gateway Device (IGD:1 and IGD:2): descriptions, action arguments, GENA.

Pure: no I/O, no clock. Three jobs, all on values the adapter and the daemon pass in:

1. **Descriptions**: the device description (InternetGatewayDevice → WANDevice →
   WANConnectionDevice, with Layer3Forwarding optional) and the SCPDs of WANIPConnection:1/2,
   WANCommonInterfaceConfig:1 and Layer3Forwarding:1, rendered from the tables below.
2. **Actions**: :func:`parse_action` turns a :class:`~sharewall.protocols.soap.SoapAction` into
   a typed request (one class per action, named as in the spec) or raises the UPnP error the
   spec and miniupnpd give (seed-system.md §6.3). Whether a mapping is *allowed* (secure mode,
   permissions, quotas, conflicts: 606/718/728/729) is the daemon's decision, not this module's.
3. **GENA** (UDA 1.1 §4): SUBSCRIBE/UNSUBSCRIBE header parsing, NOTIFY bodies and headers, and
   :func:`callback_allowed`, which admits only ``http://<the subscriber's own IP>`` callbacks
   (CallStranger, CVE-2020-12695).

Protocols are IANA numbers (6 TCP, 17 UDP), as in ``natpmp`` and ``pcp``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from sharewall.protocols._limits import (
    GENA_MAX_CALLBACKS,
    GENA_MAX_HEADER_CHARS,
    IGD_MAX_DESCRIPTION_CHARS,
    IGD_MAX_LEASE_S,
    IGD_MAX_LISTED_MAPPINGS,
)
from sharewall.protocols.errors import RemoteProtocolError
from sharewall.protocols.soap import CData, SoapAction, escape_text

__all__ = [
    "DESCRIPTION_PATH",
    "EVENT_NS",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "LAYER3_FORWARDING_1",
    "WAN_COMMON_INTERFACE_CONFIG_1",
    "WAN_IP_CONNECTION_1",
    "WAN_IP_CONNECTION_2",
    "AddAnyPortMapping",
    "AddPortMapping",
    "DeletePortMapping",
    "DeletePortMappingRange",
    "DeviceDescription",
    "GetCommonLinkProperties",
    "GetConnectionTypeInfo",
    "GetDefaultConnectionService",
    "GetExternalIPAddress",
    "GetGenericPortMappingEntry",
    "GetListOfPortMappings",
    "GetNATRSIPStatus",
    "GetSpecificPortMappingEntry",
    "GetStatusInfo",
    "GetTotalBytesReceived",
    "GetTotalBytesSent",
    "GetTotalPacketsReceived",
    "GetTotalPacketsSent",
    "IgdRequest",
    "PortMappingEntry",
    "Renewal",
    "ServiceSpec",
    "Subscribe",
    "Unsubscribe",
    "callback_allowed",
    "evented_variables",
    "generic_entry_arguments",
    "not_authorized_error",
    "notify_headers",
    "parse_action",
    "parse_subscribe",
    "parse_unsubscribe",
    "protocol_name",
    "render_device_description",
    "render_port_mapping_list",
    "render_propertyset",
    "render_scpd",
    "request_arguments",
    "service_by_control_path",
    "services",
    "specific_entry_arguments",
    "subscribe_response_headers",
]

IPPROTO_TCP = 6
IPPROTO_UDP = 17

_URN = "urn:schemas-upnp-org:"
WAN_IP_CONNECTION_1 = f"{_URN}service:WANIPConnection:1"
WAN_IP_CONNECTION_2 = f"{_URN}service:WANIPConnection:2"
WAN_COMMON_INTERFACE_CONFIG_1 = f"{_URN}service:WANCommonInterfaceConfig:1"
LAYER3_FORWARDING_1 = f"{_URN}service:Layer3Forwarding:1"
DESCRIPTION_PATH = "/rootDesc.xml"
EVENT_NS = f"{_URN}event-1-0"
_DEVICE_NS = f"{_URN}device-1-0"
_SERVICE_NS = f"{_URN}service-1-0"
_PORT_LISTING_NS = f"{_URN}gw:WANIPConnection"
_PORT_LISTING_XSD = "http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_PROTOCOL_NAMES = {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP"}


def protocol_name(protocol: int) -> str:
    """``6`` → ``"TCP"``, ``17`` → ``"UDP"`` (PortMappingProtocol's allowed values)."""
    return _PROTOCOL_NAMES[protocol]


def not_authorized_error(igd_version: int) -> int:
    """The error for "not allowed" (secure mode, permission rules): 606 on IGD:2, 718 on IGD:1.

    miniupnpd's choice (seed-system.md §6.3): IGD:1 has no 606 for these actions.
    """
    return 606 if igd_version == 2 else 718


# --- services and paths ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service of the device tree and where the adapter serves it (miniupnpd's paths)."""

    service_type: str
    service_id: str
    scpd_path: str
    control_path: str
    event_path: str


def services(igd_version: int, *, layer3_forwarding: bool = True) -> tuple[ServiceSpec, ...]:
    """The services of our IGD, in device-tree order."""
    _check_version(igd_version)
    wan_ip = WAN_IP_CONNECTION_2 if igd_version == 2 else WAN_IP_CONNECTION_1
    specs = []
    if layer3_forwarding:
        specs.append(
            ServiceSpec(
                LAYER3_FORWARDING_1,
                "urn:upnp-org:serviceId:L3Forwarding1",
                "/L3F.xml",
                "/ctl/L3F",
                "/evt/L3F",
            )
        )
    specs += [
        ServiceSpec(
            WAN_COMMON_INTERFACE_CONFIG_1,
            "urn:upnp-org:serviceId:WANCommonIFC1",
            "/WANCfg.xml",
            "/ctl/CmnIfCfg",
            "/evt/CmnIfCfg",
        ),
        ServiceSpec(
            wan_ip,
            "urn:upnp-org:serviceId:WANIPConn1",
            "/WANIPCn.xml",
            "/ctl/IPConn",
            "/evt/IPConn",
        ),
    ]
    return tuple(specs)


def service_by_control_path(
    path: str, igd_version: int, *, layer3_forwarding: bool = True
) -> ServiceSpec | None:
    """The service whose control (or event) URL is ``path``, if any."""
    for spec in services(igd_version, layer3_forwarding=layer3_forwarding):
        if path in (spec.control_path, spec.event_path):
            return spec
    return None


def _check_version(igd_version: int) -> None:
    if igd_version not in (1, 2):
        raise ValueError(f"igd_version must be 1 or 2, not {igd_version}")


# --- SCPD tables -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    data_type: str
    evented: bool = False
    default: str | None = None
    allowed: tuple[str, ...] = ()
    value_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Action:
    name: str
    inputs: tuple[tuple[str, str], ...] = ()  # (argument, related state variable)
    outputs: tuple[tuple[str, str], ...] = ()


_MAPPING_KEY = (
    ("NewRemoteHost", "RemoteHost"),
    ("NewExternalPort", "ExternalPort"),
    ("NewProtocol", "PortMappingProtocol"),
)
_MAPPING_VALUE = (
    ("NewInternalPort", "InternalPort"),
    ("NewInternalClient", "InternalClient"),
    ("NewEnabled", "PortMappingEnabled"),
    ("NewPortMappingDescription", "PortMappingDescription"),
    ("NewLeaseDuration", "PortMappingLeaseDuration"),
)

# WANIPConnection:1 (seed-system.md §6.2/§6.3, miniupnpd upnpdescgen.c).
_WAN_IP_ACTIONS_1 = (
    _Action("SetConnectionType", inputs=(("NewConnectionType", "ConnectionType"),)),
    _Action(
        "GetConnectionTypeInfo",
        outputs=(
            ("NewConnectionType", "ConnectionType"),
            ("NewPossibleConnectionTypes", "PossibleConnectionTypes"),
        ),
    ),
    _Action("RequestConnection"),
    _Action("ForceTermination"),
    _Action(
        "GetStatusInfo",
        outputs=(
            ("NewConnectionStatus", "ConnectionStatus"),
            ("NewLastConnectionError", "LastConnectionError"),
            ("NewUptime", "Uptime"),
        ),
    ),
    _Action(
        "GetNATRSIPStatus",
        outputs=(("NewRSIPAvailable", "RSIPAvailable"), ("NewNATEnabled", "NATEnabled")),
    ),
    _Action(
        "GetGenericPortMappingEntry",
        inputs=(("NewPortMappingIndex", "PortMappingNumberOfEntries"),),
        outputs=_MAPPING_KEY + _MAPPING_VALUE,
    ),
    _Action("GetSpecificPortMappingEntry", inputs=_MAPPING_KEY, outputs=_MAPPING_VALUE),
    _Action("AddPortMapping", inputs=_MAPPING_KEY + _MAPPING_VALUE),
    _Action("DeletePortMapping", inputs=_MAPPING_KEY),
    _Action("GetExternalIPAddress", outputs=(("NewExternalIPAddress", "ExternalIPAddress"),)),
)
_RANGE_INPUTS = (
    ("NewStartPort", "ExternalPort"),
    ("NewEndPort", "ExternalPort"),
    ("NewProtocol", "PortMappingProtocol"),
    ("NewManage", "A_ARG_TYPE_Manage"),
)
_WAN_IP_ACTIONS_2 = (
    *_WAN_IP_ACTIONS_1,
    _Action("DeletePortMappingRange", inputs=_RANGE_INPUTS),
    _Action(
        "GetListOfPortMappings",
        inputs=(*_RANGE_INPUTS, ("NewNumberOfPorts", "PortMappingNumberOfEntries")),
        outputs=(("NewPortListing", "A_ARG_TYPE_PortListing"),),
    ),
    _Action(
        "AddAnyPortMapping",
        inputs=_MAPPING_KEY + _MAPPING_VALUE,
        outputs=(("NewReservedPort", "ExternalPort"),),
    ),
)


def _wan_ip_variables(igd_version: int) -> tuple[_Variable, ...]:
    lease_range = (0, IGD_MAX_LEASE_S) if igd_version == 2 else None
    variables = [
        _Variable("ConnectionType", "string", default="IP_Routed"),
        _Variable(
            "PossibleConnectionTypes",
            "string",
            evented=True,
            allowed=("Unconfigured", "IP_Routed", "IP_Bridged"),
        ),
        _Variable(
            "ConnectionStatus",
            "string",
            evented=True,
            default="Unconfigured",
            allowed=(
                "Unconfigured",
                "Connecting",
                "Connected",
                "PendingDisconnect",
                "Disconnecting",
                "Disconnected",
            ),
        ),
        _Variable("Uptime", "ui4"),
        _Variable("LastConnectionError", "string", allowed=("ERROR_NONE",)),
        _Variable("RSIPAvailable", "boolean"),
        _Variable("NATEnabled", "boolean"),
        _Variable("ExternalIPAddress", "string", evented=True),
        _Variable("PortMappingNumberOfEntries", "ui2", evented=True),
        _Variable("PortMappingEnabled", "boolean"),
        _Variable("PortMappingLeaseDuration", "ui4", value_range=lease_range),
        _Variable("RemoteHost", "string"),
        _Variable("ExternalPort", "ui2"),
        _Variable("InternalPort", "ui2", value_range=(1, 65535)),
        _Variable("PortMappingProtocol", "string", allowed=("TCP", "UDP")),
        _Variable("InternalClient", "string"),
        _Variable("PortMappingDescription", "string"),
    ]
    if igd_version == 2:
        variables += [
            _Variable("SystemUpdateID", "ui4", evented=True),
            _Variable("A_ARG_TYPE_Manage", "boolean"),
            _Variable("A_ARG_TYPE_PortListing", "string"),
        ]
    return tuple(variables)


_COMMON_IFC_ACTIONS = (
    _Action(
        "GetCommonLinkProperties",
        outputs=(
            ("NewWANAccessType", "WANAccessType"),
            ("NewLayer1UpstreamMaxBitRate", "Layer1UpstreamMaxBitRate"),
            ("NewLayer1DownstreamMaxBitRate", "Layer1DownstreamMaxBitRate"),
            ("NewPhysicalLinkStatus", "PhysicalLinkStatus"),
        ),
    ),
    _Action("GetTotalBytesSent", outputs=(("NewTotalBytesSent", "TotalBytesSent"),)),
    _Action("GetTotalBytesReceived", outputs=(("NewTotalBytesReceived", "TotalBytesReceived"),)),
    _Action("GetTotalPacketsSent", outputs=(("NewTotalPacketsSent", "TotalPacketsSent"),)),
    _Action(
        "GetTotalPacketsReceived", outputs=(("NewTotalPacketsReceived", "TotalPacketsReceived"),)
    ),
)
_COMMON_IFC_VARIABLES = (
    _Variable("WANAccessType", "string", allowed=("DSL", "POTS", "Cable", "Ethernet")),
    _Variable("Layer1UpstreamMaxBitRate", "ui4"),
    _Variable("Layer1DownstreamMaxBitRate", "ui4"),
    _Variable(
        "PhysicalLinkStatus",
        "string",
        evented=True,
        allowed=("Up", "Down", "Initializing", "Unavailable"),
    ),
    # "The count rolls over to 0 after it reaching the maximum value (2^32)-1."
    _Variable("TotalBytesSent", "ui4"),
    _Variable("TotalBytesReceived", "ui4"),
    _Variable("TotalPacketsSent", "ui4"),
    _Variable("TotalPacketsReceived", "ui4"),
)
_L3F_ACTIONS = (
    _Action(
        "SetDefaultConnectionService",
        inputs=(("NewDefaultConnectionService", "DefaultConnectionService"),),
    ),
    _Action(
        "GetDefaultConnectionService",
        outputs=(("NewDefaultConnectionService", "DefaultConnectionService"),),
    ),
)
_L3F_VARIABLES = (_Variable("DefaultConnectionService", "string", evented=True),)

_SCPD: dict[str, tuple[tuple[_Action, ...], tuple[_Variable, ...]]] = {
    WAN_IP_CONNECTION_1: (_WAN_IP_ACTIONS_1, _wan_ip_variables(1)),
    WAN_IP_CONNECTION_2: (_WAN_IP_ACTIONS_2, _wan_ip_variables(2)),
    WAN_COMMON_INTERFACE_CONFIG_1: (_COMMON_IFC_ACTIONS, _COMMON_IFC_VARIABLES),
    LAYER3_FORWARDING_1: (_L3F_ACTIONS, _L3F_VARIABLES),
}


def evented_variables(service_type: str) -> tuple[str, ...]:
    """The state variables of ``service_type`` that GENA NOTIFYs carry (``sendEvents="yes"``)."""
    return tuple(v.name for v in _SCPD[service_type][1] if v.evented)


def render_scpd(service_type: str) -> bytes:
    """The service description (SCPD) XML of one of our services.

    Raises:
        KeyError: not one of our service types.
    """
    actions, variables = _SCPD[service_type]
    parts = [
        '<?xml version="1.0"?>\r\n',
        f'<scpd xmlns="{_SERVICE_NS}">',
        "<specVersion><major>1</major><minor>0</minor></specVersion>",
        "<actionList>",
    ]
    for action in actions:
        parts.append(f"<action><name>{action.name}</name>")
        if action.inputs or action.outputs:
            parts.append("<argumentList>")
            for direction, arguments in (("in", action.inputs), ("out", action.outputs)):
                for name, related in arguments:
                    parts.append(
                        f"<argument><name>{name}</name><direction>{direction}</direction>"
                        f"<relatedStateVariable>{related}</relatedStateVariable></argument>"
                    )
            parts.append("</argumentList>")
        parts.append("</action>")
    parts.append("</actionList><serviceStateTable>")
    for variable in variables:
        parts.append(
            f'<stateVariable sendEvents="{"yes" if variable.evented else "no"}">'
            f"<name>{variable.name}</name><dataType>{variable.data_type}</dataType>"
        )
        if variable.default is not None:
            parts.append(f"<defaultValue>{variable.default}</defaultValue>")
        if variable.allowed:
            parts.append("<allowedValueList>")
            parts += [f"<allowedValue>{value}</allowedValue>" for value in variable.allowed]
            parts.append("</allowedValueList>")
        if variable.value_range is not None:
            low, high = variable.value_range
            parts.append(
                f"<allowedValueRange><minimum>{low}</minimum><maximum>{high}</maximum>"
                "</allowedValueRange>"
            )
        parts.append("</stateVariable>")
    parts.append("</serviceStateTable></scpd>\r\n")
    return "".join(parts).encode()


# --- device description ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceDescription:
    """What the device description says about us. UUIDs are bare (no ``uuid:`` prefix).

    ``base_url`` becomes ``<URLBase>`` (UDA 1.0; left out when empty, so control points
    resolve our paths against the LOCATION they fetched, which is right on every link).
    """

    root_uuid: str
    wan_device_uuid: str
    wan_connection_device_uuid: str
    friendly_name: str
    igd_version: int = 1
    presentation_url: str = ""
    base_url: str = ""
    config_id: int = 1
    manufacturer: str = "sharewall"
    manufacturer_url: str = ""
    model_description: str = "sharewall Internet Connection Sharing gateway"
    model_name: str = "sharewall"
    model_number: str = "1"
    model_url: str = ""
    serial_number: str = ""
    layer3_forwarding: bool = True

    def __post_init__(self) -> None:
        _check_version(self.igd_version)


def _element(name: str, value: str) -> str:
    return f"<{name}>{escape_text(value)}</{name}>" if value else ""


def _device_head(description: DeviceDescription, kind: str, name: str, uuid: str) -> str:
    d = description
    return (
        f"<deviceType>{_URN}device:{kind}:{d.igd_version}</deviceType>"
        + _element("friendlyName", name)
        + _element("manufacturer", d.manufacturer)
        + _element("manufacturerURL", d.manufacturer_url)
        + _element("modelDescription", d.model_description)
        + _element("modelName", d.model_name)
        + _element("modelNumber", d.model_number)
        + _element("modelURL", d.model_url)
        + _element("serialNumber", d.serial_number)
        + _element("UDN", f"uuid:{uuid}")
    )


def _service_list(specs: Sequence[ServiceSpec]) -> str:
    if not specs:
        return ""
    return (
        "<serviceList>"
        + "".join(
            f"<service><serviceType>{s.service_type}</serviceType>"
            f"<serviceId>{s.service_id}</serviceId><SCPDURL>{s.scpd_path}</SCPDURL>"
            f"<controlURL>{s.control_path}</controlURL>"
            f"<eventSubURL>{s.event_path}</eventSubURL></service>"
            for s in specs
        )
        + "</serviceList>"
    )


def render_device_description(description: DeviceDescription) -> bytes:
    """The root device description XML (served at :data:`DESCRIPTION_PATH`)."""
    d = description
    by_type = {
        spec.service_type: spec
        for spec in services(d.igd_version, layer3_forwarding=d.layer3_forwarding)
    }
    wan_ip = by_type[WAN_IP_CONNECTION_2 if d.igd_version == 2 else WAN_IP_CONNECTION_1]
    root_services = [by_type[LAYER3_FORWARDING_1]] if d.layer3_forwarding else []
    config_id = f' configId="{int(d.config_id)}"' if d.igd_version == 2 else ""
    minor = 1 if d.igd_version == 2 else 0
    connection_device = (
        "<device>"
        + _device_head(
            d, "WANConnectionDevice", "WANConnectionDevice", d.wan_connection_device_uuid
        )
        + _service_list([wan_ip])
        + "</device>"
    )
    wan_device = (
        "<device>"
        + _device_head(d, "WANDevice", "WANDevice", d.wan_device_uuid)
        + _service_list([by_type[WAN_COMMON_INTERFACE_CONFIG_1]])
        + f"<deviceList>{connection_device}</deviceList>"
        + "</device>"
    )
    root = (
        "<device>"
        + _device_head(d, "InternetGatewayDevice", d.friendly_name, d.root_uuid)
        + _service_list(root_services)
        + f"<deviceList>{wan_device}</deviceList>"
        + _element("presentationURL", d.presentation_url)
        + "</device>"
    )
    return (
        '<?xml version="1.0"?>\r\n'
        f'<root xmlns="{_DEVICE_NS}"{config_id}>'
        f"<specVersion><major>1</major><minor>{minor}</minor></specVersion>"
        + _element("URLBase", d.base_url)
        + root
        + "</root>\r\n"
    ).encode()


# --- typed action requests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetExternalIPAddress:
    """WANIPConnection: out NewExternalIPAddress ("" when unknown)."""


@dataclass(frozen=True, slots=True)
class GetStatusInfo:
    """WANIPConnection: out NewConnectionStatus, NewLastConnectionError, NewUptime."""


@dataclass(frozen=True, slots=True)
class GetConnectionTypeInfo:
    """WANIPConnection: out NewConnectionType, NewPossibleConnectionTypes (``IP_Routed``)."""


@dataclass(frozen=True, slots=True)
class GetNATRSIPStatus:
    """WANIPConnection: out NewRSIPAvailable (0), NewNATEnabled (1)."""


@dataclass(frozen=True, slots=True)
class AddPortMapping:
    """WANIPConnection: create or overwrite one mapping.

    ``remote_host`` is always ``""`` (wildcard): anything else was refused with 726.
    ``lease_duration_s`` 0 means permanent on IGD:1; on IGD:2 it is already 1..604800.
    """

    remote_host: str
    external_port: int
    protocol: int
    internal_port: int
    internal_client: ipaddress.IPv4Address
    enabled: bool
    description: str
    lease_duration_s: int


@dataclass(frozen=True, slots=True)
class AddAnyPortMapping:
    """WANIPConnection:2: like AddPortMapping, but the gateway picks the port.

    ``external_port`` is the wish (0 = any); out NewReservedPort.
    """

    remote_host: str
    external_port: int
    protocol: int
    internal_port: int
    internal_client: ipaddress.IPv4Address
    enabled: bool
    description: str
    lease_duration_s: int


@dataclass(frozen=True, slots=True)
class DeletePortMapping:
    """WANIPConnection: not found → 714 (the daemon's answer)."""

    remote_host: str
    external_port: int
    protocol: int


@dataclass(frozen=True, slots=True)
class DeletePortMappingRange:
    """WANIPConnection:2: none in range → 730 (the daemon's answer)."""

    start_port: int
    end_port: int
    protocol: int
    manage: bool


@dataclass(frozen=True, slots=True)
class GetGenericPortMappingEntry:
    """WANIPConnection: the ``index``-th mapping; out of range → 713 (the daemon's answer)."""

    index: int


@dataclass(frozen=True, slots=True)
class GetSpecificPortMappingEntry:
    """WANIPConnection: not found → 714 (the daemon's answer)."""

    remote_host: str
    external_port: int
    protocol: int


@dataclass(frozen=True, slots=True)
class GetListOfPortMappings:
    """WANIPConnection:2: out NewPortListing (see :func:`render_port_mapping_list`).

    ``number_of_ports`` is already 1..IGD_MAX_LISTED_MAPPINGS ("0" asked for all).
    """

    start_port: int
    end_port: int
    protocol: int
    manage: bool
    number_of_ports: int


@dataclass(frozen=True, slots=True)
class GetCommonLinkProperties:
    """WANCommonInterfaceConfig: out NewWANAccessType, NewLayer1Upstream/DownstreamMaxBitRate,
    NewPhysicalLinkStatus."""


@dataclass(frozen=True, slots=True)
class GetTotalBytesSent:
    """WANCommonInterfaceConfig: out NewTotalBytesSent (ui4, wraps)."""


@dataclass(frozen=True, slots=True)
class GetTotalBytesReceived:
    """WANCommonInterfaceConfig: out NewTotalBytesReceived (ui4, wraps)."""


@dataclass(frozen=True, slots=True)
class GetTotalPacketsSent:
    """WANCommonInterfaceConfig: out NewTotalPacketsSent (ui4, wraps)."""


@dataclass(frozen=True, slots=True)
class GetTotalPacketsReceived:
    """WANCommonInterfaceConfig: out NewTotalPacketsReceived (ui4, wraps)."""


@dataclass(frozen=True, slots=True)
class GetDefaultConnectionService:
    """Layer3Forwarding: out ``uuid:<WANConnectionDevice>:WANConnectionDevice:1,<serviceId>``."""


IgdRequest = (
    GetExternalIPAddress
    | GetStatusInfo
    | GetConnectionTypeInfo
    | GetNATRSIPStatus
    | AddPortMapping
    | AddAnyPortMapping
    | DeletePortMapping
    | DeletePortMappingRange
    | GetGenericPortMappingEntry
    | GetSpecificPortMappingEntry
    | GetListOfPortMappings
    | GetCommonLinkProperties
    | GetTotalBytesSent
    | GetTotalBytesReceived
    | GetTotalPacketsSent
    | GetTotalPacketsReceived
    | GetDefaultConnectionService
)


# --- argument readers ------------------------------------------------------------------------


def _invalid_args(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, upnp_error=402)


def _required(arguments: Mapping[str, str], name: str) -> str:
    try:
        return arguments[name].strip()
    except KeyError:
        raise _invalid_args(f"missing argument {name}") from None


def _number(name: str, text: str, maximum: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > maximum:
        raise _invalid_args(f"{name} is not a number from 0 to {maximum}")
    return int(text)


def _port_or_wildcard(name: str, text: str) -> int:
    """A ui2 port; ``*`` and ``0`` both read as 0 (the wildcard)."""
    return 0 if text == "*" else _number(name, text, 0xFFFF)


def _protocol(arguments: Mapping[str, str]) -> int:
    text = _required(arguments, "NewProtocol").upper()
    if text == "TCP":
        return IPPROTO_TCP
    if text == "UDP":
        return IPPROTO_UDP
    raise _invalid_args("NewProtocol must be TCP or UDP")


def _boolean(name: str, text: str) -> bool:
    # UDA 1.1 §2.5 boolean: "0, false, or no for false; 1, true, or yes for true".
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise _invalid_args(f"{name} is not a boolean")


def _remote_host(arguments: Mapping[str, str]) -> str:
    # Missing is read as the wildcard, as miniupnpd does.
    text = arguments.get("NewRemoteHost", "").strip()
    return "" if text == "*" else text


def _description(text: str) -> str:
    cleaned = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return cleaned[:IGD_MAX_DESCRIPTION_CHARS]


def _internal_client(arguments: Mapping[str, str]) -> ipaddress.IPv4Address:
    text = _required(arguments, "NewInternalClient")
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        # miniupnpd resolves host names here; we do not resolve names from the LAN.
        raise _invalid_args("NewInternalClient must be an IPv4 address") from None
    if (
        address.is_unspecified
        or address.is_multicast
        or address.is_loopback
        or (address == ipaddress.IPv4Address("255.255.255.255"))
    ):
        raise _invalid_args(f"NewInternalClient {address} cannot receive a mapping")
    return address


_AddFields = tuple[str, int, int, int, ipaddress.IPv4Address, bool, str, int]


def _add_arguments(arguments: Mapping[str, str], igd_version: int, *, any_port: bool) -> _AddFields:
    """Shared validation of AddPortMapping and AddAnyPortMapping (seed-system.md §6.3)."""
    external_text = _required(arguments, "NewExternalPort")
    internal_text = _required(arguments, "NewInternalPort")
    protocol = _protocol(arguments)
    remote_host = _remote_host(arguments)
    if remote_host:
        raise RemoteProtocolError("only a wildcard NewRemoteHost is supported", upnp_error=726)
    internal_client = _internal_client(arguments)
    external_port = _port_or_wildcard("NewExternalPort", external_text)
    if external_port == 0 and not any_port:
        raise RemoteProtocolError("NewExternalPort must not be a wildcard", upnp_error=716)
    internal_port = _port_or_wildcard("NewInternalPort", internal_text)
    if internal_port == 0:
        if igd_version == 2:
            raise RemoteProtocolError("NewInternalPort must not be a wildcard", upnp_error=732)
        raise _invalid_args("NewInternalPort must be 1..65535")
    lease = _number("NewLeaseDuration", arguments.get("NewLeaseDuration", "0").strip(), 2**32 - 1)
    if igd_version == 2 and not 0 < lease <= IGD_MAX_LEASE_S:
        # IGD:2: "If a control point uses the value 0 to indicate an infinite lease time
        # mapping, it is REQUIRED that gateway uses the maximum value instead."
        lease = IGD_MAX_LEASE_S
    enabled_text = arguments.get("NewEnabled", "1").strip()
    return (
        remote_host,
        external_port,
        protocol,
        internal_port,
        internal_client,
        _boolean("NewEnabled", enabled_text),
        _description(arguments.get("NewPortMappingDescription", "")),
        lease,
    )


def _mapping_key(arguments: Mapping[str, str]) -> tuple[str, int, int]:
    external_text = _required(arguments, "NewExternalPort")
    protocol = _protocol(arguments)
    external_port = _number("NewExternalPort", external_text, 0xFFFF)
    if external_port == 0:
        raise _invalid_args("NewExternalPort must be 1..65535")
    return _remote_host(arguments), external_port, protocol


def _port_range(arguments: Mapping[str, str]) -> tuple[int, int, int, bool]:
    start = _number("NewStartPort", _required(arguments, "NewStartPort"), 0xFFFF)
    end = _number("NewEndPort", _required(arguments, "NewEndPort"), 0xFFFF)
    protocol = _protocol(arguments)
    manage = _boolean("NewManage", _required(arguments, "NewManage"))
    if start > end:
        raise RemoteProtocolError("NewStartPort is above NewEndPort", upnp_error=733)
    return start, end, protocol, manage


_NO_ARGUMENT_ACTIONS: dict[str, dict[str, Callable[[], IgdRequest]]] = {
    "wanip": {
        "GetExternalIPAddress": GetExternalIPAddress,
        "GetStatusInfo": GetStatusInfo,
        "GetConnectionTypeInfo": GetConnectionTypeInfo,
        "GetNATRSIPStatus": GetNATRSIPStatus,
    },
    "common": {
        "GetCommonLinkProperties": GetCommonLinkProperties,
        "GetTotalBytesSent": GetTotalBytesSent,
        "GetTotalBytesReceived": GetTotalBytesReceived,
        "GetTotalPacketsSent": GetTotalPacketsSent,
        "GetTotalPacketsReceived": GetTotalPacketsReceived,
    },
    "l3f": {"GetDefaultConnectionService": GetDefaultConnectionService},
}
_V2_ONLY = frozenset({"AddAnyPortMapping", "DeletePortMappingRange", "GetListOfPortMappings"})


def parse_action(
    action: SoapAction, *, igd_version: int, layer3_forwarding: bool = True
) -> IgdRequest:
    """Validate an action's arguments and return the typed request.

    Args:
        action: what :func:`sharewall.protocols.soap.parse_request` read.
        igd_version: the device's version (1 or 2); it chooses the error codes and lease rules.
            An IGD:2 device also accepts requests addressed to WANIPConnection:1, without the
            v2-only actions.
        layer3_forwarding: whether we publish Layer3Forwarding.

    Raises:
        RemoteProtocolError: ``upnp_error`` is the fault to send: 401 (unknown service or
            action), 402 (missing/malformed argument), 606 (RequestConnection,
            ForceTermination, SetDefaultConnectionService: LAN clients do not steer the
            uplink), 716, 726, 731 (SetConnectionType), 732, 733.
    """
    _check_version(igd_version)
    service, name, arguments = action.service_type, action.action, action.arguments
    if service == WAN_IP_CONNECTION_1 or (service == WAN_IP_CONNECTION_2 and igd_version == 2):
        if name in _V2_ONLY and service != WAN_IP_CONNECTION_2:
            raise RemoteProtocolError(f"{name} is a WANIPConnection:2 action", upnp_error=401)
        return _parse_wan_ip(name, arguments, igd_version)
    if service == WAN_COMMON_INTERFACE_CONFIG_1 and name in _NO_ARGUMENT_ACTIONS["common"]:
        return _NO_ARGUMENT_ACTIONS["common"][name]()
    if service == LAYER3_FORWARDING_1 and layer3_forwarding:
        if name == "SetDefaultConnectionService":
            raise RemoteProtocolError("the default connection is not settable", upnp_error=606)
        if name in _NO_ARGUMENT_ACTIONS["l3f"]:
            return _NO_ARGUMENT_ACTIONS["l3f"][name]()
    raise RemoteProtocolError(f"no action {name} in {service}", upnp_error=401)


def _parse_wan_ip(name: str, arguments: Mapping[str, str], igd_version: int) -> IgdRequest:
    if name in _NO_ARGUMENT_ACTIONS["wanip"]:
        return _NO_ARGUMENT_ACTIONS["wanip"][name]()
    if name == "AddPortMapping":
        return AddPortMapping(*_add_arguments(arguments, igd_version, any_port=False))
    if name == "AddAnyPortMapping":
        return AddAnyPortMapping(*_add_arguments(arguments, igd_version, any_port=True))
    if name == "DeletePortMapping":
        return DeletePortMapping(*_mapping_key(arguments))
    if name == "GetSpecificPortMappingEntry":
        return GetSpecificPortMappingEntry(*_mapping_key(arguments))
    if name == "GetGenericPortMappingEntry":
        index_text = _required(arguments, "NewPortMappingIndex")
        return GetGenericPortMappingEntry(_number("NewPortMappingIndex", index_text, 2**32 - 1))
    if name == "DeletePortMappingRange":
        return DeletePortMappingRange(*_port_range(arguments))
    if name == "GetListOfPortMappings":
        start, end, protocol, manage = _port_range(arguments)
        count_text = _required(arguments, "NewNumberOfPorts")
        count = _number("NewNumberOfPorts", count_text, 0xFFFF)
        count = IGD_MAX_LISTED_MAPPINGS if count == 0 else min(count, IGD_MAX_LISTED_MAPPINGS)
        return GetListOfPortMappings(start, end, protocol, manage, count)
    if name == "SetConnectionType":
        raise RemoteProtocolError("ConnectionType is read-only", upnp_error=731)
    if name in ("RequestConnection", "ForceTermination"):
        raise RemoteProtocolError(f"{name} is not allowed from the LAN", upnp_error=606)
    raise RemoteProtocolError(f"no action {name} in WANIPConnection", upnp_error=401)


_ARGUMENT_NAMES = {
    "remote_host": "NewRemoteHost",
    "external_port": "NewExternalPort",
    "protocol": "NewProtocol",
    "internal_port": "NewInternalPort",
    "internal_client": "NewInternalClient",
    "enabled": "NewEnabled",
    "description": "NewPortMappingDescription",
    "lease_duration_s": "NewLeaseDuration",
    "index": "NewPortMappingIndex",
    "start_port": "NewStartPort",
    "end_port": "NewEndPort",
    "manage": "NewManage",
    "number_of_ports": "NewNumberOfPorts",
}


def request_arguments(request: IgdRequest) -> tuple[str, list[tuple[str, str]]]:
    """(action name, ``In`` arguments) for sending ``request`` (control-point role).

    The inverse of :func:`parse_action`: feed the result to
    :func:`sharewall.protocols.soap.render_request`.
    """
    arguments: list[tuple[str, str]] = []
    for field in fields(request):
        value = getattr(request, field.name)
        if field.name == "protocol":
            text = protocol_name(value)
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        arguments.append((_ARGUMENT_NAMES[field.name], text))
    return type(request).__name__, arguments


# --- port mapping entries out ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortMappingEntry:
    """One mapping as WANIPConnection reports it (the daemon fills it from its table)."""

    external_port: int
    protocol: int
    internal_port: int
    internal_client: str
    description: str
    lease_duration_s: int
    enabled: bool = True
    remote_host: str = ""


def generic_entry_arguments(entry: PortMappingEntry) -> list[tuple[str, str]]:
    """``Out`` arguments of GetGenericPortMappingEntry, in SCPD order."""
    return [
        ("NewRemoteHost", entry.remote_host),
        ("NewExternalPort", str(entry.external_port)),
        ("NewProtocol", protocol_name(entry.protocol)),
        *specific_entry_arguments(entry),
    ]


def specific_entry_arguments(entry: PortMappingEntry) -> list[tuple[str, str]]:
    """``Out`` arguments of GetSpecificPortMappingEntry, in SCPD order."""
    return [
        ("NewInternalPort", str(entry.internal_port)),
        ("NewInternalClient", entry.internal_client),
        ("NewEnabled", "1" if entry.enabled else "0"),
        ("NewPortMappingDescription", entry.description),
        ("NewLeaseDuration", str(entry.lease_duration_s)),
    ]


def render_port_mapping_list(entries: Sequence[PortMappingEntry]) -> CData:
    """GetListOfPortMappings' ``NewPortListing`` value: a ``p:PortMappingList`` document.

    Returned as :class:`~sharewall.protocols.soap.CData` so the SOAP response carries it the
    way miniupnpd does (miniupnpc does not decode entities).
    """
    items = "".join(
        "<p:PortMappingEntry>"
        f"<p:NewRemoteHost>{escape_text(e.remote_host)}</p:NewRemoteHost>"
        f"<p:NewExternalPort>{e.external_port}</p:NewExternalPort>"
        f"<p:NewProtocol>{protocol_name(e.protocol)}</p:NewProtocol>"
        f"<p:NewInternalPort>{e.internal_port}</p:NewInternalPort>"
        f"<p:NewInternalClient>{escape_text(e.internal_client)}</p:NewInternalClient>"
        f"<p:NewEnabled>{1 if e.enabled else 0}</p:NewEnabled>"
        f"<p:NewDescription>{escape_text(e.description)}</p:NewDescription>"
        f"<p:NewLeaseTime>{e.lease_duration_s}</p:NewLeaseTime>"
        "</p:PortMappingEntry>"
        for e in entries
    )
    return CData(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<p:PortMappingList xmlns:p="{_PORT_LISTING_NS}" xmlns:xsi="{_XSI_NS}" '
        f'xsi:schemaLocation="{_PORT_LISTING_NS} {_PORT_LISTING_XSD}">'
        f"{items}</p:PortMappingList>"
    )


# --- GENA ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A new subscription; ``callbacks`` already passed :func:`callback_allowed`.

    ``timeout_s`` is what the subscriber asked for; None when absent, ``infinite`` or
    unreadable (the daemon applies its default and its bounds).
    """

    callbacks: tuple[str, ...]
    timeout_s: int | None


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewal of subscription ``sid`` (unknown SID → 412, the daemon's answer)."""

    sid: str
    timeout_s: int | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    sid: str


_TIMEOUT = re.compile(r"Second-([0-9]{1,10})", re.IGNORECASE)
_CALLBACK = re.compile(r"\s*<([^<>]*)>\s*")
# Bytes a callback URL may hold: RFC 3986 unreserved, gen-delims and sub-delims minus "@"
# (no userinfo: it is where URL parsers disagree) and "\\" (which some parsers read as "/").
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]!$&'()*+,;=%]+")


def _gena_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        if len(value) > GENA_MAX_HEADER_CHARS:
            raise RemoteProtocolError(f"{name} header too long", http_status=400)
        lowered[name.lower()] = value.strip()
    return lowered


def _timeout(value: str | None) -> int | None:
    match = _TIMEOUT.fullmatch(value or "")
    return int(match.group(1)) if match else None


def _check_sid(sid: str) -> str:
    if not sid.startswith("uuid:") or len(sid) > 128 or not _URL_CHARS.fullmatch(sid):
        raise RemoteProtocolError("malformed SID", http_status=412)
    return sid


def parse_subscribe(headers: Mapping[str, str], *, subscriber_ip: str) -> Subscribe | Renewal:
    """Read a SUBSCRIBE request's headers (UDA 1.1 §4.1.2).

    Args:
        headers: the HTTP headers (any case).
        subscriber_ip: the TCP peer's address; only callbacks to it are kept.

    Raises:
        RemoteProtocolError: ``http_status`` 400 (SID together with NT or CALLBACK, or an
            oversized header) or 412 Precondition Failed (NT not ``upnp:event``, no usable
            CALLBACK, malformed SID).
    """
    lowered = _gena_headers(headers)
    sid, nt, callback = lowered.get("sid"), lowered.get("nt"), lowered.get("callback")
    if sid is not None:
        if nt is not None or callback is not None:
            raise RemoteProtocolError("SID with NT or CALLBACK", http_status=400)
        return Renewal(sid=_check_sid(sid), timeout_s=_timeout(lowered.get("timeout")))
    if nt != "upnp:event":
        raise RemoteProtocolError("NT must be upnp:event", http_status=412)
    if callback is None:
        raise RemoteProtocolError("SUBSCRIBE without CALLBACK", http_status=412)
    urls: list[str] = []
    position = 0
    while position < len(callback):
        match = _CALLBACK.match(callback, position)
        if match is None:
            raise RemoteProtocolError("malformed CALLBACK", http_status=412)
        urls.append(match.group(1))
        position = match.end()
    allowed = tuple(url for url in urls if callback_allowed(url, subscriber_ip))
    if not allowed:
        # CallStranger (CVE-2020-12695): never send events anywhere but to the subscriber.
        raise RemoteProtocolError("no CALLBACK to the subscriber's own address", http_status=412)
    return Subscribe(
        callbacks=allowed[:GENA_MAX_CALLBACKS], timeout_s=_timeout(lowered.get("timeout"))
    )


def parse_unsubscribe(headers: Mapping[str, str]) -> Unsubscribe:
    """Read an UNSUBSCRIBE request's headers (UDA 1.1 §4.1.4).

    Raises:
        RemoteProtocolError: 400 (NT or CALLBACK given) or 412 (no or malformed SID).
    """
    lowered = _gena_headers(headers)
    if "nt" in lowered or "callback" in lowered:
        raise RemoteProtocolError("UNSUBSCRIBE with NT or CALLBACK", http_status=400)
    sid = lowered.get("sid")
    if sid is None:
        raise RemoteProtocolError("UNSUBSCRIBE without SID", http_status=412)
    return Unsubscribe(sid=_check_sid(sid))


def _unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def callback_allowed(callback_url: str, subscriber_ip: str) -> bool:
    """Whether events may be sent to ``callback_url`` for a subscriber at ``subscriber_ip``.

    Only ``http://`` URLs whose host is an IP literal equal to the subscriber's address are
    allowed: no host names, no userinfo, no other schemes. This is the CallStranger fix
    (CVE-2020-12695): a LAN host cannot make the gateway send requests to third parties.
    """
    if not _URL_CHARS.fullmatch(callback_url):
        return False
    try:
        parts = urlsplit(callback_url)
        if parts.scheme != "http" or parts.hostname is None:
            return False
        _ = parts.port  # raises ValueError on a malformed port
        host = ipaddress.ip_address(parts.hostname)
        subscriber = ipaddress.ip_address(subscriber_ip)
    except ValueError:
        return False
    return _unmapped(host) == _unmapped(subscriber)


def render_propertyset(properties: Sequence[tuple[str, str]] | Mapping[str, str]) -> bytes:
    """A GENA NOTIFY body: ``<e:propertyset>`` with one ``<e:property>`` per variable."""
    pairs = properties.items() if isinstance(properties, Mapping) else properties
    body = "".join(
        f"<e:property><{_variable_name(name)}>{escape_text(value)}</{name}></e:property>"
        for name, value in pairs
    )
    return (
        f'<?xml version="1.0"?>\r\n<e:propertyset xmlns:e="{EVENT_NS}">{body}</e:propertyset>\r\n'
    ).encode()


def _variable_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise ValueError(f"not a state variable name: {name!r}")
    return name


def notify_headers(sid: str, seq: int) -> dict[str, str]:
    """Headers of a GENA NOTIFY (UDA 1.1 §4.2.1); ``seq`` starts at 0 and wraps to 1."""
    return {
        "CONTENT-TYPE": 'text/xml; charset="utf-8"',
        "NT": "upnp:event",
        "NTS": "upnp:propchange",
        "SID": sid,
        "SEQ": str(seq),
    }


def subscribe_response_headers(sid: str, timeout_s: int, server: str) -> dict[str, str]:
    """Headers of the 200 OK answering SUBSCRIBE (UDA 1.1 §4.1.2)."""
    return {"SERVER": server, "SID": sid, "TIMEOUT": f"Second-{int(timeout_s)}"}
