"""PCP codec (RFC 6887): golden vectors from the RFC layouts, round trips, the parser invariant."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharewall.protocols import pcp
from sharewall.protocols._limits import MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError

NONCE = bytes(range(1, 13))
CLIENT = ipaddress.IPv4Address("192.168.137.5")
MAPPED_CLIENT = bytes.fromhex("00000000000000000000ffff c0a88905")
MAPPED_ANY = bytes.fromhex("00000000000000000000ffff 00000000")

# RFC 6887 §7.1 + §11.1: MAP, lifetime 3600, TCP 8080 -> suggested 8080, no suggested address.
MAP_REQUEST = (
    bytes.fromhex("02 01 0000 00000e10")
    + MAPPED_CLIENT
    + NONCE
    + bytes.fromhex("06 000000 1f90 1f90")
    + MAPPED_ANY
)
# §7.3 options: THIRD_PARTY (1, length 16), PREFER_FAILURE (2, length 0), FILTER (3, length 20).
THIRD_PARTY = bytes.fromhex("01 00 0010 00000000000000000000ffff c0a88909")
PREFER_FAILURE = bytes.fromhex("02 00 0000")
FILTER_24 = bytes.fromhex("03 00 0014 00 78 0000 00000000000000000000ffff cb007100")


def map_request(**changes: object) -> pcp.MapRequest:
    fields: dict[str, object] = {
        "client_address": CLIENT,
        "lifetime_s": 3600,
        "nonce": NONCE,
        "protocol": 6,
        "internal_port": 8080,
        "suggested_external_port": 8080,
    }
    fields.update(changes)
    return pcp.MapRequest(**fields)  # type: ignore[arg-type]


def reject(data: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        pcp.parse_request(data)
    return caught.value


def test_map_request_golden() -> None:
    assert len(MAP_REQUEST) == 60
    assert pcp.parse_request(MAP_REQUEST) == map_request()
    assert pcp.render_request(map_request()) == MAP_REQUEST


def test_map_request_with_options_golden() -> None:
    data = MAP_REQUEST + THIRD_PARTY + PREFER_FAILURE + FILTER_24
    expected = map_request(
        third_party=ipaddress.IPv4Address("192.168.137.9"),
        prefer_failure=True,
        filters=(pcp.Filter(120, 0, ipaddress.IPv4Address("203.0.113.0")),),
    )
    assert pcp.parse_request(data) == expected
    assert pcp.render_request(expected) == data
    assert expected.mapped_address == ipaddress.IPv4Address("192.168.137.9")


def test_map_response_golden() -> None:
    reply = map_request().reply(
        epoch_s=7,
        lifetime_s=3600,
        assigned_external_port=8080,
        assigned_external_address=ipaddress.IPv4Address("203.0.113.9"),
    )
    assert pcp.render_response(reply) == (
        bytes.fromhex("02 81 00 00 00000e10 00000007")
        + b"\x00" * 12
        + NONCE
        + bytes.fromhex("06 000000 1f90 1f90 00000000000000000000ffff cb007109")
    )


def test_announce_round_trip_and_unsolicited_response() -> None:
    request = pcp.AnnounceRequest(client_address=CLIENT)
    assert pcp.render_request(request) == bytes.fromhex("02 00 0000 00000000") + MAPPED_CLIENT
    assert pcp.parse_request(pcp.render_request(request)) == request
    announce = request.reply(epoch_s=0)
    assert pcp.render_response(announce) == bytes.fromhex("02 80 00 00") + b"\x00" * 20


def test_peer_round_trip() -> None:
    peer = pcp.PeerRequest(
        client_address=ipaddress.IPv6Address("2001:db8::5"),
        lifetime_s=120,
        nonce=NONCE,
        protocol=17,
        internal_port=5000,
        suggested_external_port=0,
        suggested_external_address=ipaddress.IPv6Address("::"),
        remote_peer_port=3478,
        remote_peer_address=ipaddress.IPv4Address("198.51.100.1"),
    )
    data = pcp.render_request(peer)
    assert len(data) == 24 + 56
    assert pcp.parse_request(data) == peer


@pytest.mark.parametrize("data", [b"", b"\x02", b"\x02\x81" + b"\x00" * 58])
def test_dropped_silently(data: bytes) -> None:
    """Shorter than 2 octets, or the R bit set (RFC 6887 §8.3)."""
    assert reject(data).is_silent


def test_unsupported_version_answers_with_our_version() -> None:
    data = b"\x01" + MAP_REQUEST[1:]
    error = reject(data)
    assert error.result_code == pcp.ResultCode.UNSUPP_VERSION
    reply = pcp.error_response(data, error.result_code, lifetime_s=1800, epoch_s=5)
    assert reply[:4] == bytes.fromhex("02 81 00 01")
    assert reply[24:] == MAP_REQUEST[24:]


@pytest.mark.parametrize(
    "data",
    [
        MAP_REQUEST[:23],  # shorter than the common header
        MAP_REQUEST + b"\x00",  # not a multiple of 4
        MAP_REQUEST[:56],  # MAP opcode data cut short
        MAP_REQUEST + b"\x00" * (MAX_DATAGRAM_BYTES + 4 - len(MAP_REQUEST)),  # 1104 octets
        # "all protocols" with an internal port on a non-delete
        MAP_REQUEST[:36] + b"\x00" + MAP_REQUEST[37:],
    ],
)
def test_malformed_request(data: bytes) -> None:
    error = reject(data)
    assert error.result_code == pcp.ResultCode.MALFORMED_REQUEST
    reply = pcp.error_response(data, error.result_code, lifetime_s=1800, epoch_s=5)
    assert len(reply) % 4 == 0
    assert 24 <= len(reply) <= MAX_DATAGRAM_BYTES
    assert reply[1] & 0x80


def test_delete_for_all_protocols_may_name_a_port() -> None:
    data = MAP_REQUEST[:4] + b"\x00\x00\x00\x00" + MAP_REQUEST[8:36] + b"\x00" + MAP_REQUEST[37:]
    request = pcp.parse_request(data)
    assert isinstance(request, pcp.MapRequest)
    assert request.is_delete and request.protocol == 0


def test_unsupported_opcode() -> None:
    assert reject(b"\x02\x05" + MAP_REQUEST[2:]).result_code == pcp.ResultCode.UNSUPP_OPCODE


def test_unknown_mandatory_option_is_unsupp_option_and_optional_is_ignored() -> None:
    mandatory = bytes.fromhex("04 00 0004 deadbeef")
    assert reject(MAP_REQUEST + mandatory).result_code == pcp.ResultCode.UNSUPP_OPTION
    optional = bytes.fromhex("c8 00 0001 ff000000")  # code 200, 1 octet + 3 padding
    assert pcp.parse_request(MAP_REQUEST + optional) == map_request()


@pytest.mark.parametrize(
    "options",
    [
        bytes.fromhex("01 00 0010") + b"\x00" * 12,  # THIRD_PARTY longer than the message
        THIRD_PARTY + THIRD_PARTY,  # THIRD_PARTY twice
        PREFER_FAILURE + PREFER_FAILURE,
        bytes.fromhex("02 00 0004 00000000"),  # PREFER_FAILURE with data
        bytes.fromhex("01 00 0004 00000000"),  # THIRD_PARTY of the wrong length
        bytes.fromhex("03 00 0014 00 81 0000") + b"\x00" * 16,  # FILTER prefix 129
        bytes.fromhex("03 00 0014 00 20 0000") + MAPPED_ANY,  # IPv4 FILTER prefix 32 < 96
        bytes.fromhex("03 00 0010") + b"\x00" * 16,  # FILTER of the wrong length
    ],
)
def test_malformed_option(options: bytes) -> None:
    assert reject(MAP_REQUEST + options).result_code == pcp.ResultCode.MALFORMED_OPTION


def test_option_not_valid_for_the_opcode() -> None:
    announce = pcp.render_request(pcp.AnnounceRequest(client_address=CLIENT))
    assert reject(announce + THIRD_PARTY).result_code == pcp.ResultCode.MALFORMED_OPTION


def test_several_filters_are_kept_in_order() -> None:
    second = bytes.fromhex("03 00 0014 00 80 0035") + bytes.fromhex(
        "00000000000000000000ffff 08080808"
    )
    request = pcp.parse_request(MAP_REQUEST + FILTER_24 + second)
    assert isinstance(request, pcp.MapRequest)
    assert [f.remote_peer_port for f in request.filters] == [0, 53]


def test_verify_client_address() -> None:
    request = map_request()
    pcp.verify_client_address(request, CLIENT)
    pcp.verify_client_address(request, ipaddress.IPv6Address("::ffff:192.168.137.5"))
    with pytest.raises(RemoteProtocolError) as caught:
        pcp.verify_client_address(request, ipaddress.IPv4Address("192.168.137.6"))
    assert caught.value.result_code == pcp.ResultCode.ADDRESS_MISMATCH


def test_error_lifetimes() -> None:
    assert pcp.suggested_error_lifetime_s(pcp.ResultCode.NO_RESOURCES) == 30
    assert pcp.suggested_error_lifetime_s(pcp.ResultCode.MALFORMED_REQUEST) == 1800
    with pytest.raises(ValueError, match="SUCCESS"):
        pcp.suggested_error_lifetime_s(pcp.ResultCode.SUCCESS)


def test_error_response_of_a_tiny_request_is_a_full_header() -> None:
    reply = pcp.error_response(
        b"\x02\x01", pcp.ResultCode.MALFORMED_REQUEST, lifetime_s=1, epoch_s=2
    )
    assert reply == bytes.fromhex("02 81 00 03 00000001 00000002") + b"\x00" * 12


def test_mapped_ipv6_values_are_refused_in_favour_of_ipv4() -> None:
    with pytest.raises(ValueError, match="IPv4Address"):
        map_request(client_address=ipaddress.IPv6Address("::ffff:192.168.137.5"))


def test_parse_response_rejects_requests_and_garbage() -> None:
    for data in (MAP_REQUEST, b"\x02\x81" + b"\x00" * 22, b"\x00" * 24):
        with pytest.raises(RemoteProtocolError) as caught:
            pcp.parse_response(data)
        assert caught.value.is_silent


# --- Hypothesis ------------------------------------------------------------------------------

ipv4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)).filter(
    lambda a: a.ipv4_mapped is None
)
addresses = ipv4 | ipv6
uint32 = st.integers(0, 2**32 - 1)
ports = st.integers(0, 0xFFFF)
nonces = st.binary(min_size=12, max_size=12)
filters = st.one_of(
    st.builds(pcp.Filter, st.integers(96, 128) | st.just(0), ports, ipv4),
    st.builds(pcp.Filter, st.integers(0, 128), ports, ipv6),
)
map_requests = st.builds(
    pcp.MapRequest,
    client_address=addresses,
    lifetime_s=uint32,
    nonce=nonces,
    protocol=st.integers(1, 255),
    internal_port=ports,
    suggested_external_port=ports,
    suggested_external_address=addresses,
    third_party=st.none() | addresses,
    prefer_failure=st.booleans(),
    filters=st.lists(filters, max_size=3).map(tuple),
)
peer_requests = st.builds(
    pcp.PeerRequest,
    client_address=addresses,
    lifetime_s=uint32,
    nonce=nonces,
    protocol=st.integers(1, 255),
    internal_port=st.integers(1, 0xFFFF),
    suggested_external_port=ports,
    suggested_external_address=addresses,
    remote_peer_port=st.integers(1, 0xFFFF),
    remote_peer_address=addresses,
    third_party=st.none() | addresses,
)
requests = st.one_of(
    st.builds(pcp.AnnounceRequest, client_address=addresses, lifetime_s=uint32),
    map_requests,
    peer_requests,
)
responses = st.one_of(
    st.builds(
        pcp.AnnounceResponse, epoch_s=uint32, lifetime_s=uint32, result_code=st.integers(0, 255)
    ),
    st.builds(
        pcp.MapResponse,
        result_code=st.integers(0, 255),
        lifetime_s=uint32,
        epoch_s=uint32,
        nonce=nonces,
        protocol=st.integers(0, 255),
        internal_port=ports,
        assigned_external_port=ports,
        assigned_external_address=addresses,
        third_party=st.none() | addresses,
        prefer_failure=st.booleans(),
        filters=st.lists(filters, max_size=3).map(tuple),
    ),
    st.builds(
        pcp.PeerResponse,
        result_code=st.integers(0, 255),
        lifetime_s=uint32,
        epoch_s=uint32,
        nonce=nonces,
        protocol=st.integers(0, 255),
        internal_port=ports,
        assigned_external_port=ports,
        assigned_external_address=addresses,
        remote_peer_port=ports,
        remote_peer_address=addresses,
        third_party=st.none() | addresses,
    ),
)


@settings(deadline=None)
@given(requests)
def test_request_round_trip(request: pcp.PcpRequest) -> None:
    data = pcp.render_request(request)
    assert len(data) % 4 == 0
    assert pcp.parse_request(data) == request


@settings(deadline=None)
@given(responses)
def test_response_round_trip(response: pcp.PcpResponse) -> None:
    assert pcp.parse_response(pcp.render_response(response)) == response


def check_parse_request(data: bytes) -> None:
    try:
        pcp.parse_request(data)
    except RemoteProtocolError as error:
        if error.result_code is not None:
            reply = pcp.error_response(data, error.result_code, lifetime_s=30, epoch_s=1)
            assert len(reply) % 4 == 0
            assert 24 <= len(reply) <= MAX_DATAGRAM_BYTES


@settings(deadline=None)
@given(st.binary(max_size=200) | st.binary(min_size=1090, max_size=1110))
def test_parse_request_returns_or_raises_protocol_error(data: bytes) -> None:
    check_parse_request(data)


@settings(deadline=None)
@given(st.sampled_from([b"\x02\x00", b"\x02\x01", b"\x02\x02"]), st.binary(max_size=160))
def test_parse_request_deep_fuzz(prefix: bytes, tail: bytes) -> None:
    """Valid version and opcode, arbitrary rest: reaches the opcode and option parsers."""
    data = prefix + tail
    check_parse_request(data + b"\x00" * (-len(data) % 4))


@settings(deadline=None)
@given(requests, st.binary(max_size=40))
def test_parse_request_with_appended_garbage(request: pcp.PcpRequest, tail: bytes) -> None:
    check_parse_request(pcp.render_request(request) + tail + b"\x00" * (-len(tail) % 4))


@settings(deadline=None)
@given(
    st.binary(max_size=200)
    | st.sampled_from([b"\x02\x80", b"\x02\x81", b"\x02\x82"]).flatmap(
        lambda prefix: st.binary(max_size=120).map(lambda tail: prefix + tail)
    )
)
def test_parse_response_returns_or_raises_protocol_error(data: bytes) -> None:
    try:
        pcp.parse_response(data)
    except RemoteProtocolError:
        pass
