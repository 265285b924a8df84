"""SSDP: M-SEARCH parsing (real upnpc bytes), target matching, rendering, the parser invariant."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharewall.protocols import ssdp
from sharewall.protocols._limits import SSDP_MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError

# What Debian's upnpc (miniupnpc 2.2.4) multicast, captured in a test namespace with
# `upnpc -m <addr> -l`: one M-SEARCH per search target, in this order.
UPNPC_SEARCHES = [
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 2\r\n\r\n',
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b"ST: urn:schemas-upnp-org:service:WANIPConnection:1\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 2\r\n\r\n',
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b"ST: urn:schemas-upnp-org:service:WANPPPConnection:1\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 2\r\n\r\n',
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b"ST: upnp:rootdevice\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 2\r\n\r\n',
]
PEER = ("192.168.137.20", 34206)
ROOT, WAN, WANC = (
    "5f3b2a10-0000-4000-8000-000000000001",
    "5f3b2a10-0000-4000-8000-000000000002",
    "5f3b2a10-0000-4000-8000-000000000003",
)
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice"
LOCATION = "http://192.168.137.1:5000/rootDesc.xml"


def device(igd_version: int = 1, **changes: object) -> ssdp.SsdpDevice:
    fields: dict[str, object] = {
        "root_uuid": ROOT,
        "wan_device_uuid": WAN,
        "wan_connection_device_uuid": WANC,
        "server": "Linux UPnP/1.1 sharewall/0.1",
        "igd_version": igd_version,
        "boot_id": 3,
        "config_id": 1,
    }
    fields.update(changes)
    return ssdp.SsdpDevice(**fields)  # type: ignore[arg-type]


def test_upnpc_searches_parse() -> None:
    targets = [ssdp.parse_msearch(data, PEER).search_target for data in UPNPC_SEARCHES]
    assert targets == [
        f"{IGD}:1",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
        "upnp:rootdevice",
    ]
    search = ssdp.parse_msearch(UPNPC_SEARCHES[0], PEER)
    assert search.mx_s == 2
    assert search.peer == PEER


def test_upnpc_searches_get_answers_except_ppp() -> None:
    answered = [
        bool(ssdp.search_matches(ssdp.parse_msearch(d, PEER).search_target, device()))
        for d in UPNPC_SEARCHES
    ]
    assert answered == [True, True, False, True]


def test_render_msearch_matches_upnpc_bytes() -> None:
    assert ssdp.render_msearch(f"{IGD}:1", mx_s=2) == UPNPC_SEARCHES[0]


@pytest.mark.parametrize(("mx", "clamped"), [("0", 1), ("1", 1), ("3", 3), ("5", 5), ("120", 5)])
def test_mx_is_clamped(mx: str, clamped: int) -> None:
    data = f'M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\nMX: {mx}\r\n\r\n'
    assert ssdp.parse_msearch(data.encode(), PEER).mx_s == clamped


def test_unicast_search_without_mx_is_answered_at_once() -> None:
    data = b'M-SEARCH * HTTP/1.1\r\nHOST: 192.168.137.1:1900\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\n\r\n'
    assert ssdp.parse_msearch(data, PEER, multicast=False).mx_s is None
    with pytest.raises(RemoteProtocolError):
        ssdp.parse_msearch(data, PEER)


def test_lenient_forms_are_read() -> None:
    """Bare LF line ends, lower-case names, unquoted MAN, no final blank line."""
    data = b"M-SEARCH * HTTP/1.1\nst: upnp:rootdevice\nman: ssdp:discover\nmx: 1\nuser-agent: x/1"
    search = ssdp.parse_msearch(data, PEER)
    assert (search.search_target, search.mx_s, search.user_agent) == ("upnp:rootdevice", 1, "x/1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n",
        b'M-SEARCH / HTTP/1.1\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',
        b'M-SEARCH * HTTP/2\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',
        b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\nMX: 1\r\n\r\n",  # no MAN
        b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',  # no ST
        b'M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\nMX: -1\r\n\r\n',
        b'M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\nMAN: "ssdp:discover"\r\nMX: two\r\n\r\n',
        b'M-SEARCH * HTTP/1.1\r\nST: a\r\nST: b\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',
        b'M-SEARCH * HTTP/1.1\r\nST: a\x01b\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',
        b'M-SEARCH * HTTP/1.1\r\nBad Header: x\r\nST: a\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n',
        b"M-SEARCH * HTTP/1.1\r\n" + b"X-A: b\r\n" * 40 + b"\r\n",  # too many headers
        b"M-SEARCH * HTTP/1.1\r\nST: " + b"a" * 2000 + b"\r\n\r\n",  # line too long
        UPNPC_SEARCHES[0] + b"x" * SSDP_MAX_DATAGRAM_BYTES,  # datagram too long
        b"\xff\xfe * HTTP/1.1\r\n\r\n",
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        ssdp.parse_msearch(data, PEER)
    assert caught.value.is_silent


@pytest.mark.parametrize("port", [0, 19, 53, 1023])
def test_privileged_source_ports_are_refused(port: int) -> None:
    """Reflection guard: answers go to the source port, so never to well-known services."""
    with pytest.raises(RemoteProtocolError):
        ssdp.parse_msearch(UPNPC_SEARCHES[0], ("192.168.137.20", port))
    assert ssdp.parse_msearch(UPNPC_SEARCHES[0], ("192.168.137.20", 1900)).mx_s == 2


def test_matching_version_rule() -> None:
    """UDA 1.1: answer older versions of what we have, in the version asked for."""
    v2 = device(igd_version=2)
    assert ssdp.search_matches(f"{IGD}:1", v2) == [
        ssdp.SearchMatch(f"{IGD}:1", f"uuid:{ROOT}::{IGD}:1")
    ]
    assert ssdp.search_matches(f"{IGD}:2", v2)[0].target == f"{IGD}:2"
    assert ssdp.search_matches(f"{IGD}:2", device(igd_version=1)) == []
    assert ssdp.search_matches(f"{IGD}:3", v2) == []
    wanip2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
    assert ssdp.search_matches(wanip2, v2) == [ssdp.SearchMatch(wanip2, f"uuid:{WANC}::{wanip2}")]
    common = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
    assert ssdp.search_matches(common, v2)[0].usn == f"uuid:{WAN}::{common}"
    assert ssdp.search_matches("urn:schemas-upnp-org:device:WANDevice:2", v2)[0].usn.startswith(
        f"uuid:{WAN}::"
    )
    assert ssdp.search_matches("urn:schemas-upnp-org:device:WANConnectionDevice:1", v2)


def test_matching_uuid_rootdevice_and_unknown() -> None:
    d = device()
    assert ssdp.search_matches(f"uuid:{WANC}", d) == [
        ssdp.SearchMatch(f"uuid:{WANC}", f"uuid:{WANC}")
    ]
    assert ssdp.search_matches(f"uuid:{WANC.upper()}", d)
    assert ssdp.search_matches("uuid:00000000-0000-0000-0000-000000000000", d) == []
    assert ssdp.search_matches("upnp:rootdevice", d) == [
        ssdp.SearchMatch("upnp:rootdevice", f"uuid:{ROOT}::upnp:rootdevice")
    ]
    assert ssdp.search_matches("urn:schemas-upnp-org:device:MediaRenderer:1", d) == []
    assert ssdp.search_matches("urn:schemas-upnp-org:service:Layer3Forwarding:1", d)
    assert not ssdp.search_matches(
        "urn:schemas-upnp-org:service:Layer3Forwarding:1", device(layer3_forwarding=False)
    )


def test_ssdp_all_is_every_announcement() -> None:
    """UDA 1.1 §1.2.2: 3 for the root device, 2 per embedded device, 1 per service type."""
    everything = ssdp.search_matches("ssdp:all", device())
    assert everything == ssdp.notification_targets(device())
    assert len(everything) == 3 + 2 * 2 + 3
    assert len({m.usn for m in everything}) == len(everything)


def test_search_response_golden() -> None:
    match = ssdp.search_matches(f"{IGD}:1", device())[0]
    assert ssdp.render_search_response(device(), match, location=LOCATION) == (
        b"HTTP/1.1 200 OK\r\n"
        b"CACHE-CONTROL: max-age=1800\r\n"
        b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
        b"USN: uuid:5f3b2a10-0000-4000-8000-000000000001::"
        b"urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
        b"EXT:\r\n"
        b"SERVER: Linux UPnP/1.1 sharewall/0.1\r\n"
        b"LOCATION: http://192.168.137.1:5000/rootDesc.xml\r\n"
        b'OPT: "http://schemas.upnp.org/upnp/1/0/"; ns=01\r\n'
        b"01-NLS: 3\r\n"
        b"BOOTID.UPNP.ORG: 3\r\n"
        b"CONFIGID.UPNP.ORG: 1\r\n"
        b"\r\n"
    )


def test_notify_alive_and_byebye() -> None:
    match = ssdp.notification_targets(device())[0]
    alive = ssdp.render_notify_alive(device(), match, location=LOCATION)
    assert alive.startswith(b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n")
    assert b"NTS: ssdp:alive\r\n" in alive and b"NT: upnp:rootdevice\r\n" in alive
    byebye = ssdp.render_notify_byebye(device(), match)
    assert b"NTS: ssdp:byebye\r\n" in byebye and b"LOCATION" not in byebye
    assert b"BOOTID.UPNP.ORG: 3\r\n" in byebye


def test_interop_async_upnp_client_decodes_our_messages() -> None:
    from async_upnp_client.ssdp import decode_ssdp_packet

    match = ssdp.search_matches(f"{IGD}:1", device())[0]
    response = ssdp.render_search_response(device(), match, location=LOCATION)
    start, headers = decode_ssdp_packet(response, None, ("192.168.137.1", 1900))
    assert start == "HTTP/1.1 200 OK"
    assert headers["location"] == LOCATION
    assert headers["usn"] == match.usn
    alive = ssdp.render_notify_alive(device(), match, location=LOCATION)
    start, headers = decode_ssdp_packet(alive, None, ("192.168.137.1", 1900))
    assert start == "NOTIFY * HTTP/1.1"
    assert headers["nts"] == "ssdp:alive"


def test_header_injection_is_impossible() -> None:
    match = ssdp.notification_targets(device())[0]
    with pytest.raises(ValueError, match="control character"):
        ssdp.render_search_response(device(), match, location="http://x/\r\nEVIL: 1")
    with pytest.raises(ValueError, match="bare UUIDs"):
        device(root_uuid=f"uuid:{ROOT}")
    with pytest.raises(ValueError, match="igd_version"):
        device(igd_version=3)


def test_search_response_round_trip_and_garbage() -> None:
    match = ssdp.search_matches("upnp:rootdevice", device())[0]
    parsed = ssdp.parse_search_response(
        ssdp.render_search_response(device(), match, location=LOCATION), ("192.168.137.1", 1900)
    )
    assert parsed == ssdp.SearchResponse(
        search_target="upnp:rootdevice",
        usn=match.usn,
        location=LOCATION,
        max_age_s=1800,
        server="Linux UPnP/1.1 sharewall/0.1",
        peer=("192.168.137.1", 1900),
    )
    for data in (UPNPC_SEARCHES[0], b"HTTP/1.1 200 OK\r\nST: a\r\n\r\n", b"HTTP/1.1 404 x\r\n\r\n"):
        with pytest.raises(RemoteProtocolError):
            ssdp.parse_search_response(data, PEER)


# --- Hypothesis ------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80)


@settings(deadline=None)
@given(header_text, st.none() | st.integers(1, 5))
def test_msearch_round_trip(search_target: str, mx_s: int | None) -> None:
    data = ssdp.render_msearch(search_target, mx_s=mx_s)
    search = ssdp.parse_msearch(data, PEER, multicast=mx_s is not None)
    assert search == ssdp.MSearch(search_target=search_target, mx_s=mx_s, peer=PEER)


@settings(deadline=None)
@given(st.binary(max_size=512))
def test_parse_msearch_returns_or_raises_protocol_error(data: bytes) -> None:
    try:
        ssdp.parse_msearch(data, PEER)
    except RemoteProtocolError:
        pass


@settings(deadline=None)
@given(
    st.lists(
        st.sampled_from(UPNPC_SEARCHES[0].split(b"\r\n")) | st.binary(max_size=30), max_size=12
    )
)
def test_parse_msearch_mutated_lines(lines: list[bytes]) -> None:
    data = b"\r\n".join(lines)
    for parser in (ssdp.parse_msearch, ssdp.parse_search_response):
        try:
            parser(data, PEER)
        except RemoteProtocolError:
            pass


@settings(deadline=None)
@given(st.text(max_size=120))
def test_search_matches_never_raises(search_target: str) -> None:
    for match in ssdp.search_matches(search_target, device(igd_version=2)):
        assert match.usn.startswith("uuid:")
