"""PCP (RFC 6887, version 2) codec for both roles: ANNOUNCE, MAP and PEER, with options.

Pure: no sockets, no clock, no asyncio. Epoch seconds and lifetimes are arguments. Whether a
mapping is allowed (NOT_AUTHORIZED, NO_RESOURCES, ...) is the daemon's decision; this module
reads and writes the wire format and enforces the RFC's well-formedness rules.

Addresses are 128-bit on the wire; IPv4 travels IPv4-mapped (``::ffff:a.b.c.d``, RFC 6887
§5). Here an IPv4 address is always an :class:`ipaddress.IPv4Address`, never the mapped IPv6
form, so ``parse(render(x)) == x`` holds.

Server use::

    try:
        request = parse_request(datagram)
        verify_client_address(request, source_ip)
    except RemoteProtocolError as error:
        if error.result_code is not None:  # else: drop silently
            reply = error_response(datagram, error.result_code,
                                   lifetime_s=suggested_error_lifetime_s(error.result_code),
                                   epoch_s=epoch_s)
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from sharewall.protocols._limits import MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError

__all__ = [
    "NONCE_BYTES",
    "VERSION",
    "AnnounceRequest",
    "AnnounceResponse",
    "Filter",
    "IPAddress",
    "MapRequest",
    "MapResponse",
    "Opcode",
    "OptionCode",
    "PeerRequest",
    "PeerResponse",
    "ResultCode",
    "error_response",
    "parse_request",
    "parse_response",
    "render_request",
    "render_response",
    "suggested_error_lifetime_s",
    "verify_client_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: RFC 6887 §7: "Version: Only version 2 is defined in this document."
VERSION = 2
#: RFC 6887 §11.1: "Mapping Nonce: Random value chosen by the PCP client" (96 bits).
NONCE_BYTES = 12

_R_BIT = 0x80
_OPCODE_MASK = 0x7F
_UINT32_MAX = 0xFFFF_FFFF
_UNSPECIFIED_V4 = ipaddress.IPv4Address(0)


class Opcode(enum.IntEnum):
    """Opcodes (RFC 6887 §19.2)."""

    ANNOUNCE = 0
    MAP = 1
    PEER = 2


class ResultCode(enum.IntEnum):
    """Result codes (RFC 6887 §7.4)."""

    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13


class OptionCode(enum.IntEnum):
    """Options (RFC 6887 §13). Codes 0..127 are mandatory to process, 128..255 optional."""

    THIRD_PARTY = 1
    PREFER_FAILURE = 2
    FILTER = 3


# RFC 6887 §7.4 sorts errors into "long lifetime" (the same request will fail the same way
# for a while) and "short lifetime" (a transient condition).
_SHORT_LIFETIME_ERRORS = frozenset(
    {
        ResultCode.NETWORK_FAILURE,
        ResultCode.NO_RESOURCES,
        ResultCode.USER_EX_QUOTA,
        ResultCode.CANNOT_PROVIDE_EXTERNAL,
        ResultCode.EXCESSIVE_REMOTE_PEERS,
    }
)
_LONG_ERROR_LIFETIME_S = 30 * 60
_SHORT_ERROR_LIFETIME_S = 30


def suggested_error_lifetime_s(result_code: int) -> int:
    """The Lifetime to put in an error response: how long the client should expect it to hold."""
    if result_code == ResultCode.SUCCESS:
        raise ValueError("SUCCESS is not an error")
    if result_code in _SHORT_LIFETIME_ERRORS:
        return _SHORT_ERROR_LIFETIME_S
    return _LONG_ERROR_LIFETIME_S


# RFC 6887 §7.1, request header (24 octets):
#  | Version = 2 |R| Opcode | Reserved (16) |
#  | Requested Lifetime (32) |
#  | PCP Client's IP Address (128) |
_REQUEST_HEADER = struct.Struct("!BBHI16s")
# RFC 6887 §7.2, response header (24 octets):
#  | Version = 2 |R| Opcode | Reserved (8) | Result Code (8) |
#  | Lifetime (32) | Epoch Time (32) | Reserved (96) |
_RESPONSE_HEADER = struct.Struct("!BBBBII12x")
# RFC 6887 §11.1, MAP opcode data (36 octets, same layout in request and response):
#  | Mapping Nonce (96) | Protocol (8) | Reserved (24) |
#  | Internal Port (16) | Suggested/Assigned External Port (16) |
#  | Suggested/Assigned External IP Address (128) |
_MAP_DATA = struct.Struct("!12sB3xHH16s")
# RFC 6887 §12.1, PEER opcode data (56 octets): the MAP layout, then
#  | Remote Peer Port (16) | Reserved (16) | Remote Peer IP Address (128) |
_PEER_DATA = struct.Struct("!12sB3xHH16sH2x16s")
# RFC 6887 §7.3, option header: | Option Code (8) | Reserved (8) | Option Length (16) |
_OPTION_HEADER = struct.Struct("!BBH")
# RFC 6887 §13.3, FILTER data: | Reserved (8) | Prefix Length (8) | Remote Peer Port (16) |
#  | Remote Peer IP Address (128) |
_FILTER_DATA = struct.Struct("!xBH16s")
_THIRD_PARTY_LENGTH = 16

_KNOWN_OPCODES = frozenset(int(code) for code in Opcode)
_KNOWN_OPTIONS = frozenset(int(code) for code in OptionCode)

# Which options each opcode may carry (RFC 6887 §13.1-13.3).
_OPTIONS_ALLOWED: dict[int, frozenset[int]] = {
    Opcode.ANNOUNCE: frozenset(),
    Opcode.MAP: frozenset({OptionCode.THIRD_PARTY, OptionCode.PREFER_FAILURE, OptionCode.FILTER}),
    Opcode.PEER: frozenset({OptionCode.THIRD_PARTY}),
}


# --- addresses -------------------------------------------------------------------------------


def _address_from_wire(raw: bytes) -> IPAddress:
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return mapped if mapped is not None else address


def _address_to_wire(address: IPAddress) -> bytes:
    if isinstance(address, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + address.packed
    return address.packed


def _canonical_address(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _check_address(name: str, address: IPAddress) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(f"{name}: give IPv4 addresses as IPv4Address, not {address}")


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must fit {bits} bits, not {value}")


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    """A FILTER option (RFC 6887 §13.3): admit only this remote prefix and port (0 = any).

    ``prefix_length`` counts bits of the 128-bit (IPv4-mapped for IPv4) address, so an IPv4
    /24 is ``prefix_length=120``; 0 means "no filter, remove previous filters".
    """

    prefix_length: int
    remote_peer_port: int
    remote_peer_address: IPAddress

    def __post_init__(self) -> None:
        _check_uint("remote_peer_port", self.remote_peer_port, 16)
        _check_address("remote_peer_address", self.remote_peer_address)
        if not 0 <= self.prefix_length <= 128:
            raise ValueError(f"prefix_length must be 0..128, not {self.prefix_length}")
        if isinstance(self.remote_peer_address, ipaddress.IPv4Address) and (
            0 < self.prefix_length < 96
        ):
            raise ValueError("an IPv4-mapped filter prefix must be 96..128 bits (or 0)")


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    """ANNOUNCE (RFC 6887 §14.1): a client asking whether the server restarted."""

    client_address: IPAddress
    lifetime_s: int = 0

    def __post_init__(self) -> None:
        _check_address("client_address", self.client_address)
        _check_uint("lifetime_s", self.lifetime_s, 32)

    @property
    def opcode(self) -> Opcode:
        return Opcode.ANNOUNCE

    def reply(self, *, epoch_s: int, result_code: int = ResultCode.SUCCESS) -> AnnounceResponse:
        return AnnounceResponse(epoch_s=epoch_s, lifetime_s=0, result_code=result_code)


@dataclass(frozen=True, slots=True)
class MapRequest:
    """MAP (RFC 6887 §11): create, renew or (``lifetime_s == 0``) delete an inbound mapping.

    ``protocol`` is the IANA number (6 TCP, 17 UDP, 0 "all protocols");
    ``internal_port == 0`` means "all ports" (legal on deletes).
    """

    client_address: IPAddress
    lifetime_s: int
    nonce: bytes
    protocol: int
    internal_port: int
    suggested_external_port: int = 0
    suggested_external_address: IPAddress = _UNSPECIFIED_V4
    third_party: IPAddress | None = None
    prefer_failure: bool = False
    filters: tuple[Filter, ...] = ()

    def __post_init__(self) -> None:
        _check_address("client_address", self.client_address)
        _check_uint("lifetime_s", self.lifetime_s, 32)
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        _check_uint("protocol", self.protocol, 8)
        _check_uint("internal_port", self.internal_port, 16)
        _check_uint("suggested_external_port", self.suggested_external_port, 16)
        _check_address("suggested_external_address", self.suggested_external_address)
        if self.third_party is not None:
            _check_address("third_party", self.third_party)

    @property
    def opcode(self) -> Opcode:
        return Opcode.MAP

    @property
    def is_delete(self) -> bool:
        return self.lifetime_s == 0

    @property
    def mapped_address(self) -> IPAddress:
        """The internal host the mapping is for: the THIRD_PARTY address, else the client."""
        return self.third_party if self.third_party is not None else self.client_address

    def reply(
        self,
        *,
        epoch_s: int,
        lifetime_s: int,
        assigned_external_port: int,
        assigned_external_address: IPAddress,
        result_code: int = ResultCode.SUCCESS,
    ) -> MapResponse:
        """The response to this request, echoing nonce, protocol, port and processed options."""
        return MapResponse(
            result_code=result_code,
            lifetime_s=lifetime_s,
            epoch_s=epoch_s,
            nonce=self.nonce,
            protocol=self.protocol,
            internal_port=self.internal_port,
            assigned_external_port=assigned_external_port,
            assigned_external_address=assigned_external_address,
            third_party=self.third_party,
            prefer_failure=self.prefer_failure,
            filters=self.filters,
        )


@dataclass(frozen=True, slots=True)
class PeerRequest:
    """PEER (RFC 6887 §12): create or learn the mapping of an outbound flow."""

    client_address: IPAddress
    lifetime_s: int
    nonce: bytes
    protocol: int
    internal_port: int
    suggested_external_port: int
    suggested_external_address: IPAddress
    remote_peer_port: int
    remote_peer_address: IPAddress
    third_party: IPAddress | None = None

    def __post_init__(self) -> None:
        _check_address("client_address", self.client_address)
        _check_uint("lifetime_s", self.lifetime_s, 32)
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        _check_uint("protocol", self.protocol, 8)
        _check_uint("internal_port", self.internal_port, 16)
        _check_uint("suggested_external_port", self.suggested_external_port, 16)
        _check_address("suggested_external_address", self.suggested_external_address)
        _check_uint("remote_peer_port", self.remote_peer_port, 16)
        _check_address("remote_peer_address", self.remote_peer_address)
        if self.third_party is not None:
            _check_address("third_party", self.third_party)

    @property
    def opcode(self) -> Opcode:
        return Opcode.PEER

    def reply(
        self,
        *,
        epoch_s: int,
        lifetime_s: int,
        assigned_external_port: int,
        assigned_external_address: IPAddress,
        result_code: int = ResultCode.SUCCESS,
    ) -> PeerResponse:
        return PeerResponse(
            result_code=result_code,
            lifetime_s=lifetime_s,
            epoch_s=epoch_s,
            nonce=self.nonce,
            protocol=self.protocol,
            internal_port=self.internal_port,
            assigned_external_port=assigned_external_port,
            assigned_external_address=assigned_external_address,
            remote_peer_port=self.remote_peer_port,
            remote_peer_address=self.remote_peer_address,
            third_party=self.third_party,
        )


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    """ANNOUNCE response; sent unsolicited (multicast) when the epoch resets (RFC 6887 §14.1)."""

    epoch_s: int
    lifetime_s: int = 0
    result_code: int = ResultCode.SUCCESS

    def __post_init__(self) -> None:
        _check_uint("epoch_s", self.epoch_s, 32)
        _check_uint("lifetime_s", self.lifetime_s, 32)
        _check_uint("result_code", self.result_code, 8)

    @property
    def opcode(self) -> Opcode:
        return Opcode.ANNOUNCE


@dataclass(frozen=True, slots=True)
class MapResponse:
    """MAP response (RFC 6887 §11.2)."""

    result_code: int
    lifetime_s: int
    epoch_s: int
    nonce: bytes
    protocol: int
    internal_port: int
    assigned_external_port: int
    assigned_external_address: IPAddress
    third_party: IPAddress | None = None
    prefer_failure: bool = False
    filters: tuple[Filter, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("result_code", self.result_code, 8)
        _check_uint("lifetime_s", self.lifetime_s, 32)
        _check_uint("epoch_s", self.epoch_s, 32)
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        _check_uint("protocol", self.protocol, 8)
        _check_uint("internal_port", self.internal_port, 16)
        _check_uint("assigned_external_port", self.assigned_external_port, 16)
        _check_address("assigned_external_address", self.assigned_external_address)
        if self.third_party is not None:
            _check_address("third_party", self.third_party)

    @property
    def opcode(self) -> Opcode:
        return Opcode.MAP


@dataclass(frozen=True, slots=True)
class PeerResponse:
    """PEER response (RFC 6887 §12.2)."""

    result_code: int
    lifetime_s: int
    epoch_s: int
    nonce: bytes
    protocol: int
    internal_port: int
    assigned_external_port: int
    assigned_external_address: IPAddress
    remote_peer_port: int
    remote_peer_address: IPAddress
    third_party: IPAddress | None = None

    def __post_init__(self) -> None:
        _check_uint("result_code", self.result_code, 8)
        _check_uint("lifetime_s", self.lifetime_s, 32)
        _check_uint("epoch_s", self.epoch_s, 32)
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        _check_uint("protocol", self.protocol, 8)
        _check_uint("internal_port", self.internal_port, 16)
        _check_uint("assigned_external_port", self.assigned_external_port, 16)
        _check_address("assigned_external_address", self.assigned_external_address)
        _check_uint("remote_peer_port", self.remote_peer_port, 16)
        _check_address("remote_peer_address", self.remote_peer_address)
        if self.third_party is not None:
            _check_address("third_party", self.third_party)

    @property
    def opcode(self) -> Opcode:
        return Opcode.PEER


PcpRequest = AnnounceRequest | MapRequest | PeerRequest
PcpResponse = AnnounceResponse | MapResponse | PeerResponse


# --- options ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Options:
    third_party: IPAddress | None = None
    prefer_failure: bool = False
    filters: tuple[Filter, ...] = ()


def _malformed_option(message: str, opcode: int) -> RemoteProtocolError:
    return RemoteProtocolError(message, result_code=ResultCode.MALFORMED_OPTION, opcode=opcode)


def _parse_options(data: bytes, offset: int, opcode: int) -> _Options:
    """Read the options from ``offset`` to the end (RFC 6887 §7.3).

    Raises RemoteProtocolError with MALFORMED_OPTION, UNSUPP_OPTION or MALFORMED_REQUEST.
    """
    options = _Options()
    filters: list[Filter] = []
    seen: set[int] = set()
    while offset < len(data):
        if len(data) - offset < _OPTION_HEADER.size:
            raise _malformed_option("truncated option header", opcode)
        code, _, length = _OPTION_HEADER.unpack_from(data, offset)
        offset += _OPTION_HEADER.size
        padded = (length + 3) & ~3
        if padded > len(data) - offset:
            raise _malformed_option(f"option {code} longer than the message", opcode)
        body = data[offset : offset + length]
        offset += padded
        if code not in _KNOWN_OPTIONS:
            if code < 128:
                raise RemoteProtocolError(
                    f"unsupported mandatory option {code}",
                    result_code=ResultCode.UNSUPP_OPTION,
                    opcode=opcode,
                )
            continue  # optional to process: ignore it
        if code not in _OPTIONS_ALLOWED[opcode]:
            raise _malformed_option(f"option {code} is not valid for opcode {opcode}", opcode)
        if code in seen and code != OptionCode.FILTER:
            raise _malformed_option(f"option {code} repeated", opcode)
        seen.add(code)
        if code == OptionCode.THIRD_PARTY:
            if length != _THIRD_PARTY_LENGTH:
                raise _malformed_option("THIRD_PARTY length is not 16", opcode)
            options.third_party = _address_from_wire(body)
        elif code == OptionCode.PREFER_FAILURE:
            if length != 0:
                raise _malformed_option("PREFER_FAILURE length is not 0", opcode)
            options.prefer_failure = True
        else:
            if length != _FILTER_DATA.size:
                raise _malformed_option("FILTER length is not 20", opcode)
            prefix_length, port, raw_address = _FILTER_DATA.unpack(body)
            try:
                filters.append(Filter(prefix_length, port, _address_from_wire(raw_address)))
            except ValueError as error:
                raise _malformed_option(f"FILTER: {error}", opcode) from None
    options.filters = tuple(filters)
    return options


def _render_options(
    third_party: IPAddress | None, prefer_failure: bool, filters: tuple[Filter, ...]
) -> bytes:
    parts: list[bytes] = []
    if third_party is not None:
        parts.append(_OPTION_HEADER.pack(OptionCode.THIRD_PARTY, 0, _THIRD_PARTY_LENGTH))
        parts.append(_address_to_wire(third_party))
    if prefer_failure:
        parts.append(_OPTION_HEADER.pack(OptionCode.PREFER_FAILURE, 0, 0))
    for one in filters:
        parts.append(_OPTION_HEADER.pack(OptionCode.FILTER, 0, _FILTER_DATA.size))
        parts.append(
            _FILTER_DATA.pack(
                one.prefix_length, one.remote_peer_port, _address_to_wire(one.remote_peer_address)
            )
        )
    return b"".join(parts)


# --- requests --------------------------------------------------------------------------------


def _malformed_request(message: str, opcode: int | None) -> RemoteProtocolError:
    return RemoteProtocolError(message, result_code=ResultCode.MALFORMED_REQUEST, opcode=opcode)


def parse_request(data: bytes) -> PcpRequest:
    """Read one PCP request datagram (server role), applying RFC 6887 §8.3's checks in order.

    The caller dispatches on the first byte: version 0 is NAT-PMP (see ``natpmp``).

    Returns:
        An :class:`AnnounceRequest`, :class:`MapRequest` or :class:`PeerRequest`.

    Raises:
        RemoteProtocolError: ``result_code`` is the error to answer with via
            :func:`error_response`; ``None`` means drop silently (shorter than 2 octets, or a
            response: "If the R bit is set, the message is silently dropped").
    """
    if len(data) < 2:
        raise RemoteProtocolError("PCP datagram shorter than 2 octets")
    if data[1] & _R_BIT:
        raise RemoteProtocolError("PCP response received by the server")
    opcode = data[1] & _OPCODE_MASK
    if data[0] != VERSION:
        raise RemoteProtocolError(
            f"unsupported PCP version {data[0]}",
            result_code=ResultCode.UNSUPP_VERSION,
            opcode=opcode,
        )
    if len(data) > MAX_DATAGRAM_BYTES:
        raise _malformed_request("PCP request longer than 1100 octets", opcode)
    if len(data) < _REQUEST_HEADER.size or len(data) % 4:
        raise _malformed_request("PCP request not a multiple of 4 octets of at least 24", opcode)
    if opcode not in _KNOWN_OPCODES:
        raise RemoteProtocolError(
            f"unsupported PCP opcode {opcode}", result_code=ResultCode.UNSUPP_OPCODE, opcode=opcode
        )
    _, _, _, lifetime, raw_client = _REQUEST_HEADER.unpack_from(data)
    client = _address_from_wire(raw_client)
    offset = _REQUEST_HEADER.size
    if opcode == Opcode.ANNOUNCE:
        _parse_options(data, offset, opcode)
        return AnnounceRequest(client_address=client, lifetime_s=lifetime)
    if opcode == Opcode.MAP:
        if len(data) < offset + _MAP_DATA.size:
            raise _malformed_request("MAP request too short", opcode)
        nonce, protocol, internal, external, raw_external = _MAP_DATA.unpack_from(data, offset)
        options = _parse_options(data, offset + _MAP_DATA.size, opcode)
        # RFC 6887 §11.1: with Protocol 0 ("all protocols") the internal port must be 0;
        # a delete may name any port.
        if protocol == 0 and internal != 0 and lifetime != 0:
            raise _malformed_request("MAP for all protocols with a nonzero internal port", opcode)
        return MapRequest(
            client_address=client,
            lifetime_s=lifetime,
            nonce=nonce,
            protocol=protocol,
            internal_port=internal,
            suggested_external_port=external,
            suggested_external_address=_address_from_wire(raw_external),
            third_party=options.third_party,
            prefer_failure=options.prefer_failure,
            filters=options.filters,
        )
    if len(data) < offset + _PEER_DATA.size:
        raise _malformed_request("PEER request too short", opcode)
    (nonce, protocol, internal, external, raw_external, peer_port, raw_peer) = (
        _PEER_DATA.unpack_from(data, offset)
    )
    options = _parse_options(data, offset + _PEER_DATA.size, opcode)
    # RFC 6887 §12.1: a PEER names one flow; protocol, internal and remote ports are required.
    if protocol == 0 or internal == 0 or peer_port == 0:
        raise _malformed_request("PEER with a zero protocol or port", opcode)
    return PeerRequest(
        client_address=client,
        lifetime_s=lifetime,
        nonce=nonce,
        protocol=protocol,
        internal_port=internal,
        suggested_external_port=external,
        suggested_external_address=_address_from_wire(raw_external),
        remote_peer_port=peer_port,
        remote_peer_address=_address_from_wire(raw_peer),
        third_party=options.third_party,
    )


def verify_client_address(request: PcpRequest, source: IPAddress) -> None:
    """RFC 6887 §8.3: the PCP Client's IP Address must equal the packet's source address.

    Raises:
        RemoteProtocolError: ADDRESS_MISMATCH (a NAT between client and server).
    """
    if request.client_address != _canonical_address(source):
        raise RemoteProtocolError(
            f"client address {request.client_address} is not the source {source}",
            result_code=ResultCode.ADDRESS_MISMATCH,
            opcode=request.opcode,
        )


def render_request(request: PcpRequest) -> bytes:
    """The bytes of a request (client role)."""
    header = _REQUEST_HEADER.pack(
        VERSION, request.opcode, 0, request.lifetime_s, _address_to_wire(request.client_address)
    )
    if isinstance(request, AnnounceRequest):
        return header
    if isinstance(request, MapRequest):
        return (
            header
            + _MAP_DATA.pack(
                request.nonce,
                request.protocol,
                request.internal_port,
                request.suggested_external_port,
                _address_to_wire(request.suggested_external_address),
            )
            + _render_options(request.third_party, request.prefer_failure, request.filters)
        )
    return (
        header
        + _PEER_DATA.pack(
            request.nonce,
            request.protocol,
            request.internal_port,
            request.suggested_external_port,
            _address_to_wire(request.suggested_external_address),
            request.remote_peer_port,
            _address_to_wire(request.remote_peer_address),
        )
        + _render_options(request.third_party, False, ())
    )


# --- responses -------------------------------------------------------------------------------


def render_response(response: PcpResponse) -> bytes:
    """The bytes of a response (server role); also the unsolicited ANNOUNCE."""
    header = _RESPONSE_HEADER.pack(
        VERSION,
        _R_BIT | response.opcode,
        0,
        response.result_code,
        response.lifetime_s,
        response.epoch_s,
    )
    if isinstance(response, AnnounceResponse):
        return header
    if isinstance(response, MapResponse):
        return (
            header
            + _MAP_DATA.pack(
                response.nonce,
                response.protocol,
                response.internal_port,
                response.assigned_external_port,
                _address_to_wire(response.assigned_external_address),
            )
            + _render_options(response.third_party, response.prefer_failure, response.filters)
        )
    return (
        header
        + _PEER_DATA.pack(
            response.nonce,
            response.protocol,
            response.internal_port,
            response.assigned_external_port,
            _address_to_wire(response.assigned_external_address),
            response.remote_peer_port,
            _address_to_wire(response.remote_peer_address),
        )
        + _render_options(response.third_party, False, ())
    )


def error_response(request: bytes, result_code: int, *, lifetime_s: int, epoch_s: int) -> bytes:
    """An error response to the raw ``request`` datagram.

    Error responses have the success layout with the request's fields copied (RFC 6887 §8.3):
    the request (cut to 1100 octets, zero-padded to a multiple of 4 and at least 24) with the
    response header written over its first 24 octets. For UNSUPP_VERSION the version is ours
    (2), which tells the client what we speak (§9).
    """
    if result_code == ResultCode.SUCCESS:
        raise ValueError("an error response needs an error result code")
    _check_uint("result_code", result_code, 8)
    _check_uint("lifetime_s", lifetime_s, 32)
    _check_uint("epoch_s", epoch_s, 32)
    body = bytearray(request[:MAX_DATAGRAM_BYTES])
    body.extend(b"\x00" * (-len(body) % 4))
    if len(body) < _RESPONSE_HEADER.size:
        body.extend(b"\x00" * (_RESPONSE_HEADER.size - len(body)))
    opcode = body[1] & _OPCODE_MASK
    _RESPONSE_HEADER.pack_into(
        body, 0, VERSION, _R_BIT | opcode, 0, result_code, lifetime_s, epoch_s
    )
    return bytes(body)


def parse_response(data: bytes) -> PcpResponse:
    """Read one PCP response datagram (client role).

    Raises:
        RemoteProtocolError: not a well-formed PCP response (always silent).
    """
    try:
        return _parse_response(data)
    except RemoteProtocolError as error:
        raise RemoteProtocolError(error.message) from None


def _parse_response(data: bytes) -> PcpResponse:
    if len(data) > MAX_DATAGRAM_BYTES:
        raise RemoteProtocolError("PCP response longer than 1100 octets")
    if len(data) < _RESPONSE_HEADER.size or len(data) % 4:
        raise RemoteProtocolError("PCP response not a multiple of 4 octets of at least 24")
    version, r_opcode, _, result_code, lifetime, epoch = _RESPONSE_HEADER.unpack_from(data)
    if version != VERSION:
        raise RemoteProtocolError(f"PCP response with version {version}")
    if not r_opcode & _R_BIT:
        raise RemoteProtocolError("PCP request received by the client")
    opcode = r_opcode & _OPCODE_MASK
    offset = _RESPONSE_HEADER.size
    if opcode == Opcode.ANNOUNCE:
        _parse_options(data, offset, opcode)
        return AnnounceResponse(epoch_s=epoch, lifetime_s=lifetime, result_code=result_code)
    if opcode == Opcode.MAP:
        if len(data) < offset + _MAP_DATA.size:
            raise RemoteProtocolError("MAP response too short")
        nonce, protocol, internal, external, raw_external = _MAP_DATA.unpack_from(data, offset)
        options = _parse_options(data, offset + _MAP_DATA.size, opcode)
        return MapResponse(
            result_code=result_code,
            lifetime_s=lifetime,
            epoch_s=epoch,
            nonce=nonce,
            protocol=protocol,
            internal_port=internal,
            assigned_external_port=external,
            assigned_external_address=_address_from_wire(raw_external),
            third_party=options.third_party,
            prefer_failure=options.prefer_failure,
            filters=options.filters,
        )
    if opcode == Opcode.PEER:
        if len(data) < offset + _PEER_DATA.size:
            raise RemoteProtocolError("PEER response too short")
        (nonce, protocol, internal, external, raw_external, peer_port, raw_peer) = (
            _PEER_DATA.unpack_from(data, offset)
        )
        options = _parse_options(data, offset + _PEER_DATA.size, opcode)
        return PeerResponse(
            result_code=result_code,
            lifetime_s=lifetime,
            epoch_s=epoch,
            nonce=nonce,
            protocol=protocol,
            internal_port=internal,
            assigned_external_port=external,
            assigned_external_address=_address_from_wire(raw_external),
            remote_peer_port=peer_port,
            remote_peer_address=_address_from_wire(raw_peer),
            third_party=options.third_party,
        )
    raise RemoteProtocolError(f"PCP response with unknown opcode {opcode}")
