"""HNetCfg-compatible layer: Microsoft's ICS/ICF scripting API on top of sharewalld's local API.

``CreateObject("HNetCfg.HNetShare")`` (or ``"HNetCfg.HNetShare.1"``) returns an
:class:`INetSharingManager`, and the objects reached from it carry Microsoft's names, numeric
constants and semantics (seed-system.md §2-3), so a program written for the Windows ICS/ICF API
ports to Python almost line by line. ``CreateObject("HNetCfg.FwMgr")`` returns the Windows
Firewall subset of :mod:`sharewall.api.fwmgr`.

Promise: a naming and semantics adapter and nothing more (style.md §6.6). Every change and every
read goes through :class:`sharewall.api.client.Client`; stdlib only besides that. The one piece
of state kept here is a *pending* sharing role: Windows enables sharing one connection at a time
(``EnableSharing(PUBLIC)`` on one, ``EnableSharing(PRIVATE)`` on another), sharewall shares a
public and its private connections in one step, so a role waits here until its partner exists.
Every error is an :class:`HResultError` carrying the HRESULT a COM caller would see.

Scripting conventions: a COM ``propget`` without arguments is a Python property
(``objShare.EnumEveryConnection``); one with arguments, and every method, is a Python method
(``objShare.NetConnectionProps(conn)``). The C++ spellings (``get_EnumEveryConnection()``,
``get__NewEnum()``) exist too, returning what C++ gets through its out parameter. Collections
iterate like VBScript ``for each``, have ``Count`` and ``_NewEnum``, and :class:`Enumerator`
stands in for JScript's. Deviations from Windows: ``docs/hnetcfg-compatibility.md``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast, overload
from urllib.parse import quote

from sharewall.api.client import DEFAULT_TIMEOUT_S, Client, ConnectionInfo, MappingInfo
from sharewall.errors import (
    ConflictError,
    DaemonUnavailableError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    SharewallError,
    ValidationError,
)

if TYPE_CHECKING:
    from sharewall.api.fwmgr import INetFwMgr, INetFwOpenPort
    from sharewall.api.natupnp import IUPnPNAT

__all__ = [
    "CO_E_CLASSSTRING",
    "E_ABORT",
    "E_ACCESSDENIED",
    "E_FAIL",
    "E_INVALIDARG",
    "E_NOINTERFACE",
    "E_NOTIMPL",
    "E_OUTOFMEMORY",
    "E_POINTER",
    "E_UNEXPECTED",
    "ICSSC_DEFAULT",
    "ICSSC_ENABLED",
    "ICSSHARINGTYPE_PRIVATE",
    "ICSSHARINGTYPE_PUBLIC",
    "ICSTT_IPADDRESS",
    "ICSTT_NAME",
    "NAT_PROTOCOL_TCP",
    "NAT_PROTOCOL_UDP",
    "NETCON_PROPERTIES",
    "REGDB_E_CLASSNOTREG",
    "S_FALSE",
    "S_OK",
    "CreateObject",
    "Dispatch",
    "Enumerator",
    "HResultError",
    "IEnumVARIANT",
    "INetConnection",
    "INetConnectionProps",
    "INetSharingConfiguration",
    "INetSharingEveryConnectionCollection",
    "INetSharingManager",
    "INetSharingPortMapping",
    "INetSharingPortMappingCollection",
    "INetSharingPortMappingProps",
    "INetSharingPrivateConnectionCollection",
    "INetSharingPublicConnectionCollection",
    "com_error",
]

# --- HRESULTs (winerror.h; seed-system.md §0) -------------------------------------------------

S_OK = 0x00000000
S_FALSE = 0x00000001
E_NOTIMPL = 0x80004001
E_NOINTERFACE = 0x80004002
E_POINTER = 0x80004003
E_ABORT = 0x80004004
E_FAIL = 0x80004005
E_UNEXPECTED = 0x8000FFFF
E_ACCESSDENIED = 0x80070005
E_OUTOFMEMORY = 0x8007000E
E_INVALIDARG = 0x80070057
REGDB_E_CLASSNOTREG = 0x80040154  # CoCreateInstance: the class is not registered
CO_E_CLASSSTRING = 0x800401F3  # CLSIDFromProgID: "Invalid class string"
ERROR_FILE_NOT_FOUND = 2
RPC_S_SERVER_UNAVAILABLE = 1722


def HRESULT_FROM_WIN32(error: int) -> int:
    """The HRESULT of a Win32 error code (winerror.h's macro), e.g. 2 -> 0x80070002."""
    return error if error <= 0 else (error & 0xFFFF) | 0x80070000


# Windows answers an out-of-process COM call whose server (the SharedAccess service) is down
# with "The RPC server is unavailable": the closest match for "sharewalld does not answer".
E_SERVER_UNAVAILABLE = HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE)

_HRESULT_TEXT = {
    E_ABORT: "The operation was aborted.",
    E_FAIL: "An unspecified error occurred.",
    E_INVALIDARG: "One of the parameters is invalid.",
    E_NOINTERFACE: "A specified interface is not supported.",
    E_NOTIMPL: "A specified method is not implemented.",
    E_OUTOFMEMORY: "The method was unable to allocate required memory.",
    E_POINTER: "A pointer passed as a parameter is not valid.",
    E_UNEXPECTED: "The method failed for unknown reasons.",
    E_ACCESSDENIED: "Access is denied.",
    REGDB_E_CLASSNOTREG: "Class not registered.",
    CO_E_CLASSSTRING: "Invalid class string.",
    E_SERVER_UNAVAILABLE: "The RPC server is unavailable.",
}

# --- Enumerations (netcon.h values; seed-system.md §3) ----------------------------------------

# SHARINGCONNECTIONTYPE
ICSSHARINGTYPE_PUBLIC = 0
ICSSHARINGTYPE_PRIVATE = 1
# SHARINGCONNECTION_ENUM_FLAGS
ICSSC_DEFAULT = 0
ICSSC_ENABLED = 1
# ICS_TARGETTYPE
ICSTT_NAME = 0
ICSTT_IPADDRESS = 1
# NAT_PROTOCOL_* (winsock.h values, as the samples define them)
NAT_PROTOCOL_TCP = 6
NAT_PROTOCOL_UDP = 17
# NETCON_MEDIATYPE
NCM_NONE = 0
NCM_DIRECT = 1
NCM_ISDN = 2
NCM_LAN = 3
NCM_PHONE = 4
NCM_TUNNEL = 5
NCM_PPPOE = 6
NCM_BRIDGE = 7
NCM_SHAREDACCESSHOST_LAN = 8
NCM_SHAREDACCESSHOST_RAS = 9
# NETCON_STATUS
NCS_DISCONNECTED = 0
NCS_CONNECTING = 1
NCS_CONNECTED = 2
NCS_DISCONNECTING = 3
NCS_HARDWARE_NOT_PRESENT = 4
NCS_HARDWARE_DISABLED = 5
NCS_HARDWARE_MALFUNCTION = 6
NCS_MEDIA_DISCONNECTED = 7
NCS_AUTHENTICATING = 8
NCS_AUTHENTICATION_SUCCEEDED = 9
NCS_AUTHENTICATION_FAILED = 10
NCS_INVALID_ADDRESS = 11
NCS_CREDENTIALS_REQUIRED = 12
NCS_ACTION_REQUIRED = 13
NCS_ACTION_REQUIRED_RETRY = 14
NCS_CONNECT_FAILED = 15
# NETCON_TYPE
NCT_DIRECT_CONNECT = 0
NCT_INBOUND = 1
NCT_INTERNET = 2
NCT_LAN = 3
NCT_PHONE = 4
NCT_TUNNEL = 5
NCT_BRIDGE = 6
# NETCON_CHARACTERISTIC_FLAGS
NCCF_NONE = 0x0000
NCCF_ALL_USERS = 0x0001
NCCF_ALLOW_DUPLICATION = 0x0002
NCCF_ALLOW_REMOVAL = 0x0004
NCCF_ALLOW_RENAME = 0x0008
NCCF_INCOMING_ONLY = 0x0020
NCCF_OUTGOING_ONLY = 0x0040
NCCF_BRANDED = 0x0080
NCCF_SHARED = 0x0100
NCCF_BRIDGED = 0x0200
NCCF_FIREWALLED = 0x0400
NCCF_DEFAULT = 0x0800
NCCF_HOMENET_CAPABLE = 0x1000
NCCF_SHARED_PRIVATE = 0x2000
NCCF_QUARANTINED = 0x4000
NCCF_RESERVED = 0x8000
NCCF_HOSTED_NETWORK = 0x10000
NCCF_VIRTUAL_STATION = 0x20000
NCCF_WIFI_DIRECT = 0x40000
NCCF_BLUETOOTH_MASK = 0x000F0000
NCCF_LAN_MASK = 0x00F00000

# --- COM identity (seed-system.md §1 "COM identity") ------------------------------------------

CLSID_NetSharingManager = "{5C63C1AD-3956-4FF8-8486-40034758315B}"
CLSID_NetFwMgr = "{304CE942-6E39-40D8-943A-B913C40C9CD4}"
CLSID_NetFwOpenPort = "{0CA545C6-37AD-4A6C-BF92-9F7610067EF5}"
CLSID_NetFwAuthorizedApplication = "{EC9846B3-2762-4A6B-A214-6ACB603462D2}"
DISPID_NEWENUM = -4

# sharewall's name for "this machine" as a mapping target, and how the layer shows it: TargetName
# reads "gateway" and TargetIPAddress the loopback address an XP ICF-only host would have used.
_GATEWAY = "gateway"
_GATEWAY_IP = "127.0.0.1"


class HResultError(Exception):
    """A failed call, as COM reports it: an HRESULT plus a message.

    Attributes:
        hresult: the HRESULT as an unsigned 32-bit number (``E_INVALIDARG`` = 0x80070057).
        strerror: the message (pywin32's ``com_error`` has the same attribute).
        code: sharewall's stable error code when the daemon refused (``"duplicate_mapping"``),
            else ``None``.
    """

    def __init__(self, hresult: int, message: str | None = None, *, code: str | None = None):
        self.hresult = hresult & 0xFFFFFFFF
        self.strerror = message or _HRESULT_TEXT.get(self.hresult, "Unknown error.")
        self.code = code
        super().__init__(f"{self.strerror} (HRESULT 0x{self.hresult:08X})")


# pywin32 spells it com_error; ports that catch that name keep working.
com_error = HResultError


def hresult_for(error: SharewallError) -> int:
    """The HRESULT a sharewall error becomes (the table in docs/hnetcfg-compatibility.md).

    Args:
        error: a typed error from the client.

    Returns:
        An unsigned HRESULT.
    """
    if isinstance(error, ValidationError | NotFoundError):
        return E_INVALIDARG
    if isinstance(error, PermissionDeniedError):
        return E_ACCESSDENIED
    if isinstance(error, ConflictError):
        if error.code is ErrorCode.BUILTIN_MAPPING:
            return E_ACCESSDENIED  # like INetFwOpenPort.BuiltIn: "cannot be removed"
        if error.code is ErrorCode.DUPLICATE_MAPPING:
            return E_INVALIDARG
        return E_FAIL
    if isinstance(error, DaemonUnavailableError):
        return E_SERVER_UNAVAILABLE
    if error.code is ErrorCode.KERNEL_ERROR:
        return E_FAIL
    return E_UNEXPECTED


class _HResultClient:
    """Forwards every call to a :class:`Client`, re-raising its typed errors as HResultError.

    The connection is closed after each call, like an out-of-process COM call: objects of this
    layer live as long as a script keeps them, and must not hold a socket open meanwhile.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except SharewallError as err:
                raise HResultError(hresult_for(err), err.message, code=str(err.code)) from err
            finally:
                self._client.close()

        return call


def _invalid(message: str) -> HResultError:
    return HResultError(E_INVALIDARG, message)


def _check_flags(flags: object) -> None:
    # Microsoft: "This parameter must be ICSSC_DEFAULT." ICSSC_ENABLED's meaning is undocumented.
    if flags != ICSSC_DEFAULT or isinstance(flags, bool):
        raise _invalid(f"Flags must be ICSSC_DEFAULT (0), not {flags!r}")


def _ref(connection_id: str) -> str:
    """A connection id as the client must send it: without braces, because sharewalld's router
    does not match ``{`` or ``}`` in a path segment (the daemon accepts ids either way)."""
    return connection_id.strip("{}")


def _connection_path(connection_id: str) -> str:
    return "/v1/connections/" + quote(_ref(connection_id), safe="")


# --- Pending sharing roles ---------------------------------------------------------------------


@dataclass
class _PendingSharing:
    """Roles asked for with EnableSharing that sharewall cannot apply alone (no partner yet)."""

    public: str | None = None
    private: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.public = None
        self.private = []


# Per daemon socket, for the whole process: Windows' sharing state is machine-wide, so every
# manager object of this process sees the same pending roles.
_PENDING: dict[str, _PendingSharing] = {}


class _Session:
    """What every object of one manager shares: the client and the pending roles."""

    def __init__(self, client: Client) -> None:
        self.socket_path = client.socket_path
        self.client = cast(Client, _HResultClient(client))

    @property
    def pending(self) -> _PendingSharing:
        return _PENDING.setdefault(self.socket_path, _PendingSharing())

    def roles(self, connections: Sequence[ConnectionInfo]) -> dict[str, str]:
        """Connection id -> "public"/"private": the daemon's sharing, else the pending roles."""
        shared: dict[str, str] = {
            c["id"]: c["sharing"] for c in connections if c["sharing"] != "none"
        }
        if shared:
            # The daemon shares: that is the truth, whatever this process had been waiting for.
            self.pending.clear()
            return shared
        pending = self.pending
        roles = dict.fromkeys(pending.private, "private")
        if pending.public is not None:
            roles[pending.public] = "public"
        return roles

    def current_sharing(self) -> tuple[bool, str | None, list[str]]:
        """(daemon shares now, public id, private ids), the pending roles when it does not."""
        sharing = self.client.status()["sharing"]
        if sharing["active"] and sharing["public"] is not None:
            return True, sharing["public"]["id"], [p["id"] for p in sharing["private"]]
        pending = self.pending
        return False, pending.public, list(pending.private)

    def apply_sharing(self, active: bool, public: str | None, private: list[str]) -> None:
        """Share when both sides exist; otherwise stop sharing and keep the roles pending."""
        if public is not None and private:
            self.client.share(_ref(public), [_ref(p) for p in private])
            self.pending.clear()
            return
        if active:
            self.client.unshare()
        self.pending.public = public
        self.pending.private = private
        if public is not None:
            # "A publicly-shared connection automatically has Internet Connection Firewall
            # enabled": at once, even while its private partner is still missing.
            self.client.set_firewall(_ref(public), True)


# --- Enumeration helpers -----------------------------------------------------------------------

T = TypeVar("T")


class IEnumVARIANT(Generic[T]):
    """The enumerator behind ``_NewEnum`` (Next/Skip/Reset/Clone over a snapshot)."""

    _iid_: ClassVar[str] = "{00020404-0000-0000-C000-000000000046}"

    def __init__(self, items: Sequence[T], position: int = 0) -> None:
        self._items = tuple(items)
        self._position = position

    def Next(self, celt: int = 1) -> tuple[T, ...]:
        """Up to *celt* items from the current position (fewer, or none, at the end: S_FALSE)."""
        if celt < 0:
            raise _invalid("celt must not be negative")
        taken = self._items[self._position : self._position + celt]
        self._position += len(taken)
        return taken

    def Skip(self, celt: int) -> bool:
        """Skip *celt* items; ``True`` (S_OK) if that many were left, else ``False`` (S_FALSE)."""
        if celt < 0:
            raise _invalid("celt must not be negative")
        left = len(self._items) - self._position
        self._position += min(celt, left)
        return celt <= left

    def Reset(self) -> None:
        """Start again from the first item."""
        self._position = 0

    def Clone(self) -> IEnumVARIANT[T]:
        """An independent enumerator at the same position."""
        return IEnumVARIANT(self._items, self._position)

    def __iter__(self) -> Iterator[T]:
        while True:
            items = self.Next(1)
            if not items:
                return
            yield items[0]


class _Collection(Generic[T]):
    """A COM collection for scripting: ``Count``, ``_NewEnum`` and ``for each`` (a snapshot)."""

    _iid_: ClassVar[str] = ""
    _dispids_: ClassVar[dict[str, int]] = {"_NewEnum": DISPID_NEWENUM, "Count": 1}

    def __init__(self, items: Iterable[T]) -> None:
        self._items = tuple(items)

    @property
    def Count(self) -> int:
        return len(self._items)

    @property
    def _NewEnum(self) -> IEnumVARIANT[T]:
        return IEnumVARIANT(self._items)

    def get_Count(self) -> int:
        return self.Count

    def get__NewEnum(self) -> IEnumVARIANT[T]:
        return self._NewEnum

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} Count={len(self._items)}>"


class Enumerator(Generic[T]):
    """JScript's ``new Enumerator(collection)``: moveFirst / atEnd / moveNext / item."""

    def __init__(self, collection: Iterable[T]) -> None:
        self._items = tuple(collection)
        self._position = 0

    def moveFirst(self) -> None:
        self._position = 0

    def moveNext(self) -> None:
        self._position = min(self._position + 1, len(self._items))

    def atEnd(self) -> bool:
        return self._position >= len(self._items)

    def item(self) -> T | None:
        """The current item; ``None`` (JScript's ``undefined``) past the end."""
        return None if self.atEnd() else self._items[self._position]


# --- Connections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NETCON_PROPERTIES:  # noqa: N801 - Microsoft's structure name
    """What ``INetConnection::GetProperties`` fills in (NcFreeNetconProperties is not needed)."""

    guidId: str
    pszwName: str
    pszwDeviceName: str
    Status: int
    MediaType: int
    dwCharacter: int
    clsidThisObject: str = ""
    clsidUiObject: str = ""


class INetConnection:
    """A connection as the enumerations hand it out: pass it back to the manager's methods.

    It is a handle (the connection's id); the properties are read when asked for.
    """

    _iid_: ClassVar[str] = "{C08956A1-1CD3-11D1-B1C5-00805FC1270E}"

    def __init__(self, session: _Session, connection_id: str, name: str) -> None:
        self._session = session
        self._id = connection_id
        self._name = name

    def __repr__(self) -> str:
        return f"<INetConnection {self._name} {self._id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, INetConnection) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def GetProperties(self) -> NETCON_PROPERTIES:
        info = self._session.client.connection(_ref(self._id))
        return NETCON_PROPERTIES(
            guidId=info["id"],
            pszwName=info["name"],
            pszwDeviceName=info["device"],
            Status=info["status_code"],
            MediaType=info["media_type_code"],
            dwCharacter=info["characteristics"],
        )

    # Connection-folder operations belong to the system's network manager, not to sharewall.
    def Connect(self) -> None:
        raise HResultError(E_NOTIMPL, "sharewall does not dial or bring links up")

    def Disconnect(self) -> None:
        raise HResultError(E_NOTIMPL, "sharewall does not hang up or bring links down")

    def Delete(self) -> None:
        raise HResultError(E_NOTIMPL, "sharewall does not delete network interfaces")

    def Duplicate(self, pszwDuplicateName: str) -> INetConnection:
        raise HResultError(E_NOTIMPL, "sharewall does not create network interfaces")

    def Rename(self, pszwNewName: str) -> None:
        raise HResultError(E_NOTIMPL, "sharewall does not rename network interfaces")

    def GetUiObjectClassId(self) -> str:
        raise HResultError(E_NOTIMPL, "sharewall has no connection-folder UI objects")


class INetConnectionProps:
    """A connection's properties, read when ``NetConnectionProps`` was called (a snapshot)."""

    _iid_: ClassVar[str] = "{F4277C95-CE5B-463D-8167-5662D9BCAA72}"
    _dispids_: ClassVar[dict[str, int]] = {
        "Guid": 1,
        "Name": 2,
        "DeviceName": 3,
        "Status": 4,
        "MediaType": 5,
        "Characteristics": 6,
    }

    def __init__(self, info: ConnectionInfo) -> None:
        self._info = info

    @property
    def Guid(self) -> str:
        """The connection's stable id, a braced GUID such as ``{3F2A...}``."""
        return self._info["id"]

    @property
    def Name(self) -> str:
        """The interface name (``eth0``): what Windows calls the connection's name."""
        return self._info["name"]

    @property
    def DeviceName(self) -> str:
        """The kind of device (``ethernet``, ``veth``, ``wireless``...)."""
        return self._info["device"]

    @property
    def Status(self) -> int:
        """NETCON_STATUS (``NCS_CONNECTED`` = 2...)."""
        return self._info["status_code"]

    @property
    def MediaType(self) -> int:
        """NETCON_MEDIATYPE (``NCM_LAN`` = 3...)."""
        return self._info["media_type_code"]

    @property
    def Characteristics(self) -> int:
        """NETCON_CHARACTERISTIC_FLAGS (``NCCF_SHARED | NCCF_FIREWALLED``...)."""
        return self._info["characteristics"]

    def get_Guid(self) -> str:
        return self.Guid

    def get_Name(self) -> str:
        return self.Name

    def get_DeviceName(self) -> str:
        return self.DeviceName

    def get_Status(self) -> int:
        return self.Status

    def get_MediaType(self) -> int:
        return self.MediaType

    def get_Characteristics(self) -> int:
        return self.Characteristics

    def __repr__(self) -> str:
        return f"<INetConnectionProps {self.Name} {self.Guid}>"


class INetSharingEveryConnectionCollection(_Collection[INetConnection]):
    _iid_ = "{33C4643C-7811-46FA-A89A-768597BD7223}"


class INetSharingPublicConnectionCollection(_Collection[INetConnection]):
    _iid_ = "{7D7A6355-F372-4971-A149-BFC927BE762A}"


class INetSharingPrivateConnectionCollection(_Collection[INetConnection]):
    _iid_ = "{38AE69E0-4409-402A-A2CB-E965C727F840}"


# --- Port mappings -----------------------------------------------------------------------------


def _target_for(target: object, target_type: object) -> str:
    """sharewall's mapping target for AddPortMapping's (bstrTargetNameOrIPAddress, eTargetType)."""
    if not isinstance(target, str):
        raise _invalid(f"the target must be a string, not {target!r}")
    if target_type == ICSTT_IPADDRESS and not isinstance(target_type, bool):
        try:
            address = ipaddress.IPv4Address(target.strip())
        except ValueError:
            raise _invalid(f"{target!r} is not an IPv4 address (ICSTT_IPADDRESS)") from None
        return _GATEWAY if address.is_loopback else str(address)
    if target_type == ICSTT_NAME and not isinstance(target_type, bool):
        return _GATEWAY if target.strip().lower() in {"localhost", _GATEWAY} else target
    raise _invalid(
        f"eTargetType must be ICSTT_NAME (0) or ICSTT_IPADDRESS (1), not {target_type!r}"
    )


class INetSharingPortMappingProps:
    """A port mapping's properties when ``Properties`` was read (a snapshot: re-read after changes)."""

    _iid_: ClassVar[str] = "{24B7E9B5-E38F-4685-851B-00892CF5F940}"
    _dispids_: ClassVar[dict[str, int]] = {
        "Name": 1,
        "IPProtocol": 2,
        "ExternalPort": 3,
        "InternalPort": 4,
        "Options": 5,
        "TargetName": 6,
        "TargetIPAddress": 7,
        "Enabled": 8,
    }

    def __init__(self, info: MappingInfo) -> None:
        self._info = info

    @property
    def Name(self) -> str:
        return self._info["name"]

    @property
    def IPProtocol(self) -> int:
        """``NAT_PROTOCOL_TCP`` (6) or ``NAT_PROTOCOL_UDP`` (17)."""
        return NAT_PROTOCOL_TCP if self._info["protocol"] == "tcp" else NAT_PROTOCOL_UDP

    @property
    def ExternalPort(self) -> int:
        return self._info["external_port"]

    @property
    def InternalPort(self) -> int:
        return self._info["internal_port"]

    @property
    def Options(self) -> int:
        """``dwOptions`` as given to AddPortMapping (reserved: kept, never interpreted)."""
        return self._info["options"]

    @property
    def TargetName(self) -> str:
        """The target's name: ``"gateway"`` for this machine, "" for a mapping made by address."""
        target = self._info["target"]
        if target == _GATEWAY:
            return _GATEWAY
        return "" if _is_ipv4(target) else target

    @property
    def TargetIPAddress(self) -> str:
        """The target's address: ``127.0.0.1`` for this machine; for a name, what it resolves
        to now ("" while it does not resolve)."""
        target = self._info["target"]
        if target == _GATEWAY:
            return _GATEWAY_IP
        if _is_ipv4(target):
            return target
        return self._info["target_address"] or ""

    @property
    def Enabled(self) -> bool:
        return self._info["enabled"]

    def get_Name(self) -> str:
        return self.Name

    def get_IPProtocol(self) -> int:
        return self.IPProtocol

    def get_ExternalPort(self) -> int:
        return self.ExternalPort

    def get_InternalPort(self) -> int:
        return self.InternalPort

    def get_Options(self) -> int:
        return self.Options

    def get_TargetName(self) -> str:
        return self.TargetName

    def get_TargetIPAddress(self) -> str:
        return self.TargetIPAddress

    def get_Enabled(self) -> bool:
        return self.Enabled

    def __repr__(self) -> str:
        return f"<INetSharingPortMappingProps {self.Name!r}>"


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class INetSharingPortMapping:
    """One port mapping of one connection (a handle: connection id + mapping name)."""

    _iid_: ClassVar[str] = "{C08956B1-1CD3-11D1-B1C5-00805FC1270E}"
    _dispids_: ClassVar[dict[str, int]] = {"Disable": 1, "Enable": 2, "Properties": 3, "Delete": 4}

    def __init__(self, session: _Session, connection_id: str, name: str) -> None:
        self._session = session
        self._connection_id = connection_id
        self._name = name

    def __repr__(self) -> str:
        return f"<INetSharingPortMapping {self._name!r} on {self._connection_id}>"

    def Disable(self) -> None:
        self._session.client.set_mapping_enabled(_ref(self._connection_id), self._name, False)

    def Enable(self) -> None:
        self._session.client.set_mapping_enabled(_ref(self._connection_id), self._name, True)

    @property
    def Properties(self) -> INetSharingPortMappingProps:
        for info in self._session.client.mappings(_ref(self._connection_id)):
            if info["name"] == self._name:
                return INetSharingPortMappingProps(info)
        raise _invalid(f"the port mapping {self._name!r} no longer exists")

    def get_Properties(self) -> INetSharingPortMappingProps:
        return self.Properties

    def Delete(self) -> None:
        self._session.client.remove_mapping(_ref(self._connection_id), self._name)


class INetSharingPortMappingCollection(_Collection[INetSharingPortMapping]):
    _iid_ = "{02E4A2DE-DA20-4E34-89C8-AC22275A010B}"


# --- Sharing configuration of one connection ---------------------------------------------------


class INetSharingConfiguration:
    """Sharing, firewall and port mappings of one connection."""

    _iid_: ClassVar[str] = "{C08956B6-1CD3-11D1-B1C5-00805FC1270E}"
    _dispids_: ClassVar[dict[str, int]] = {
        "SharingEnabled": 1,
        "SharingConnectionType": 2,
        "DisableSharing": 3,
        "EnableSharing": 4,
        "InternetFirewallEnabled": 5,
        "DisableInternetFirewall": 6,
        "EnableInternetFirewall": 7,
        "EnumPortMappings": 8,
        "AddPortMapping": 9,
        "RemovePortMapping": 10,
    }

    def __init__(self, session: _Session, connection_id: str) -> None:
        self._session = session
        self._id = connection_id

    def __repr__(self) -> str:
        return f"<INetSharingConfiguration {self._id}>"

    def _role(self) -> str | None:
        return self._session.roles(self._session.client.connections()).get(self._id)

    @property
    def SharingEnabled(self) -> bool:
        """True if this connection is shared, publicly or privately (pending roles included)."""
        return self._role() is not None

    @property
    def SharingConnectionType(self) -> int:
        """``ICSSHARINGTYPE_PUBLIC`` or ``ICSSHARINGTYPE_PRIVATE``; PUBLIC (0) when not shared
        (Windows does not document that case)."""
        return ICSSHARINGTYPE_PRIVATE if self._role() == "private" else ICSSHARINGTYPE_PUBLIC

    def EnableSharing(self, Type: int) -> None:
        """Share this connection as public or private.

        PUBLIC replaces the previous public connection and turns this one's firewall on.
        sharewall needs both sides at once: the role waits (pending) until the other side is
        named, in this process, by another EnableSharing.

        Raises:
            HResultError: E_INVALIDARG for a bad *Type* or a connection that cannot take the role.
        """
        if Type not in (ICSSHARINGTYPE_PUBLIC, ICSSHARINGTYPE_PRIVATE) or isinstance(Type, bool):
            raise _invalid(f"Type must be ICSSHARINGTYPE_PUBLIC or _PRIVATE, not {Type!r}")
        active, public, private = self._session.current_sharing()
        if Type == ICSSHARINGTYPE_PUBLIC:
            public = self._id
            private = [p for p in private if p != self._id]
        else:
            if public == self._id:
                public = None
            if self._id not in private:
                private.append(self._id)
        self._session.apply_sharing(active, public, private)

    def DisableSharing(self) -> None:
        """Stop sharing this connection and disable all its port mappings.

        The firewall stays as it is. Succeeds on a connection that is not shared (its mappings
        are still disabled). Disabling the public connection stops sharing; its private
        connections stay pending, ready for the next EnableSharing(PUBLIC).
        """
        active, public, private = self._session.current_sharing()
        if public == self._id or self._id in private:
            private = [p for p in private if p != self._id]
            self._session.apply_sharing(active, None if public == self._id else public, private)
        client = self._session.client
        for info in client.mappings(_ref(self._id)):
            if info["enabled"] and info["source"] == "static":
                client.set_mapping_enabled(_ref(self._id), info["name"], False)

    @property
    def InternetFirewallEnabled(self) -> bool:
        return self._session.client.connection(_ref(self._id))["firewall"]

    def EnableInternetFirewall(self) -> None:
        self._session.client.set_firewall(_ref(self._id), True)

    def DisableInternetFirewall(self) -> None:
        """Turn this connection's firewall off (succeeds if it was off)."""
        self._session.client.set_firewall(_ref(self._id), False)

    def EnumPortMappings(self, Flags: int) -> INetSharingPortMappingCollection:
        """Every port mapping of this connection: the built-in services, then the others.

        Raises:
            HResultError: E_INVALIDARG unless *Flags* is ``ICSSC_DEFAULT``.
        """
        _check_flags(Flags)
        infos = self._session.client.mappings(_ref(self._id))
        return INetSharingPortMappingCollection(
            INetSharingPortMapping(self._session, self._id, info["name"]) for info in infos
        )

    def AddPortMapping(
        self,
        bstrName: str,
        ucIPProtocol: int,
        usExternalPort: int,
        usInternalPort: int,
        dwOptions: int,
        bstrTargetNameOrIPAddress: str,
        eTargetType: int,
    ) -> INetSharingPortMapping:
        """Add a port mapping, disabled ("When first added, the new mapping is in a disabled state").

        Args:
            bstrName: the mapping's name, unique on this connection.
            ucIPProtocol: ``NAT_PROTOCOL_TCP`` (6) or ``NAT_PROTOCOL_UDP`` (17).
            usExternalPort: the port on this connection, 1-65535.
            usInternalPort: the port on the target, 1-65535.
            dwOptions: reserved; kept and returned by ``Properties.Options``.
            bstrTargetNameOrIPAddress: a host name (``ICSTT_NAME``; ``"localhost"`` or
                ``"gateway"`` mean this machine) or an IPv4 address (``ICSTT_IPADDRESS``;
                a loopback address means this machine).
            eTargetType: ``ICSTT_NAME`` or ``ICSTT_IPADDRESS``.

        Returns:
            The new mapping; call ``Enable()`` to put it in force.

        Raises:
            HResultError: E_INVALIDARG for a bad argument, a name already used on this
                connection, or a protocol and external port already mapped.
        """
        protocol = {NAT_PROTOCOL_TCP: "tcp", NAT_PROTOCOL_UDP: "udp"}.get(ucIPProtocol)
        if protocol is None or isinstance(ucIPProtocol, bool):
            raise _invalid(f"ucIPProtocol must be NAT_PROTOCOL_TCP or _UDP, not {ucIPProtocol!r}")
        body = {
            "name": bstrName,
            "protocol": protocol,
            "external_port": usExternalPort,
            "internal_port": usInternalPort,
            "target": _target_for(bstrTargetNameOrIPAddress, eTargetType),
            "enabled": False,
            "options": dwOptions,
        }
        # Client.add_mapping has no ``options`` argument; the endpoint takes it, so send it directly.
        reply = self._session.client.request("POST", _connection_path(self._id) + "/mappings", body)
        name = reply.get("mapping", {}).get("name", bstrName)
        return INetSharingPortMapping(self._session, self._id, str(name))

    def RemovePortMapping(self, pMapping: INetSharingPortMapping) -> None:
        """Remove one of this connection's mappings (same as ``pMapping.Delete()``).

        Raises:
            HResultError: E_INVALIDARG if *pMapping* belongs to another connection or is gone;
                E_ACCESSDENIED for a built-in service (disable it instead).
        """
        if not isinstance(pMapping, INetSharingPortMapping) or pMapping._connection_id != self._id:
            raise _invalid("pMapping is not a port mapping of this connection")
        pMapping.Delete()

    def get_SharingEnabled(self) -> bool:
        return self.SharingEnabled

    def get_SharingConnectionType(self) -> int:
        return self.SharingConnectionType

    def get_InternetFirewallEnabled(self) -> bool:
        return self.InternetFirewallEnabled

    def get_EnumPortMappings(self, Flags: int) -> INetSharingPortMappingCollection:
        return self.EnumPortMappings(Flags)


# --- The manager -------------------------------------------------------------------------------


class INetSharingManager:
    """The Manager object (``HNetCfg.HNetShare``): the way in to every other interface."""

    _iid_: ClassVar[str] = "{C08956B7-1CD3-11D1-B1C5-00805FC1270E}"
    _clsid_: ClassVar[str] = CLSID_NetSharingManager
    _dispids_: ClassVar[dict[str, int]] = {
        "SharingInstalled": 1,
        "EnumPublicConnections": 2,
        "EnumPrivateConnections": 3,
        "INetSharingConfigurationForINetConnection": 6,
        "EnumEveryConnection": 7,
        "NetConnectionProps": 8,
    }

    def __init__(self, client: Client) -> None:
        """Wrap *client*; nothing is contacted until the first call.

        Args:
            client: the daemon's client (``CreateObject`` makes one from the socket path).
        """
        self._session = _Session(client)

    def __repr__(self) -> str:
        return f"<INetSharingManager {self._session.socket_path}>"

    def _connection_id(self, conn: INetConnection | str) -> str:
        if isinstance(conn, INetConnection):
            return conn._id
        if isinstance(conn, str) and conn:
            return self._session.client.connection(_ref(conn))[
                "id"
            ]  # a name or id: sharewall's extra
        raise _invalid(f"expected an INetConnection, not {conn!r}")

    def _connections(self, role: str | None) -> list[INetConnection]:
        infos = self._session.client.connections()
        roles = self._session.roles(infos) if role is not None else {}
        return [
            INetConnection(self._session, c["id"], c["name"])
            for c in infos
            if role is None or roles.get(c["id"]) == role
        ]

    @property
    def SharingInstalled(self) -> bool:
        """True when sharewalld answers (sharing can be configured), False when it does not."""
        try:
            self._session.client.status()
        except HResultError as err:
            if err.hresult == E_SERVER_UNAVAILABLE:
                return False
            raise
        return True

    @property
    def EnumEveryConnection(self) -> INetSharingEveryConnectionCollection:
        """Every connection (network interface except loopback)."""
        return INetSharingEveryConnectionCollection(self._connections(None))

    def EnumPublicConnections(self, Flags: int) -> INetSharingPublicConnectionCollection:
        """The publicly shared connection (none or one).

        Raises:
            HResultError: E_INVALIDARG unless *Flags* is ``ICSSC_DEFAULT``.
        """
        _check_flags(Flags)
        return INetSharingPublicConnectionCollection(self._connections("public"))

    def EnumPrivateConnections(self, Flags: int) -> INetSharingPrivateConnectionCollection:
        """The privately shared connections.

        Raises:
            HResultError: E_INVALIDARG unless *Flags* is ``ICSSC_DEFAULT``.
        """
        _check_flags(Flags)
        return INetSharingPrivateConnectionCollection(self._connections("private"))

    def INetSharingConfigurationForINetConnection(
        self, pNetConnection: INetConnection | str
    ) -> INetSharingConfiguration:
        """The sharing configuration of *pNetConnection* (an item of an enumeration)."""
        return INetSharingConfiguration(self._session, self._connection_id(pNetConnection))

    def NetConnectionProps(self, pNetConnection: INetConnection | str) -> INetConnectionProps:
        """The properties of *pNetConnection*, read now."""
        connection_id = self._connection_id(pNetConnection)
        return INetConnectionProps(self._session.client.connection(_ref(connection_id)))

    def get_SharingInstalled(self) -> bool:
        return self.SharingInstalled

    def get_EnumEveryConnection(self) -> INetSharingEveryConnectionCollection:
        return self.EnumEveryConnection

    def get_EnumPublicConnections(self, Flags: int) -> INetSharingPublicConnectionCollection:
        return self.EnumPublicConnections(Flags)

    def get_EnumPrivateConnections(self, Flags: int) -> INetSharingPrivateConnectionCollection:
        return self.EnumPrivateConnections(Flags)

    def get_INetSharingConfigurationForINetConnection(
        self, pNetConnection: INetConnection | str
    ) -> INetSharingConfiguration:
        return self.INetSharingConfigurationForINetConnection(pNetConnection)

    def get_NetConnectionProps(self, pNetConnection: INetConnection | str) -> INetConnectionProps:
        return self.NetConnectionProps(pNetConnection)


# --- CreateObject ------------------------------------------------------------------------------

_SHARING_PROGIDS = frozenset({"hnetcfg.hnetshare", "hnetcfg.hnetshare.1"})
_FWMGR_PROGIDS = frozenset({"hnetcfg.fwmgr", "hnetcfg.fwmgr.1"})
_OPENPORT_PROGIDS = frozenset({"hnetcfg.fwopenport", "hnetcfg.fwopenport.1"})
_NATUPNP_PROGIDS = frozenset({"hnetcfg.natupnp", "hnetcfg.natupnp.1"})
# Known to Windows, not offered here: "class not registered", as on a Windows without them.
_UNREGISTERED_PROGIDS = frozenset(
    {"hnetcfg.fwauthorizedapplication", "hnetcfg.fwauthorizedapplication.1"}
)

_SharingProgID = Literal["HNetCfg.HNetShare", "HNetCfg.HNetShare.1"]
_FwMgrProgID = Literal["HNetCfg.FwMgr", "HNetCfg.FwMgr.1"]
_OpenPortProgID = Literal["HNetCfg.FWOpenPort", "HNetCfg.FWOpenPort.1"]
_NatProgID = Literal["HNetCfg.NATUPnP", "HNetCfg.NATUPnP.1"]


@overload
def CreateObject(
    progid: _SharingProgID, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> INetSharingManager: ...
@overload
def CreateObject(
    progid: _FwMgrProgID, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> INetFwMgr: ...
@overload
def CreateObject(
    progid: _OpenPortProgID, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> INetFwOpenPort: ...
@overload
def CreateObject(
    progid: _NatProgID, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> IUPnPNAT: ...
@overload
def CreateObject(
    progid: str, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> object: ...
def CreateObject(
    progid: str, *, socket_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> object:
    """Create a scripting object by ProgID, as ``WScript.CreateObject`` / ``new ActiveXObject``.

    ProgIDs are case-insensitive, as in COM. Nothing is contacted yet: the first property read or
    method call talks to the daemon.

    Args:
        progid: ``"HNetCfg.HNetShare"`` / ``"HNetCfg.HNetShare.1"`` (INetSharingManager),
            ``"HNetCfg.FwMgr"`` (INetFwMgr), ``"HNetCfg.FWOpenPort"`` (a new INetFwOpenPort)
            or ``"HNetCfg.NATUPnP"`` (IUPnPNAT, for the IGD of the local network).
        socket_path: sharewalld's socket; ``None`` means ``$SHAREWALL_SOCKET`` or the default.
        timeout: seconds to wait for the daemon (or the IGD) on each call.

    Returns:
        The object.

    Raises:
        HResultError: REGDB_E_CLASSNOTREG for the HNetCfg class not offered here
            (FwAuthorizedApplication); CO_E_CLASSSTRING for an unknown ProgID.
    """
    key = progid.strip().lower() if isinstance(progid, str) else ""
    if key in _SHARING_PROGIDS:
        return INetSharingManager(Client(socket_path, timeout=timeout))
    if key in _FWMGR_PROGIDS:
        from sharewall.api.fwmgr import INetFwMgr

        return INetFwMgr(Client(socket_path, timeout=timeout))
    if key in _OPENPORT_PROGIDS:
        from sharewall.api.fwmgr import INetFwOpenPort

        return INetFwOpenPort()
    if key in _NATUPNP_PROGIDS:
        from sharewall.api.natupnp import IUPnPNAT

        return IUPnPNAT(timeout=timeout)  # finds the IGD with SSDP; the socket is not used
    if key in _UNREGISTERED_PROGIDS:
        raise HResultError(REGDB_E_CLASSNOTREG, f"{progid}: class not registered in sharewall")
    raise HResultError(CO_E_CLASSSTRING, f"invalid class string {progid!r}")


# pywin32's win32com.client.Dispatch(progid) does the same for these classes.
Dispatch = CreateObject
