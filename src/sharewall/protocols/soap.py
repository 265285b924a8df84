"""SOAP 1.1 as UPnP control uses it (UDA 1.1 §3): action requests in, responses and faults out.

Pure: no I/O. The HTTP framing is aiohttp's; this layer sits on it (as wsproto's handshake sits
on h11) and takes the POST body and the SOAPACTION header value.

Safety: the body size is checked before any parsing, and XML goes through
``defusedxml.ElementTree.fromstring`` with DTDs forbidden, so entity expansion (billion laughs)
and external entities (XXE) are refused before they are expanded or fetched. Everything we
render is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree

from sharewall.protocols._limits import (
    SOAP_MAX_ACTION_HEADER_CHARS,
    SOAP_MAX_ARGUMENT_CHARS,
    SOAP_MAX_ARGUMENTS,
    SOAP_MAX_BODY_BYTES,
)
from sharewall.protocols.errors import RemoteProtocolError

__all__ = [
    "CONTENT_TYPE",
    "FAULT_HTTP_STATUS",
    "SOAP_ENCODING_STYLE",
    "SOAP_ENVELOPE_NS",
    "UPNP_CONTROL_NS",
    "UPNP_ERROR_DESCRIPTIONS",
    "CData",
    "SoapAction",
    "escape_text",
    "parse_request",
    "parse_response",
    "parse_soap_action_header",
    "render_fault",
    "render_request",
    "render_response",
    "soap_action_header",
]

SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENCODING_STYLE = "http://schemas.xmlsoap.org/soap/encoding/"
UPNP_CONTROL_NS = "urn:schemas-upnp-org:control-1-0"
CONTENT_TYPE = 'text/xml; charset="utf-8"'
#: UDA 1.1 §3.2.2: a UPnP error is sent as "HTTP/1.1 500 Internal Server Error".
FAULT_HTTP_STATUS = 500

#: Standard descriptions (UDA 1.1 §3.2.2 table; IGD error tables; seed-system.md §6.3).
UPNP_ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "Invalid Action",
    402: "Invalid Args",
    403: "Out of Sync",
    404: "Invalid Var",
    501: "Action Failed",
    600: "Argument Value Invalid",
    601: "Argument Value Out of Range",
    602: "Optional Action Not Implemented",
    603: "Out of Memory",
    604: "Human Intervention Required",
    605: "String Argument Too Long",
    606: "Action not authorized",
    713: "SpecifiedArrayIndexInvalid",
    714: "NoSuchEntryInArray",
    715: "WildCardNotPermittedInSrcIP",
    716: "WildCardNotPermittedInExtPort",
    718: "ConflictInMappingEntry",
    724: "SamePortValuesRequired",
    725: "OnlyPermanentLeasesSupported",
    726: "RemoteHostOnlySupportsWildcard",
    727: "ExternalPortOnlySupportsWildcard",
    728: "NoPortMapsAvailable",
    729: "ConflictWithOtherMechanisms",
    730: "PortMappingNotFound",
    731: "ReadOnly",
    732: "WildCardNotPermittedInIntPort",
    733: "InconsistentParameters",
}

# Names we put in element tags: a conservative subset of XML Name.
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
# XML 1.0 §2.2 Char: what may appear in a document at all (even escaped).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SERVICE_TYPE = re.compile(r"urn:[A-Za-z0-9][-A-Za-z0-9.:_]{0,254}")


class CData(str):
    """An argument value sent as a CDATA section rather than escaped text.

    For values that are themselves XML (``NewPortListing``): miniupnpc's small XML reader does
    not decode entities, so miniupnpd sends such values as CDATA and so do we.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SoapAction:
    """One control request: which service, which action, with which ``In`` arguments."""

    service_type: str
    action: str
    arguments: dict[str, str]


# --- helpers ---------------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """Escape character data, replacing what XML 1.0 cannot carry at all."""
    # A literal CR would be normalised to LF by the reader (XML 1.0 §2.11); a reference keeps it.
    return escape(_NOT_XML_CHAR.sub("\ufffd", value), {"\r": "&#13;"})


def _name(value: str) -> str:
    if not _XML_NAME.fullmatch(value):
        raise ValueError(f"not a usable XML element name: {value!r}")
    return value


def _split_tag(tag: object) -> tuple[str | None, str]:
    """``{ns}local`` → (ns, local); comments and processing instructions have non-str tags."""
    if not isinstance(tag, str):
        return None, ""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _elements(parent: Element) -> list[Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _parse_xml(body: bytes) -> Element:
    """Parse untrusted XML; every failure becomes a RemoteProtocolError (HTTP 400)."""
    if len(body) > SOAP_MAX_BODY_BYTES:
        raise RemoteProtocolError("SOAP body too large", http_status=413)
    try:
        root: Element = defusedxml.ElementTree.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except (ParseError, ValueError, LookupError) as error:
        # defusedxml's DTDForbidden/EntitiesForbidden/ExternalReferenceForbidden are
        # ValueErrors; an unknown encoding declaration is a LookupError or ParseError.
        raise RemoteProtocolError(
            f"unacceptable XML: {type(error).__name__}", http_status=400
        ) from None
    return root


def _envelope_body(root: Element) -> Element:
    if _split_tag(root.tag)[1] != "Envelope":
        raise RemoteProtocolError("SOAP document is not an Envelope", http_status=400)
    for child in _elements(root):
        if _split_tag(child.tag)[1] == "Body":
            return child
    raise RemoteProtocolError("SOAP Envelope without a Body", http_status=400)


def _arguments(element: Element) -> dict[str, str]:
    """The child elements of an action (or response) element as name → text."""
    children = _elements(element)
    if len(children) > SOAP_MAX_ARGUMENTS:
        raise RemoteProtocolError("too many SOAP arguments", upnp_error=402)
    arguments: dict[str, str] = {}
    for child in children:
        name = _split_tag(child.tag)[1]
        if name in arguments:
            raise RemoteProtocolError(f"argument {name} given twice", upnp_error=402)
        if _elements(child):
            raise RemoteProtocolError(f"argument {name} is not a simple value", upnp_error=402)
        value = "".join(child.itertext())
        if len(value) > SOAP_MAX_ARGUMENT_CHARS:
            raise RemoteProtocolError(f"argument {name} too long", upnp_error=605)
        arguments[name] = value
    return arguments


# --- SOAPACTION ------------------------------------------------------------------------------


def parse_soap_action_header(value: str | None) -> tuple[str, str]:
    """Split ``"urn:…:service:WANIPConnection:1#AddPortMapping"`` into (service type, action).

    The quotes are required by UDA 1.1 but some control points leave them out; both are read.

    Raises:
        RemoteProtocolError: missing or malformed (UPnP error 401 Invalid Action).
    """
    if value is None:
        raise RemoteProtocolError("no SOAPACTION header", upnp_error=401)
    if len(value) > SOAP_MAX_ACTION_HEADER_CHARS:
        raise RemoteProtocolError("SOAPACTION header too long", upnp_error=401)
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    service_type, hash_sign, action = value.partition("#")
    if (
        not hash_sign
        or not _SERVICE_TYPE.fullmatch(service_type)
        or not _XML_NAME.fullmatch(action)
    ):
        raise RemoteProtocolError("malformed SOAPACTION header", upnp_error=401)
    return service_type, action


def soap_action_header(service_type: str, action: str) -> str:
    """The SOAPACTION header value for a request (control-point role)."""
    if not _SERVICE_TYPE.fullmatch(service_type):
        raise ValueError(f"not a service type: {service_type!r}")
    return f'"{service_type}#{_name(action)}"'


# --- device role -----------------------------------------------------------------------------


def parse_request(body: bytes, soap_action: str | None) -> SoapAction:
    """Read one control request (device role).

    Args:
        body: the whole HTTP POST body (the adapter has already capped its read).
        soap_action: the SOAPACTION header value, or None when absent.

    Returns:
        The action with its arguments by name (namespaces dropped, text as given; an empty
        element is ``""``).

    Raises:
        RemoteProtocolError: ``http_status`` 413 (too large) or 400 (not XML, DTD/entities,
            not a SOAP envelope): answer with that bare status; ``upnp_error`` 401 (header and
            body name different actions, or no header) or 402/605 (bad arguments): answer
            with :func:`render_fault`.
    """
    service_type, action = parse_soap_action_header(soap_action)
    body_element = _envelope_body(_parse_xml(body))
    calls = _elements(body_element)
    if len(calls) != 1:
        raise RemoteProtocolError("SOAP Body must hold exactly one action", upnp_error=401)
    namespace, local = _split_tag(calls[0].tag)
    # Some control points leave the action element unqualified; a wrong one is refused.
    if local != action or (namespace is not None and namespace != service_type):
        raise RemoteProtocolError("SOAP body does not match SOAPACTION", upnp_error=401)
    return SoapAction(service_type=service_type, action=action, arguments=_arguments(calls[0]))


def _envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0"?>\r\n'
        f'<s:Envelope xmlns:s="{SOAP_ENVELOPE_NS}" s:encodingStyle="{SOAP_ENCODING_STYLE}">'
        f"<s:Body>{inner}</s:Body></s:Envelope>\r\n"
    ).encode()


def _argument_elements(arguments: Sequence[tuple[str, str]] | Mapping[str, str]) -> str:
    pairs = arguments.items() if isinstance(arguments, Mapping) else arguments
    return "".join(f"<{_name(name)}>{_value(value)}</{name}>" for name, value in pairs)


def _value(value: str) -> str:
    if isinstance(value, CData):
        # "]]>" cannot occur inside a CDATA section: close and reopen around it.
        safe = _NOT_XML_CHAR.sub("\ufffd", value).replace("]]>", "]]]]><![CDATA[>")
        return f"<![CDATA[{safe}]]>"
    return escape_text(value)


def render_response(
    service_type: str, action: str, arguments: Sequence[tuple[str, str]] | Mapping[str, str] = ()
) -> bytes:
    """A successful action response (HTTP 200), ``Out`` arguments in the order given."""
    return _envelope(
        f"<u:{_name(action)}Response xmlns:u={quoteattr(service_type)}>"
        f"{_argument_elements(arguments)}</u:{action}Response>"
    )


def render_fault(upnp_error: int, description: str | None = None) -> bytes:
    """A UPnP error as a SOAP fault (UDA 1.1 §3.2.2), sent with :data:`FAULT_HTTP_STATUS`."""
    if description is None:
        description = UPNP_ERROR_DESCRIPTIONS.get(upnp_error, "Action Failed")
    return _envelope(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        f'<detail><UPnPError xmlns="{UPNP_CONTROL_NS}">'
        f"<errorCode>{int(upnp_error)}</errorCode>"
        f"<errorDescription>{escape_text(description)}</errorDescription>"
        "</UPnPError></detail></s:Fault>"
    )


# --- control-point role ----------------------------------------------------------------------


def render_request(
    service_type: str, action: str, arguments: Sequence[tuple[str, str]] | Mapping[str, str] = ()
) -> tuple[bytes, str]:
    """An action request: (body, SOAPACTION header value)."""
    header = soap_action_header(service_type, action)
    body = _envelope(
        f"<u:{action} xmlns:u={quoteattr(service_type)}>"
        f"{_argument_elements(arguments)}</u:{action}>"
    )
    return body, header


def parse_response(body: bytes, service_type: str, action: str) -> dict[str, str]:
    """Read an action response (control-point role).

    Returns:
        The ``Out`` arguments by name.

    Raises:
        RemoteProtocolError: a UPnP fault (``upnp_error`` is its errorCode, ``message`` its
            description), or not a response to ``action``.
    """
    body_element = _envelope_body(_parse_xml(body))
    calls = _elements(body_element)
    if len(calls) != 1:
        raise RemoteProtocolError("SOAP Body must hold exactly one element")
    namespace, local = _split_tag(calls[0].tag)
    if local == "Fault":
        code, description = None, "UPnPError"
        for element in calls[0].iter():
            tag = _split_tag(element.tag)[1]
            text = "".join(element.itertext()).strip()
            if tag == "errorCode" and text.isascii() and text.isdigit() and len(text) <= 6:
                code = int(text)
            elif tag == "errorDescription":
                description = text
        raise RemoteProtocolError(description, upnp_error=code if code is not None else 501)
    if local != f"{action}Response" or (namespace is not None and namespace != service_type):
        raise RemoteProtocolError(f"not a {action} response")
    try:
        return _arguments(calls[0])
    except RemoteProtocolError as error:
        raise RemoteProtocolError(error.message) from None
