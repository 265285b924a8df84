# ruff: noqa: N802, N803
# (pep8-naming is off here as in hnetcfg.py: the names mirror Microsoft's Windows Firewall API.)
"""Windows Firewall API subset (``HNetCfg.FwMgr``, XP SP2) on top of sharewalld's local API.

``CreateObject("HNetCfg.FwMgr")`` returns an :class:`INetFwMgr`; ``LocalPolicy.CurrentProfile``
is an :class:`INetFwProfile` with ``FirewallEnabled``, ``GloballyOpenPorts``, ``IcmpSettings`` and
``Services``; the manager answers ``IsPortAllowed`` / ``IsIcmpTypeAllowed`` and does
``RestoreDefaults`` (seed-system.md §8).

Promise: like :mod:`sharewall.api.hnetcfg`, an adapter that only calls
:class:`sharewall.api.client.Client`. Windows Firewall has one switch for the whole machine;
sharewall has one per connection. The mapping, kept the same everywhere:

- the profile covers every connection except the private side of sharing (Windows does not
  firewall the ICS private connection either);
- a profile-wide switch (FirewallEnabled, an ICMP setting, a service's or port's Enabled) reads
  TRUE only when it is on for every such connection, and setting it sets it on each of them;
- a globally open port is a port mapping ``port -> gateway:port`` (same port, to this machine) on
  each such connection; a service is one of sharewall's built-in mappings (§7.6);
- Scope and RemoteAddresses can only be "all" (``NET_FW_SCOPE_ALL`` / ``"*"``): sharewall cannot
  restrict a mapping by remote address yet, so anything else fails with E_NOTIMPL rather than
  opening the port wider than asked.

Deviations: ``docs/hnetcfg-compatibility.md``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import ClassVar, overload

from sharewall.api.client import Client, ConnectionInfo, MappingInfo
from sharewall.api.hnetcfg import (
    E_ACCESSDENIED,
    E_FAIL,
    E_INVALIDARG,
    E_NOTIMPL,
    ERROR_FILE_NOT_FOUND,
    HRESULT_FROM_WIN32,
    CLSID_NetFwMgr,
    CLSID_NetFwOpenPort,
    HResultError,
    IEnumVARIANT,
    _Collection,
    _ref,
    _Session,
)

__all__ = [
    "INetFwAuthorizedApplications",
    "INetFwIcmpSettings",
    "INetFwMgr",
    "INetFwOpenPort",
    "INetFwOpenPorts",
    "INetFwPolicy",
    "INetFwProfile",
    "INetFwRemoteAdminSettings",
    "INetFwService",
    "INetFwServices",
]

# --- Enumerations (icftypes.h; seed-system.md §3 "NET_FW_*") ---------------------------------

NET_FW_PROFILE_DOMAIN = 0
NET_FW_PROFILE_STANDARD = 1
NET_FW_PROFILE_CURRENT = 2
NET_FW_PROFILE_TYPE_MAX = 3
NET_FW_PROFILE2_DOMAIN = 1
NET_FW_PROFILE2_PRIVATE = 2
NET_FW_PROFILE2_PUBLIC = 4
NET_FW_PROFILE2_ALL = 0x7FFFFFFF
NET_FW_IP_VERSION_V4 = 0
NET_FW_IP_VERSION_V6 = 1
NET_FW_IP_VERSION_ANY = 2
NET_FW_IP_VERSION_MAX = 3
NET_FW_POLICY_GROUP = 0
NET_FW_POLICY_LOCAL = 1
NET_FW_POLICY_EFFECTIVE = 2
NET_FW_POLICY_TYPE_MAX = 3
NET_FW_SCOPE_ALL = 0
NET_FW_SCOPE_LOCAL_SUBNET = 1
NET_FW_SCOPE_CUSTOM = 2
NET_FW_SCOPE_MAX = 3
NET_FW_SERVICE_FILE_AND_PRINT = 0
NET_FW_SERVICE_UPNP = 1
NET_FW_SERVICE_REMOTE_DESKTOP = 2
NET_FW_SERVICE_NONE = 3
NET_FW_SERVICE_TYPE_MAX = 4
NET_FW_IP_PROTOCOL_TCP = 6
NET_FW_IP_PROTOCOL_UDP = 17
NET_FW_IP_PROTOCOL_ANY = 256  # the SDK's value (UNVERIFIED in seed-system.md)
NET_FW_RULE_DIR_IN = 1
NET_FW_RULE_DIR_OUT = 2
NET_FW_ACTION_BLOCK = 0
NET_FW_ACTION_ALLOW = 1
NET_FW_MODIFY_STATE_OK = 0
NET_FW_MODIFY_STATE_GP_OVERRIDE = 1
NET_FW_MODIFY_STATE_INBOUND_BLOCKED = 2

# Item() of something that does not exist: what Windows returns (0x80070002).
E_NOT_FOUND = HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)

_PROTOCOL_NAMES = {NET_FW_IP_PROTOCOL_TCP: "tcp", NET_FW_IP_PROTOCOL_UDP: "udp"}
_PROTOCOL_NUMBERS = {"tcp": NET_FW_IP_PROTOCOL_TCP, "udp": NET_FW_IP_PROTOCOL_UDP}

# sharewall's built-in services with a Windows Firewall service type; the others are NONE.
_SERVICE_TYPES = {"Remote Desktop": NET_FW_SERVICE_REMOTE_DESKTOP}

# ICMP type -> INetFwIcmpSettings option (seed-system.md §7.5), per IP version.
_ICMP4_OPTIONS = {
    3: "outbound_destination_unreachable",
    4: "outbound_source_quench",
    5: "redirect",
    8: "inbound_echo_request",
    10: "inbound_router_request",
    11: "outbound_time_exceeded",
    12: "outbound_parameter_problem",
    13: "inbound_timestamp_request",
    17: "inbound_mask_request",
}
_ICMP6_OPTIONS = {
    1: "outbound_destination_unreachable",
    2: "outbound_packet_too_big",
    3: "outbound_time_exceeded",
    4: "outbound_parameter_problem",
    128: "inbound_echo_request",
    137: "redirect",
}
# Neighbour discovery (router advertisement, neighbour solicitation/advertisement): IPv6 cannot
# work without it, so sharewall always lets it in.
_ICMP6_ALWAYS = frozenset({134, 135, 136})

Key = tuple[int, int]  # (port, NET_FW_IP_PROTOCOL)
Instances = list[tuple[str, MappingInfo]]  # (connection id, mapping) pairs


def _invalid(message: str) -> HResultError:
    return HResultError(E_INVALIDARG, message)


def _profile_connections(client: Client) -> list[ConnectionInfo]:
    """The connections the profile covers: all but the private side of sharing."""
    return [c for c in client.connections() if c["sharing"] != "private"]


def _connections_to_change(client: Client) -> list[ConnectionInfo]:
    conns = _profile_connections(client)
    if not conns:
        raise HResultError(E_FAIL, "no connection outside the private side of sharing")
    return conns


def _is_open_port(mapping: MappingInfo) -> bool:
    """A globally open port: a user mapping to this machine on the same port."""
    return (
        not mapping["builtin"]
        and mapping["target"] == "gateway"
        and mapping["internal_port"] == mapping["external_port"]
    )


def _check_ip_version(value: object) -> None:
    # "ANY is the only allowable setting for now" (XP SP2 samples); sharewall's holes are dual-stack.
    if value != NET_FW_IP_VERSION_ANY or isinstance(value, bool):
        raise _invalid(f"IpVersion must be NET_FW_IP_VERSION_ANY (2), not {value!r}")


def _check_scope(value: object) -> None:
    if value == NET_FW_SCOPE_ALL and not isinstance(value, bool):
        return
    if value in (NET_FW_SCOPE_LOCAL_SUBNET, NET_FW_SCOPE_CUSTOM):
        raise HResultError(E_NOTIMPL, "sharewall cannot restrict a port by remote address yet")
    raise _invalid(f"Scope must be a NET_FW_SCOPE value, not {value!r}")


def _check_remote_addresses(value: object) -> None:
    if not isinstance(value, str):
        raise _invalid(f"RemoteAddresses must be a string, not {value!r}")
    if value.strip() != "*":
        raise HResultError(E_NOTIMPL, "sharewall cannot restrict a port by remote address yet")


def _check_fixed(name: str, current: bool, value: object) -> None:
    """Accept setting a switch sharewall does not have to the value it always has."""
    if bool(value) != current:
        raise HResultError(E_NOTIMPL, f"sharewall has no {name} switch (it is always {current})")


# --- Open ports --------------------------------------------------------------------------------

# Called before a property of a port taken from a collection changes: (port, property, new value).
PortHook = Callable[["INetFwOpenPort", str, object], None]


class _Unrestricted:
    """IpVersion, Scope and RemoteAddresses of sharewall's firewall objects: always any / all / "*".

    Setting them to those values is accepted; anything narrower raises E_NOTIMPL rather than opening
    a port wider than asked (see docs/hnetcfg-compatibility.md).
    """

    @property
    def IpVersion(self) -> int:
        return NET_FW_IP_VERSION_ANY

    @IpVersion.setter
    def IpVersion(self, value: int) -> None:
        _check_ip_version(value)

    @property
    def Scope(self) -> int:
        return NET_FW_SCOPE_ALL

    @Scope.setter
    def Scope(self, value: int) -> None:
        _check_scope(value)

    @property
    def RemoteAddresses(self) -> str:
        return "*"

    @RemoteAddresses.setter
    def RemoteAddresses(self, value: str) -> None:
        _check_remote_addresses(value)


class INetFwOpenPort(_Unrestricted):
    """A port: made by ``CreateObject("HNetCfg.FWOpenPort")``, or taken from a collection.

    A port taken from a collection writes every change through to sharewall at once.
    """

    _iid_: ClassVar[str] = "{E0483BA0-47FF-4D9C-A6D6-7741D0B195F7}"
    _clsid_: ClassVar[str] = CLSID_NetFwOpenPort
    _dispids_: ClassVar[dict[str, int]] = {
        "Name": 1,
        "IpVersion": 2,
        "Protocol": 3,
        "Port": 4,
        "Scope": 5,
        "RemoteAddresses": 6,
        "Enabled": 7,
        "BuiltIn": 8,
    }

    def __init__(
        self,
        *,
        Name: str = "",
        Protocol: int = NET_FW_IP_PROTOCOL_TCP,
        Port: int = 0,
        Enabled: bool = True,
        BuiltIn: bool = False,
        hook: PortHook | None = None,
    ) -> None:
        self._name = Name
        self._protocol = Protocol
        self._port = Port
        self._enabled = Enabled
        self._builtin = BuiltIn
        self._hook = hook

    def __repr__(self) -> str:
        return f"<INetFwOpenPort {self._name!r} {self._port}/{self._protocol}>"

    def _changing(self, prop: str, value: object) -> None:
        if self._hook is not None:
            self._hook(self, prop, value)

    @property
    def Name(self) -> str:
        return self._name

    @Name.setter
    def Name(self, value: str) -> None:
        if not isinstance(value, str):
            raise _invalid(f"Name must be a string, not {value!r}")
        self._changing("Name", value)
        self._name = value

    @property
    def Protocol(self) -> int:
        return self._protocol

    @Protocol.setter
    def Protocol(self, value: int) -> None:
        if value not in _PROTOCOL_NAMES or isinstance(value, bool):
            raise _invalid(f"Protocol must be NET_FW_IP_PROTOCOL_TCP or _UDP, not {value!r}")
        self._changing("Protocol", value)
        self._protocol = value

    @property
    def Port(self) -> int:
        return self._port

    @Port.setter
    def Port(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise _invalid(f"Port must be from 1 to 65535, not {value!r}")
        self._changing("Port", value)
        self._port = value

    @property
    def Enabled(self) -> bool:
        return self._enabled

    @Enabled.setter
    def Enabled(self, value: bool) -> None:
        self._changing("Enabled", bool(value))
        self._enabled = bool(value)

    @property
    def BuiltIn(self) -> bool:
        """True for a service's port: it cannot be removed; only Enabled may change."""
        return self._builtin


class INetFwOpenPorts:
    """The profile's globally open ports (read from sharewall on every call)."""

    _iid_: ClassVar[str] = "{C0E9D7FA-E07E-430A-B19A-090CE82D92E2}"
    _dispids_: ClassVar[dict[str, int]] = {
        "Count": 1,
        "Add": 2,
        "Remove": 3,
        "Item": 4,
        "_NewEnum": -4,
    }

    def __init__(self, client: Client) -> None:
        self._client = client

    def _instances(self) -> dict[Key, Instances]:
        found: dict[Key, Instances] = {}
        for conn in _profile_connections(self._client):
            for info in self._client.mappings(_ref(conn["id"])):
                if _is_open_port(info):
                    key = (info["external_port"], _PROTOCOL_NUMBERS[info["protocol"]])
                    found.setdefault(key, []).append((conn["id"], info))
        return found

    def _port(self, key: Key, instances: Instances) -> INetFwOpenPort:
        return INetFwOpenPort(
            Name=instances[0][1]["name"],
            Protocol=key[1],
            Port=key[0],
            Enabled=all(info["enabled"] for _, info in instances),
            hook=self._changing,
        )

    def _ports(self) -> list[INetFwOpenPort]:
        return [self._port(key, found) for key, found in self._instances().items()]

    def _changing(self, port: INetFwOpenPort, prop: str, value: object) -> None:
        key = (port.Port, port.Protocol)
        if prop == "Enabled":
            for conn_id, info in self._instances().get(key, []):
                self._client.set_mapping_enabled(_ref(conn_id), info["name"], bool(value))
            return
        # Name, Port or Protocol: open the port again under its new settings.
        updated = INetFwOpenPort(
            Name=port.Name, Protocol=port.Protocol, Port=port.Port, Enabled=port.Enabled
        )
        setattr(updated, prop, value)
        self.Remove(*key)
        self.Add(updated)

    @property
    def Count(self) -> int:
        return len(self._instances())

    @property
    def _NewEnum(self) -> IEnumVARIANT[INetFwOpenPort]:
        return IEnumVARIANT(self._ports())

    def __iter__(self) -> Iterator[INetFwOpenPort]:
        return iter(self._ports())

    def __len__(self) -> int:
        return self.Count

    def Item(self, portNumber: int, ipProtocol: int) -> INetFwOpenPort:
        """The open port *portNumber*/*ipProtocol*.

        Raises:
            HResultError: 0x80070002 (file not found) when that port is not open.
        """
        found = self._instances().get((portNumber, ipProtocol))
        if not found:
            raise HResultError(E_NOT_FOUND, f"port {portNumber}/{ipProtocol} is not open")
        return self._port((portNumber, ipProtocol), found)

    def Add(self, port: INetFwOpenPort) -> None:
        """Open *port* on every connection of the profile; an open port's settings are replaced.

        Raises:
            HResultError: E_INVALIDARG for a port without name, number or TCP/UDP protocol, or
                one whose number is mapped to a private host; E_FAIL if no connection is covered.
        """
        if not isinstance(port, INetFwOpenPort):
            raise _invalid(f"expected an INetFwOpenPort, not {port!r}")
        protocol = _PROTOCOL_NAMES.get(port.Protocol)
        if protocol is None:
            raise _invalid(f"Protocol must be NET_FW_IP_PROTOCOL_TCP or _UDP, not {port.Protocol}")
        if not 1 <= port.Port <= 65535:
            raise _invalid(f"Port must be from 1 to 65535, not {port.Port}")
        if not port.Name:
            raise _invalid("a port needs a Name")
        for conn in _connections_to_change(self._client):
            for info in self._client.mappings(_ref(conn["id"])):
                same = info["external_port"] == port.Port and info["protocol"] == protocol
                if same and _is_open_port(info):
                    self._client.remove_mapping(_ref(conn["id"]), info["name"])
            self._client.add_mapping(
                _ref(conn["id"]),
                name=port.Name,
                protocol=protocol,
                external_port=port.Port,
                internal_port=port.Port,
                target="gateway",
                enabled=port.Enabled,
            )

    def Remove(self, portNumber: int, ipProtocol: int) -> None:
        """Close the port; no effect if it is not open."""
        for conn_id, info in self._instances().get((portNumber, ipProtocol), []):
            self._client.remove_mapping(_ref(conn_id), info["name"])


class INetFwServiceOpenPorts(_Collection[INetFwOpenPort]):
    """A service's ports (INetFwOpenPorts): they belong to the service and cannot be added to or
    removed."""

    _iid_ = INetFwOpenPorts._iid_

    def Item(self, portNumber: int, ipProtocol: int) -> INetFwOpenPort:
        for port in self:
            if (port.Port, port.Protocol) == (portNumber, ipProtocol):
                return port
        raise HResultError(E_NOT_FOUND, f"the service has no port {portNumber}/{ipProtocol}")

    def Add(self, port: INetFwOpenPort) -> None:
        raise HResultError(E_ACCESSDENIED, "a service's ports are built in")

    def Remove(self, portNumber: int, ipProtocol: int) -> None:
        raise HResultError(E_ACCESSDENIED, "a service's ports are built in")


# --- Services ----------------------------------------------------------------------------------


class INetFwService(_Unrestricted):
    """One of sharewall's built-in services (FTP Server, ..., Remote Desktop) for the profile."""

    _iid_: ClassVar[str] = "{79FD57C8-908E-4A36-9888-D5B3F0A444CF}"
    _dispids_: ClassVar[dict[str, int]] = {
        "Name": 1,
        "Type": 2,
        "Customized": 3,
        "IpVersion": 4,
        "Scope": 5,
        "RemoteAddresses": 6,
        "Enabled": 7,
        "GloballyOpenPorts": 8,
    }

    def __init__(self, client: Client, name: str, protocol: int, port: int) -> None:
        self._client = client
        self._name = name
        self._protocol = protocol
        self._port = port

    def __repr__(self) -> str:
        return f"<INetFwService {self._name!r}>"

    @property
    def Name(self) -> str:
        return self._name

    @property
    def Type(self) -> int:
        """NET_FW_SERVICE_REMOTE_DESKTOP for Remote Desktop, NET_FW_SERVICE_NONE for the rest."""
        return _SERVICE_TYPES.get(self._name, NET_FW_SERVICE_NONE)

    @property
    def Customized(self) -> bool:
        return False

    @property
    def Enabled(self) -> bool:
        """True when the service is enabled on every connection of the profile."""
        conns = _profile_connections(self._client)
        return bool(conns) and all(
            any(
                m["name"] == self._name and m["enabled"]
                for m in self._client.mappings(_ref(c["id"]))
            )
            for c in conns
        )

    @Enabled.setter
    def Enabled(self, value: bool) -> None:
        for conn in _connections_to_change(self._client):
            self._client.set_mapping_enabled(_ref(conn["id"]), self._name, bool(value))

    def _port_changing(self, port: INetFwOpenPort, prop: str, value: object) -> None:
        if prop != "Enabled":
            raise HResultError(E_ACCESSDENIED, f"{prop} of a built-in port cannot change")
        self.Enabled = bool(value)

    @property
    def GloballyOpenPorts(self) -> INetFwServiceOpenPorts:
        port = INetFwOpenPort(
            Name=self._name,
            Protocol=self._protocol,
            Port=self._port,
            Enabled=self.Enabled,
            BuiltIn=True,
            hook=self._port_changing,
        )
        return INetFwServiceOpenPorts([port])


class INetFwServices(_Collection[INetFwService]):
    """The profile's services: sharewall's nine built-in services."""

    _iid_ = "{79649BB4-903E-421B-94C9-79848E79F6EE}"
    _dispids_: ClassVar[dict[str, int]] = {"Count": 1, "Item": 2, "_NewEnum": -4}

    def Item(self, svcType: int | str) -> INetFwService:
        """The service of NET_FW_SERVICE_TYPE *svcType*, or (sharewall's extra) of that name.

        Raises:
            HResultError: 0x80070002 (file not found) for a service sharewall does not have,
                e.g. NET_FW_SERVICE_FILE_AND_PRINT.
        """
        for service in self:
            if svcType in (service.Name, service.Type) and svcType != NET_FW_SERVICE_NONE:
                return service
        raise HResultError(E_NOT_FOUND, f"sharewall has no service {svcType!r}")


def _services(client: Client) -> INetFwServices:
    conns = _profile_connections(client) or client.connections()
    if not conns:
        return INetFwServices([])
    return INetFwServices(
        INetFwService(client, m["name"], _PROTOCOL_NUMBERS[m["protocol"]], m["external_port"])
        for m in client.mappings(_ref(conns[0]["id"]))
        if m["builtin"]
    )


# --- ICMP settings -----------------------------------------------------------------------------


class _IcmpSwitch:
    """One INetFwIcmpSettings property: TRUE if on for every connection of the profile."""

    def __init__(self, option: str) -> None:
        self.option = option

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _IcmpSwitch: ...
    @overload
    def __get__(self, obj: INetFwIcmpSettings, objtype: type | None = None) -> bool: ...
    def __get__(
        self, obj: INetFwIcmpSettings | None, objtype: type | None = None
    ) -> bool | _IcmpSwitch:
        return self if obj is None else obj._get(self.option)

    def __set__(self, obj: INetFwIcmpSettings, value: bool) -> None:
        obj._set(self.option, bool(value))


class INetFwIcmpSettings:
    """The ten ICMP switches (seed-system.md §7.5); changes take effect at once."""

    _iid_: ClassVar[str] = "{A6207B2E-7CDD-426A-951E-5E1CBC5AFEAD}"
    _dispids_: ClassVar[dict[str, int]] = {
        "AllowOutboundDestinationUnreachable": 1,
        "AllowRedirect": 2,
        "AllowInboundEchoRequest": 3,
        "AllowOutboundTimeExceeded": 4,
        "AllowOutboundParameterProblem": 5,
        "AllowOutboundSourceQuench": 6,
        "AllowInboundRouterRequest": 7,
        "AllowInboundTimestampRequest": 8,
        "AllowInboundMaskRequest": 9,
        "AllowOutboundPacketTooBig": 10,
    }

    AllowOutboundDestinationUnreachable = _IcmpSwitch("outbound_destination_unreachable")
    AllowRedirect = _IcmpSwitch("redirect")
    AllowInboundEchoRequest = _IcmpSwitch("inbound_echo_request")
    AllowOutboundTimeExceeded = _IcmpSwitch("outbound_time_exceeded")
    AllowOutboundParameterProblem = _IcmpSwitch("outbound_parameter_problem")
    AllowOutboundSourceQuench = _IcmpSwitch("outbound_source_quench")
    AllowInboundRouterRequest = _IcmpSwitch("inbound_router_request")
    AllowInboundTimestampRequest = _IcmpSwitch("inbound_timestamp_request")
    AllowInboundMaskRequest = _IcmpSwitch("inbound_mask_request")
    AllowOutboundPacketTooBig = _IcmpSwitch("outbound_packet_too_big")

    def __init__(self, client: Client) -> None:
        self._client = client

    def _get(self, option: str) -> bool:
        conns = _profile_connections(self._client)
        return bool(conns) and all(
            self._client.connection(_ref(c["id"]))["icmp"][option] for c in conns
        )

    def _set(self, option: str, value: bool) -> None:
        for conn in _connections_to_change(self._client):
            if value:
                self._client.change_icmp(_ref(conn["id"]), allow=[option])
            else:
                self._client.change_icmp(_ref(conn["id"]), deny=[option])


# --- What sharewall does not have: remote administration, authorized applications -------------


class INetFwRemoteAdminSettings(_Unrestricted):
    """Remote administration (RPC/DCOM exceptions): sharewall has none; always disabled."""

    _iid_: ClassVar[str] = "{D4BECDDF-6F73-4A83-B832-9C66874CD20E}"

    @property
    def Enabled(self) -> bool:
        return False

    @Enabled.setter
    def Enabled(self, value: bool) -> None:
        _check_fixed("remote administration", False, value)


class INetFwAuthorizedApplications(_Collection[object]):
    """Authorized applications: sharewall opens ports, not programs, so the list stays empty."""

    _iid_ = "{644EFD52-CCF9-486C-97A2-39F352570B30}"

    def Add(self, app: object) -> None:
        raise HResultError(E_NOTIMPL, "sharewall cannot authorize programs; open their ports")

    def Remove(self, imageFileName: str) -> None:
        """No effect: no application is ever authorized."""

    def Item(self, imageFileName: str) -> object:
        raise HResultError(E_NOT_FOUND, f"{imageFileName!r} is not an authorized application")


# --- Profile, policy, manager ------------------------------------------------------------------


class INetFwProfile:
    """The firewall profile: sharewall has one, whichever type is asked for."""

    _iid_: ClassVar[str] = "{174A0DDA-E9F9-449D-993B-21AB667CA456}"
    _dispids_: ClassVar[dict[str, int]] = {
        "Type": 1,
        "FirewallEnabled": 2,
        "ExceptionsNotAllowed": 3,
        "NotificationsDisabled": 4,
        "UnicastResponsesToMulticastBroadcastDisabled": 5,
        "RemoteAdminSettings": 6,
        "IcmpSettings": 7,
        "GloballyOpenPorts": 8,
        "Services": 9,
        "AuthorizedApplications": 10,
    }

    def __init__(self, client: Client, profile_type: int) -> None:
        self._client = client
        self._type = profile_type

    @property
    def Type(self) -> int:
        return self._type

    @property
    def FirewallEnabled(self) -> bool:
        """True when every connection of the profile has its firewall on."""
        conns = _profile_connections(self._client)
        return bool(conns) and all(c["firewall"] for c in conns)

    @FirewallEnabled.setter
    def FirewallEnabled(self, value: bool) -> None:
        for conn in _connections_to_change(self._client):
            self._client.set_firewall(_ref(conn["id"]), bool(value))

    @property
    def ExceptionsNotAllowed(self) -> bool:
        return False

    @ExceptionsNotAllowed.setter
    def ExceptionsNotAllowed(self, value: bool) -> None:
        _check_fixed("'exceptions not allowed'", False, value)

    @property
    def NotificationsDisabled(self) -> bool:
        """Always TRUE: sharewall never asks a user about a blocked program."""
        return True

    @NotificationsDisabled.setter
    def NotificationsDisabled(self, value: bool) -> None:
        _check_fixed("notification", True, value)

    @property
    def UnicastResponsesToMulticastBroadcastDisabled(self) -> bool:
        """Always TRUE: a unicast answer to a multicast/broadcast query is unsolicited for
        sharewall's stateful filter and is dropped."""
        return True

    @UnicastResponsesToMulticastBroadcastDisabled.setter
    def UnicastResponsesToMulticastBroadcastDisabled(self, value: bool) -> None:
        _check_fixed("unicast-responses-to-multicast", True, value)

    @property
    def RemoteAdminSettings(self) -> INetFwRemoteAdminSettings:
        return INetFwRemoteAdminSettings()

    @property
    def IcmpSettings(self) -> INetFwIcmpSettings:
        return INetFwIcmpSettings(self._client)

    @property
    def GloballyOpenPorts(self) -> INetFwOpenPorts:
        return INetFwOpenPorts(self._client)

    @property
    def Services(self) -> INetFwServices:
        return _services(self._client)

    @property
    def AuthorizedApplications(self) -> INetFwAuthorizedApplications:
        return INetFwAuthorizedApplications([])


class INetFwPolicy:
    """The local firewall policy."""

    _iid_: ClassVar[str] = "{D46D2478-9AC9-4008-9DC7-5563CE5536CC}"
    _dispids_: ClassVar[dict[str, int]] = {"CurrentProfile": 1, "GetProfileByType": 2}

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def CurrentProfile(self) -> INetFwProfile:
        return INetFwProfile(self._client, NET_FW_PROFILE_STANDARD)

    def GetProfileByType(self, profileType: int) -> INetFwProfile:
        """The DOMAIN or STANDARD profile: both are sharewall's one set of settings."""
        if profileType == NET_FW_PROFILE_CURRENT:
            return self.CurrentProfile
        if profileType not in (NET_FW_PROFILE_DOMAIN, NET_FW_PROFILE_STANDARD):
            raise _invalid(f"profileType must be a NET_FW_PROFILE_TYPE, not {profileType!r}")
        return INetFwProfile(self._client, profileType)


class INetFwMgr:
    """The firewall manager (``HNetCfg.FwMgr``)."""

    _iid_: ClassVar[str] = "{F7898AF5-CAC4-4632-A2EC-DA06E5111AF2}"
    _clsid_: ClassVar[str] = CLSID_NetFwMgr
    _dispids_: ClassVar[dict[str, int]] = {
        "LocalPolicy": 1,
        "CurrentProfileType": 2,
        "RestoreDefaults": 3,
        "IsPortAllowed": 4,
        "IsIcmpTypeAllowed": 5,
    }

    def __init__(self, client: Client) -> None:
        """Wrap *client*; nothing is contacted until the first call."""
        self._session = _Session(client)
        self._client = self._session.client

    def __repr__(self) -> str:
        return f"<INetFwMgr {self._session.socket_path}>"

    @property
    def LocalPolicy(self) -> INetFwPolicy:
        return INetFwPolicy(self._client)

    @property
    def CurrentProfileType(self) -> int:
        return NET_FW_PROFILE_STANDARD

    def RestoreDefaults(self) -> None:
        """Back to the installed state: no sharing, no added ports, services off, ICMP defaults,
        and (as Windows Firewall installs) the firewall on for every connection."""
        from sharewall.model.firewall import ICMP_OPTIONS, IcmpSettings

        defaults = IcmpSettings()
        allow = [o for o in ICMP_OPTIONS if getattr(defaults, o)]
        deny = [o for o in ICMP_OPTIONS if not getattr(defaults, o)]
        self._client.unshare()
        self._session.pending.clear()
        for conn in self._client.connections():
            for info in self._client.mappings(_ref(conn["id"])):
                if not info["builtin"]:
                    self._client.remove_mapping(_ref(conn["id"]), info["name"])
                elif info["enabled"]:
                    self._client.set_mapping_enabled(_ref(conn["id"]), info["name"], False)
            self._client.change_icmp(_ref(conn["id"]), allow=allow, deny=deny)
            self._client.set_firewall(_ref(conn["id"]), True)

    def _considered(self, localAddress: str | None) -> list[ConnectionInfo]:
        if not localAddress:
            return _profile_connections(self._client)
        try:
            wanted = ipaddress.ip_address(localAddress)
        except ValueError:
            raise _invalid(f"localAddress {localAddress!r} is not an IP address") from None
        conns = [
            c
            for c in self._client.connections()
            if any(ipaddress.ip_interface(a).ip == wanted for a in c["ipv4"] + c["ipv6"])
        ]
        if not conns:
            raise _invalid(f"{localAddress} is not an address of this machine")
        return conns

    @staticmethod
    def _verdict(per_connection: list[bool]) -> tuple[bool, bool]:
        allowed = any(per_connection)
        return allowed, allowed and not all(per_connection)

    def IsPortAllowed(
        self,
        imageFileName: str | None,
        IpVersion: int,
        portNumber: int,
        localAddress: str | None,
        IpProtocol: int,
    ) -> tuple[bool, bool]:
        """Whether inbound traffic to local port *portNumber* gets through.

        Args:
            imageFileName: a program (``None`` = any). sharewall authorizes no programs, so it
                does not change the answer.
            IpVersion: NET_FW_IP_VERSION_V4, _V6, or _ANY (only without *localAddress*).
            portNumber: the local port.
            localAddress: an address of one connection, or ``None`` for every connection of the
                profile.
            IpProtocol: NET_FW_IP_PROTOCOL_TCP or _UDP.

        Returns:
            ``(allowed, restricted)``, VBScript's two out parameters: allowed on at least one
            connection; restricted if allowed on some and blocked on others.

        Raises:
            HResultError: E_INVALIDARG for a bad IP version or an address not on this machine.
        """
        if IpVersion not in (NET_FW_IP_VERSION_V4, NET_FW_IP_VERSION_V6, NET_FW_IP_VERSION_ANY):
            raise _invalid(f"IpVersion must be a NET_FW_IP_VERSION value, not {IpVersion!r}")
        if localAddress and IpVersion == NET_FW_IP_VERSION_ANY:
            raise _invalid("with a localAddress, IpVersion must be V4 or V6")
        protocol = _PROTOCOL_NAMES.get(IpProtocol)
        verdicts = []
        for conn in self._considered(localAddress):
            open_here = any(
                m["enabled"]
                and m["target"] == "gateway"
                and m["protocol"] == protocol
                and m["external_port"] == m["internal_port"] == portNumber
                for m in self._client.mappings(_ref(conn["id"]))
            )
            verdicts.append(not conn["firewall"] or open_here)
        return self._verdict(verdicts)

    def IsIcmpTypeAllowed(
        self, IpVersion: int, localAddress: str | None, Type: int
    ) -> tuple[bool, bool]:
        """Whether ICMP messages of *Type* pass the firewall (see IsPortAllowed for the result).

        Raises:
            HResultError: E_INVALIDARG unless *IpVersion* is V4 or V6, or for an address not on
                this machine.
        """
        if IpVersion == NET_FW_IP_VERSION_V4 and not isinstance(IpVersion, bool):
            option = _ICMP4_OPTIONS.get(Type)
            always = False
        elif IpVersion == NET_FW_IP_VERSION_V6:
            option = _ICMP6_OPTIONS.get(Type)
            always = Type in _ICMP6_ALWAYS
        else:
            raise _invalid(f"IpVersion must be NET_FW_IP_VERSION_V4 or _V6, not {IpVersion!r}")
        verdicts = []
        for conn in self._considered(localAddress):
            if not conn["firewall"] or always:
                verdicts.append(True)
            elif option is None:
                verdicts.append(False)
            else:
                verdicts.append(self._client.connection(_ref(conn["id"]))["icmp"][option])
        return self._verdict(verdicts)
