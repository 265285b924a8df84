"""NAT-PMP codec (RFC 6886): golden vectors from natpmpc, round trips, the parser invariant."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharewall.protocols import natpmp
from sharewall.protocols._limits import MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError

# Bytes the Debian natpmpc (libnatpmp 20150609) sent, captured in a test namespace:
#   natpmpc -g GW                         -> public address request
#   natpmpc -g GW -a 8080 18080 tcp 3600  -> map TCP, internal 18080, suggested external 8080
#   natpmpc -g GW -a 5000 0 udp 60        -> map UDP, internal 0, suggested external 5000
#   natpmpc -g GW -a 5000 0 udp 0         -> delete all UDP mappings of the client
NATPMPC_PUBLIC_ADDRESS = b"\x00\x00"
NATPMPC_MAP_TCP = b"\x00\x02\x00\x00F\xa0\x1f\x90\x00\x00\x0e\x10"
NATPMPC_MAP_UDP = b"\x00\x01\x00\x00\x00\x00\x13\x88\x00\x00\x00<"
NATPMPC_DELETE_UDP = b"\x00\x01\x00\x00\x00\x00\x13\x88\x00\x00\x00\x00"

ports = st.integers(0, 0xFFFF)
uint32 = st.integers(0, 0xFFFF_FFFF)
protocols = st.sampled_from([natpmp.IPPROTO_TCP, natpmp.IPPROTO_UDP])
map_requests = st.builds(
    natpmp.MapRequest,
    protocol=protocols,
    internal_port=ports,
    suggested_external_port=ports,
    lifetime_s=uint32,
)
requests = st.one_of(st.just(natpmp.PublicAddressRequest()), map_requests)
responses = st.one_of(
    st.builds(
        natpmp.PublicAddressResponse,
        epoch_s=uint32,
        public_address=st.builds(ipaddress.IPv4Address, uint32),
        result_code=st.integers(0, 0xFFFF),
    ),
    st.builds(
        natpmp.MapResponse,
        protocol=protocols,
        epoch_s=uint32,
        internal_port=ports,
        external_port=ports,
        lifetime_s=uint32,
        result_code=st.integers(0, 0xFFFF),
    ),
    st.builds(
        natpmp.ErrorResponse,
        opcode=st.integers(0, 0x7F),
        result_code=st.integers(0, 0xFFFF),
        epoch_s=uint32,
    ),
)


def test_natpmpc_public_address_request_parses() -> None:
    assert natpmp.parse_request(NATPMPC_PUBLIC_ADDRESS) == natpmp.PublicAddressRequest()


def test_natpmpc_map_requests_parse_and_render_identically() -> None:
    tcp = natpmp.MapRequest(natpmp.IPPROTO_TCP, 18080, 8080, 3600)
    udp = natpmp.MapRequest(natpmp.IPPROTO_UDP, 0, 5000, 60)
    delete = natpmp.MapRequest(natpmp.IPPROTO_UDP, 0, 5000, 0)
    for vector, request in ((NATPMPC_MAP_TCP, tcp), (NATPMPC_MAP_UDP, udp)):
        assert natpmp.parse_request(vector) == request
        assert natpmp.render_request(request) == vector
    assert natpmp.parse_request(NATPMPC_DELETE_UDP) == delete
    assert delete.is_delete


def test_response_golden_bytes() -> None:
    """The RFC 6886 §3.2/§3.3 layouts, byte by byte."""
    public = natpmp.PublicAddressResponse(7, ipaddress.IPv4Address("203.0.113.9"))
    assert natpmp.render_response(public) == bytes.fromhex("0080 0000 00000007 cb007109")
    request = natpmp.parse_request(NATPMPC_MAP_TCP)
    assert isinstance(request, natpmp.MapRequest)
    reply = request.reply(epoch_s=7, external_port=8080, lifetime_s=3600)
    assert natpmp.render_response(reply) == bytes.fromhex("0082 0000 00000007 46a0 1f90 00000e10")


def test_refusal_keeps_the_full_map_layout() -> None:
    request = natpmp.MapRequest(natpmp.IPPROTO_UDP, 5000, 5000, 60)
    reply = request.reply(epoch_s=1, result_code=natpmp.ResultCode.NOT_AUTHORIZED)
    assert natpmp.render_response(reply) == bytes.fromhex("0081 0002 00000001 1388 0000 00000000")


def test_unsupported_version_answers_result_1_with_response_opcode() -> None:
    """RFC 6886 §3.5 as corrected by erratum 3618: OP = 128 + request opcode."""
    with pytest.raises(RemoteProtocolError) as caught:
        natpmp.parse_request(b"\x01\x00")
    error = caught.value
    assert error.result_code == natpmp.ResultCode.UNSUPPORTED_VERSION
    assert error.opcode == 0
    assert natpmp.error_response(error.opcode, error.result_code, 9) == bytes.fromhex(
        "0080 0001 00000009"
    )


def test_unsupported_opcode_answers_result_5() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        natpmp.parse_request(b"\x00\x03" + b"\x00" * 10)
    assert caught.value.result_code == natpmp.ResultCode.UNSUPPORTED_OPCODE
    assert caught.value.opcode == 3
    assert natpmp.error_response(3, 5, 0) == bytes.fromhex("0083 0005 00000000")


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x00",
        b"\x00\x80",  # a response: "MUST silently ignore"
        b"\x00\x81" + b"\x00" * 14,
        NATPMPC_MAP_TCP[:11],  # map request too short
        b"\x00\x00" + b"\x00" * MAX_DATAGRAM_BYTES,  # oversized
    ],
)
def test_dropped_silently(datagram: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        natpmp.parse_request(datagram)
    assert caught.value.is_silent


def test_reserved_field_and_trailing_bytes_are_ignored() -> None:
    datagram = NATPMPC_MAP_TCP[:2] + b"\xff\xff" + NATPMPC_MAP_TCP[4:] + b"junk"
    assert natpmp.parse_request(datagram) == natpmp.parse_request(NATPMPC_MAP_TCP)


def test_epoch_seconds_wraps_and_never_goes_negative() -> None:
    assert natpmp.epoch_seconds(110.9, 100.0) == 10
    assert natpmp.epoch_seconds(5.0, 10.0) == 0
    assert natpmp.epoch_seconds(2.0**32 + 3, 0.0) == 3


def test_value_checks_reject_impossible_messages() -> None:
    with pytest.raises(ValueError, match="TCP"):
        natpmp.MapRequest(1, 1, 1, 1)
    with pytest.raises(ValueError, match="internal_port"):
        natpmp.MapRequest(natpmp.IPPROTO_TCP, 70000, 1, 1)
    with pytest.raises(ValueError, match="lifetime_s"):
        natpmp.MapResponse(natpmp.IPPROTO_TCP, 0, 1, 1, -1)


def test_interop_with_py_natpmp_codec() -> None:
    """py-natpmp's own request/response classes agree with ours (no sockets)."""
    import natpmp as py_natpmp  # the PyPI client, a test dependency

    theirs = py_natpmp.PortMapRequest(py_natpmp.NATPMP_PROTOCOL_TCP, 8000, 9000, 120).toBytes()
    assert natpmp.parse_request(theirs) == natpmp.MapRequest(natpmp.IPPROTO_TCP, 8000, 9000, 120)
    public = natpmp.PublicAddressResponse(42, ipaddress.IPv4Address("198.51.100.7"))
    parsed = py_natpmp.PublicAddressResponse(natpmp.render_response(public))
    assert (parsed.ip, parsed.sec_since_epoch, parsed.result) == ("198.51.100.7", 42, 0)
    mapped = natpmp.MapResponse(natpmp.IPPROTO_TCP, 42, 8000, 9001, 120)
    parsed_map = py_natpmp.PortMapResponse(natpmp.render_response(mapped))
    assert (parsed_map.private_port, parsed_map.public_port, parsed_map.lifetime) == (
        8000,
        9001,
        120,
    )
    assert parsed_map.opcode == 130


@settings(deadline=None)
@given(requests)
def test_request_round_trip(request: natpmp.NatPmpRequest) -> None:
    assert natpmp.parse_request(natpmp.render_request(request)) == request


@settings(deadline=None)
@given(responses)
def test_response_round_trip(response: natpmp.NatPmpResponse) -> None:
    assert natpmp.parse_response(natpmp.render_response(response)) == response


@settings(deadline=None)
@given(st.binary(max_size=64) | st.binary(min_size=1090, max_size=1110))
def test_parse_request_returns_or_raises_protocol_error(data: bytes) -> None:
    try:
        request = natpmp.parse_request(data)
    except RemoteProtocolError as error:
        if error.result_code is not None:
            assert error.opcode is not None
            assert len(natpmp.error_response(error.opcode, error.result_code, 0)) == 8
    else:
        assert isinstance(request, natpmp.PublicAddressRequest | natpmp.MapRequest)


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_parse_response_returns_or_raises_protocol_error(data: bytes) -> None:
    try:
        natpmp.parse_response(data)
    except RemoteProtocolError:
        pass
