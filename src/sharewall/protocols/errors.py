"""The one exception the protocol cores raise on bad input, carrying the reply it implies.

Contract (h11's): every parser in ``sharewall.protocols`` either returns a value or raises
:class:`RemoteProtocolError`. Any other exception escaping a parser is a bug.

The error says how to answer, so the asyncio adapter needs no protocol knowledge:

* ``result_code`` (NAT-PMP/PCP): answer with this result code; ``None`` means drop silently.
* ``opcode`` (NAT-PMP/PCP): the request's opcode, for building the error response.
* ``upnp_error`` (SOAP/IGD): answer with a UPnP fault carrying this ``errorCode`` (HTTP 500).
* ``http_status`` (SOAP/GENA): answer with this bare HTTP status (no SOAP fault).

When none of them is set (e.g. SSDP garbage), the adapter drops the input silently.

Pure: no I/O.
"""

from __future__ import annotations


class RemoteProtocolError(Exception):
    """The peer sent something we will not act on."""

    def __init__(
        self,
        message: str,
        *,
        result_code: int | None = None,
        opcode: int | None = None,
        upnp_error: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.result_code = result_code
        self.opcode = opcode
        self.upnp_error = upnp_error
        self.http_status = http_status

    @property
    def is_silent(self) -> bool:
        """True when the input deserves no answer at all (drop it)."""
        return self.result_code is None and self.upnp_error is None and self.http_status is None

    def __repr__(self) -> str:
        hints = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("result_code", self.result_code),
                ("opcode", self.opcode),
                ("upnp_error", self.upnp_error),
                ("http_status", self.http_status),
            )
            if value is not None
        )
        return f"RemoteProtocolError({self.message!r}{', ' if hints else ''}{hints})"
