"""NAT-PMP (RFC 6886) codec for both roles: requests and responses to and from bytes.

Pure: no sockets, no clock, no asyncio. The "seconds since start of epoch" is an argument
(see :func:`epoch_seconds`). Whether a mapping is allowed is the daemon's decision; this module
only reads and writes the wire format.

Server use::

    try:
        request = parse_request(datagram)
    except RemoteProtocolError as error:
        if error.result_code is not None:  # else: drop silently
            reply = error_response(error.opcode or 0, error.result_code, epoch_s)
    ...
    reply = render_response(request.reply(epoch_s=..., external_port=..., lifetime_s=...))

Protocols are IANA numbers (6 = TCP, 17 = UDP), as in PCP and the IGD layer.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from sharewall.protocols._limits import MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError

__all__ = [
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "VERSION",
    "ErrorResponse",
    "MapRequest",
    "MapResponse",
    "Opcode",
    "PublicAddressRequest",
    "PublicAddressResponse",
    "ResultCode",
    "epoch_seconds",
    "error_response",
    "parse_request",
    "parse_response",
    "render_request",
    "render_response",
]

IPPROTO_TCP = 6
IPPROTO_UDP = 17

#: RFC 6886 §3: "Vers: 0".
VERSION = 0
#: RFC 6886 §3.2: responses carry the request opcode plus 128.
RESPONSE_BIT = 0x80

_UINT32_MAX = 0xFFFF_FFFF


class Opcode(enum.IntEnum):
    """Request opcodes (RFC 6886 §3.2, §3.3)."""

    PUBLIC_ADDRESS = 0
    MAP_UDP = 1
    MAP_TCP = 2


class ResultCode(enum.IntEnum):
    """Result codes (RFC 6886 §3.5)."""

    SUCCESS = 0
    UNSUPPORTED_VERSION = 1
    #: "Not Authorized/Refused (e.g., box supports mapping, but user has turned feature off)"
    NOT_AUTHORIZED = 2
    #: "Network Failure (e.g., NAT box itself has not obtained a DHCP lease)"
    NETWORK_FAILURE = 3
    #: "Out of resources (NAT box cannot create any more mappings at this time)"
    OUT_OF_RESOURCES = 4
    UNSUPPORTED_OPCODE = 5


_OPCODE_BY_PROTOCOL = {IPPROTO_UDP: Opcode.MAP_UDP, IPPROTO_TCP: Opcode.MAP_TCP}
_PROTOCOL_BY_OPCODE = {Opcode.MAP_UDP: IPPROTO_UDP, Opcode.MAP_TCP: IPPROTO_TCP}

# RFC 6886 §3.3, request:
#  | Vers = 0 | OP = x | Reserved (16) | Internal Port (16) | Suggested External Port (16) |
#  | Requested Port Mapping Lifetime in Seconds (32) |
_MAP_REQUEST = struct.Struct("!BBHHHI")
# RFC 6886 §3.2, response:
#  | Vers = 0 | OP = 128 + 0 | Result Code (16) | Seconds Since Start of Epoch (32) |
#  | External IPv4 Address (a.b.c.d) (32) |
_PUBLIC_ADDRESS_RESPONSE = struct.Struct("!BBHI4s")
# RFC 6886 §3.3, response:
#  | Vers = 0 | OP = 128 + x | Result Code (16) | Seconds Since Start of Epoch (32) |
#  | Internal Port (16) | Mapped External Port (16) | Port Mapping Lifetime in Seconds (32) |
_MAP_RESPONSE = struct.Struct("!BBHIHHI")
# The common prefix of every response; on its own it is the RFC 6886 §3.5 error response.
_ERROR_RESPONSE = struct.Struct("!BBHI")


def _check_port(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} must be 0..65535, not {value}")


def _check_uint32(name: str, value: int) -> None:
    if not 0 <= value <= _UINT32_MAX:
        raise ValueError(f"{name} must be 0..4294967295, not {value}")


def epoch_seconds(now: float, epoch_start: float) -> int:
    """Seconds since start of epoch (RFC 6886 §3.6), wrapped to 32 bits.

    ``epoch_start`` is when the mapping table was last (re)initialised, on the same clock as
    ``now`` (the daemon's monotonic clock).
    """
    return int(max(0.0, now - epoch_start)) & _UINT32_MAX


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicAddressRequest:
    """Opcode 0: "what is your external address?" (RFC 6886 §3.2)."""


@dataclass(frozen=True, slots=True)
class MapRequest:
    """Opcodes 1 (UDP) and 2 (TCP): create, renew or delete a mapping (RFC 6886 §3.3).

    ``lifetime_s == 0`` is a delete; with ``internal_port == 0`` too it deletes all of the
    client's mappings for that protocol (§3.4).
    """

    protocol: int
    internal_port: int
    suggested_external_port: int
    lifetime_s: int

    def __post_init__(self) -> None:
        if self.protocol not in _OPCODE_BY_PROTOCOL:
            raise ValueError(f"NAT-PMP maps only TCP (6) and UDP (17), not {self.protocol}")
        _check_port("internal_port", self.internal_port)
        _check_port("suggested_external_port", self.suggested_external_port)
        _check_uint32("lifetime_s", self.lifetime_s)

    @property
    def opcode(self) -> Opcode:
        return _OPCODE_BY_PROTOCOL[self.protocol]

    @property
    def is_delete(self) -> bool:
        return self.lifetime_s == 0

    def reply(
        self,
        *,
        epoch_s: int,
        external_port: int = 0,
        lifetime_s: int = 0,
        result_code: ResultCode = ResultCode.SUCCESS,
    ) -> MapResponse:
        """The response to this request (a refusal when ``result_code`` is not SUCCESS).

        RFC 6886 §3.4: a successful delete answers with external port and lifetime 0.
        """
        return MapResponse(
            protocol=self.protocol,
            epoch_s=epoch_s,
            internal_port=self.internal_port,
            external_port=external_port,
            lifetime_s=lifetime_s,
            result_code=result_code,
        )


NatPmpRequest = PublicAddressRequest | MapRequest


def parse_request(data: bytes) -> NatPmpRequest:
    """Read one NAT-PMP request datagram (server role).

    Args:
        data: the UDP payload, whole.

    Returns:
        A :class:`PublicAddressRequest` or :class:`MapRequest`.

    Raises:
        RemoteProtocolError: ``result_code`` (with ``opcode``) is the error to answer with via
            :func:`error_response`; ``result_code is None`` means drop silently (too short,
            too long, or a response, which RFC 6886 §3.5 says "MUST silently ignore").
    """
    if len(data) < 2:
        raise RemoteProtocolError("NAT-PMP datagram shorter than 2 bytes")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise RemoteProtocolError("NAT-PMP datagram too long")
    version, opcode = data[0], data[1]
    if opcode & RESPONSE_BIT:
        raise RemoteProtocolError("NAT-PMP response received by the server")
    if version != VERSION:
        # RFC 6886 §3.5 with erratum 3618: answer OP = 128 + request opcode, result 1.
        raise RemoteProtocolError(
            f"unsupported NAT-PMP version {version}",
            result_code=ResultCode.UNSUPPORTED_VERSION,
            opcode=opcode,
        )
    if opcode == Opcode.PUBLIC_ADDRESS:
        return PublicAddressRequest()
    if opcode in (Opcode.MAP_UDP, Opcode.MAP_TCP):
        if len(data) < _MAP_REQUEST.size:
            # NAT-PMP has no "malformed" result code; miniupnpd drops these too.
            raise RemoteProtocolError("NAT-PMP map request shorter than 12 bytes")
        # The reserved field "MUST be ignored on reception"; so are trailing bytes.
        _, _, _, internal, external, lifetime = _MAP_REQUEST.unpack_from(data)
        return MapRequest(
            protocol=_PROTOCOL_BY_OPCODE[Opcode(opcode)],
            internal_port=internal,
            suggested_external_port=external,
            lifetime_s=lifetime,
        )
    raise RemoteProtocolError(
        f"unsupported NAT-PMP opcode {opcode}",
        result_code=ResultCode.UNSUPPORTED_OPCODE,
        opcode=opcode,
    )


def render_request(request: NatPmpRequest) -> bytes:
    """The bytes of a request (client role)."""
    if isinstance(request, PublicAddressRequest):
        return bytes((VERSION, Opcode.PUBLIC_ADDRESS))
    return _MAP_REQUEST.pack(
        VERSION,
        request.opcode,
        0,
        request.internal_port,
        request.suggested_external_port,
        request.lifetime_s,
    )


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicAddressResponse:
    """Answer to opcode 0; also the unsolicited address-change announcement (RFC 6886 §3.2.1)."""

    epoch_s: int
    public_address: ipaddress.IPv4Address
    result_code: int = ResultCode.SUCCESS

    def __post_init__(self) -> None:
        _check_uint32("epoch_s", self.epoch_s)
        if not 0 <= self.result_code <= 0xFFFF:
            raise ValueError(f"result_code must fit 16 bits, not {self.result_code}")


@dataclass(frozen=True, slots=True)
class MapResponse:
    """Answer to opcodes 1 and 2 (RFC 6886 §3.3)."""

    protocol: int
    epoch_s: int
    internal_port: int
    external_port: int
    lifetime_s: int
    result_code: int = ResultCode.SUCCESS

    def __post_init__(self) -> None:
        if self.protocol not in _OPCODE_BY_PROTOCOL:
            raise ValueError(f"NAT-PMP maps only TCP (6) and UDP (17), not {self.protocol}")
        _check_uint32("epoch_s", self.epoch_s)
        _check_port("internal_port", self.internal_port)
        _check_port("external_port", self.external_port)
        _check_uint32("lifetime_s", self.lifetime_s)
        if not 0 <= self.result_code <= 0xFFFF:
            raise ValueError(f"result_code must fit 16 bits, not {self.result_code}")


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """The 8-byte header-only answer (RFC 6886 §3.5): unsupported version or opcode."""

    opcode: int
    result_code: int
    epoch_s: int

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 0x7F:
            raise ValueError(f"request opcode must be 0..127, not {self.opcode}")
        if not 0 <= self.result_code <= 0xFFFF:
            raise ValueError(f"result_code must fit 16 bits, not {self.result_code}")
        _check_uint32("epoch_s", self.epoch_s)


NatPmpResponse = PublicAddressResponse | MapResponse | ErrorResponse


def error_response(opcode: int, result_code: int, epoch_s: int) -> bytes:
    """The 8-byte error answer to a request with ``opcode`` (RFC 6886 §3.5, erratum 3618).

    Used for unsupported versions (result 1) and opcodes (result 5): "the top bit of the
    opcode set (to indicate that this is a response)".
    """
    return render_response(
        ErrorResponse(opcode=opcode & 0x7F, result_code=result_code, epoch_s=epoch_s)
    )


def render_response(response: NatPmpResponse) -> bytes:
    """The bytes of a response (server role)."""
    if isinstance(response, PublicAddressResponse):
        return _PUBLIC_ADDRESS_RESPONSE.pack(
            VERSION,
            RESPONSE_BIT | Opcode.PUBLIC_ADDRESS,
            response.result_code,
            response.epoch_s,
            response.public_address.packed,
        )
    if isinstance(response, MapResponse):
        return _MAP_RESPONSE.pack(
            VERSION,
            RESPONSE_BIT | _OPCODE_BY_PROTOCOL[response.protocol],
            response.result_code,
            response.epoch_s,
            response.internal_port,
            response.external_port,
            response.lifetime_s,
        )
    return _ERROR_RESPONSE.pack(
        VERSION, RESPONSE_BIT | response.opcode, response.result_code, response.epoch_s
    )


def parse_response(data: bytes) -> NatPmpResponse:
    """Read one NAT-PMP response datagram (client role).

    A response shorter than its opcode's full layout but at least 8 bytes long is an
    :class:`ErrorResponse`.

    Raises:
        RemoteProtocolError: not a NAT-PMP response (always silent: a client never answers).
    """
    if len(data) < _ERROR_RESPONSE.size:
        raise RemoteProtocolError("NAT-PMP response shorter than 8 bytes")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise RemoteProtocolError("NAT-PMP response too long")
    version, opcode, result_code, epoch_s = _ERROR_RESPONSE.unpack_from(data)
    if version != VERSION:
        raise RemoteProtocolError(f"NAT-PMP response with version {version}")
    if not opcode & RESPONSE_BIT:
        raise RemoteProtocolError("NAT-PMP request received by the client")
    request_opcode = opcode & 0x7F
    if request_opcode == Opcode.PUBLIC_ADDRESS and len(data) >= _PUBLIC_ADDRESS_RESPONSE.size:
        address = _PUBLIC_ADDRESS_RESPONSE.unpack_from(data)[4]
        return PublicAddressResponse(
            epoch_s=epoch_s,
            public_address=ipaddress.IPv4Address(address),
            result_code=result_code,
        )
    if request_opcode in (Opcode.MAP_UDP, Opcode.MAP_TCP) and len(data) >= _MAP_RESPONSE.size:
        _, _, _, _, internal, external, lifetime = _MAP_RESPONSE.unpack_from(data)
        return MapResponse(
            protocol=_PROTOCOL_BY_OPCODE[Opcode(request_opcode)],
            epoch_s=epoch_s,
            internal_port=internal,
            external_port=external,
            lifetime_s=lifetime,
            result_code=result_code,
        )
    return ErrorResponse(opcode=request_opcode, result_code=result_code, epoch_s=epoch_s)
