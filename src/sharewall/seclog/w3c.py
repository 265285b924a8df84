"""Render security log records as Windows Firewall writes ``pfirewall.log`` (W3C extended format).

Pure: no I/O. The only environment input is the time zone: pass ``tz``; ``None`` means the system's
local time, as ``#Time Format: Local`` promises.

Compatibility with existing log tools decides every detail below (seed-system.md §7.4):

* Header: the four directive lines byte-for-byte as Windows Firewall writes them, including
  ``#Software: Microsoft Windows Firewall``. We do not put our own name there because parsers
  identify the format by that line: plaso's ``winfirewall`` plugin, for one, only accepts a file
  whose header contains exactly ``#Software: Microsoft Windows Firewall``.
* One empty line follows the header, as Windows Firewall has written since Vista/7 (the samples in
  Microsoft's Azure Stack Edge docs and a Windows 7 capture show it). PowerShell tools commonly skip
  the first five lines of the file; regex and grammar parsers ignore the empty line.
* Seventeen fields, the ICF/Windows Firewall 1.5 set. Windows 10 appends a ``pid`` field; we have no
  process to name for forwarded packets, and the ``#Fields`` line says which fields follow.
* ``-`` for a missing value; every value is one token without spaces (anything outside printable
  ASCII becomes ``_``, so a line never splits or breaks an ASCII reader).
* ``protocol``: ``TCP``, ``UDP``, ``ICMP`` or the protocol number. ICMPv6 (58) is written ``ICMP``, as
  Windows does (a captured Windows log shows ``ICMP ::1 ff02::16 ... 143 0`` for an MLDv2 report);
  the addresses on the line tell v4 and v6 apart.
* Lines end with ``\\n``. Windows writes CRLF for Notepad; on Linux, ``tail``, ``grep`` and
  ``logrotate`` expect LF, and the parsers surveyed (plaso, PowerShell ``Get-Content``) accept both.
* ``date``/``time``: local ``YYYY-MM-DD`` and 24-hour ``HH:MM:SS``, truncated to the second.
"""

from __future__ import annotations

import datetime

from sharewall.seclog.record import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LogRecord,
)

__all__ = ["FIELDS", "HEADER", "MISSING", "protocol_name", "render_line"]

FIELDS: tuple[str, ...] = (
    "date",
    "time",
    "action",
    "protocol",
    "src-ip",
    "dst-ip",
    "src-port",
    "dst-port",
    "size",
    "tcpflags",
    "tcpsyn",
    "tcpack",
    "tcpwin",
    "icmptype",
    "icmpcode",
    "info",
    "path",
)

HEADER = (
    "#Version: 1.5\n"
    "#Software: Microsoft Windows Firewall\n"
    "#Time Format: Local\n"
    f"#Fields: {' '.join(FIELDS)}\n"
    "\n"
)

MISSING = "-"

_PROTOCOL_NAMES = {
    IPPROTO_TCP: "TCP",
    IPPROTO_UDP: "UDP",
    IPPROTO_ICMP: "ICMP",
    IPPROTO_ICMPV6: "ICMP",
}

# Printable ASCII without the space: the characters a field value may keep.
_TOKEN_CHARS = frozenset(chr(code) for code in range(0x21, 0x7F))


def protocol_name(protocol: int) -> str:
    """The ``protocol`` field for an IP protocol number: ``TCP``, ``UDP``, ``ICMP`` or the number."""
    return _PROTOCOL_NAMES.get(protocol, str(protocol))


def _token(value: str | int | None) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    if not value:
        return MISSING
    return "".join(ch if ch in _TOKEN_CHARS else "_" for ch in value)


def render_line(record: LogRecord, tz: datetime.tzinfo | None = None) -> str:
    """One body line of ``pfirewall.log`` for ``record``, ending with ``"\\n"``.

    Args:
        record: the event.
        tz: the zone for the ``date`` and ``time`` fields; ``None`` is the system's local time.

    Returns:
        The seventeen space-separated fields and a newline.

    Raises:
        ValueError: ``record.timestamp`` is outside the range the platform can convert to a date.
    """
    try:
        moment = datetime.datetime.fromtimestamp(record.timestamp, tz)
    except (OverflowError, OSError) as error:
        raise ValueError(f"timestamp out of range: {record.timestamp!r}") from error
    protocol = None if record.protocol is None else protocol_name(record.protocol)
    fields = (
        moment.strftime("%Y-%m-%d"),
        moment.strftime("%H:%M:%S"),
        str(record.action),
        _token(protocol),
        _token(record.src_ip),
        _token(record.dst_ip),
        _token(record.src_port),
        _token(record.dst_port),
        _token(record.size),
        _token(record.tcpflags),
        _token(record.tcpsyn),
        _token(record.tcpack),
        _token(record.tcpwin),
        _token(record.icmptype),
        _token(record.icmpcode),
        _token(record.info),
        _token(None if record.path is None else str(record.path)),
    )
    return " ".join(fields) + "\n"
