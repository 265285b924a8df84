"""One event of the ICF security log (``pfirewall.log``), before it is rendered.

A :class:`LogRecord` holds the seventeen W3C fields of Windows Firewall's log (seed-system.md §7.4) as
typed values, plus the name of our connection the event belongs to (not a W3C field: it routes the
record to that connection's log file and is shown by ``sharewall log tail``). ``None`` means "no value";
the W3C renderer writes it as ``-``.

Pure: no I/O, no clock. Time is given by the producer (``timestamp``, epoch seconds).
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = [
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "LogAction",
    "LogPath",
    "LogRecord",
    "tcp_flags_text",
]

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58


class LogAction(enum.StrEnum):
    """The ``action`` field: what the firewall did (seed-system.md §7.4, "Field meanings")."""

    DROP = "DROP"  # incoming data dropped
    OPEN = "OPEN"  # outbound session opened
    OPEN_INBOUND = "OPEN-INBOUND"  # inbound session opened
    CLOSE = "CLOSE"  # session closed
    INFO_EVENTS_LOST = "INFO-EVENTS-LOST"  # events happened but were not recorded; info = count


class LogPath(enum.StrEnum):
    """The ``path`` field: the direction of a logged packet relative to the firewall host."""

    SEND = "SEND"
    RECEIVE = "RECEIVE"
    FORWARD = "FORWARD"  # routed through the gateway (ICS traffic), as later Windows versions write


# TCP header flag bits (RFC 9293 §3.1) and the letter Windows Firewall prints for each. Windows
# documents six flags, each "noted by the first letter of its name"; ECE and CWR are not logged.
# Order: alphabetical, which is what the documented samples show for multi-flag values ("AP", and
# "AR"/"AF" style values in the field); one Microsoft sample writes "FA", so parsers must not rely on
# the order, and none of the surveyed ones does (they read the value as one opaque word).
_TCP_FLAG_LETTERS: tuple[tuple[int, str], ...] = (
    (0x10, "A"),  # ACK
    (0x01, "F"),  # FIN
    (0x08, "P"),  # PSH
    (0x04, "R"),  # RST
    (0x02, "S"),  # SYN
    (0x20, "U"),  # URG
)


def tcp_flags_text(flags: int) -> str | None:
    """The Windows ``tcpflags`` letters for a TCP flags byte, e.g. ``0x18`` → ``"AP"``.

    Returns:
        The letters, or ``None`` when none of the six logged flags is set (rendered as ``-``).
    """
    text = "".join(letter for bit, letter in _TCP_FLAG_LETTERS if flags & bit)
    return text or None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One security log event. Field names follow the W3C ``#Fields`` line of ``pfirewall.log``.

    Attributes:
        timestamp: when it happened, epoch seconds (rendered in local time, to the second).
        action: what the firewall did.
        protocol: IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
        src_ip, dst_ip: textual IPv4 or IPv6 addresses.
        src_port, dst_port: TCP/UDP ports; ``None`` for other protocols.
        size: IP packet length in bytes (Windows logs it for dropped packets only).
        tcpflags: Windows flag letters, e.g. ``"S"`` or ``"AP"`` (see :func:`tcp_flags_text`).
        tcpsyn: TCP sequence number.
        tcpack: TCP acknowledgement number (the raw field, also when ACK is not set, as Windows does).
        tcpwin: TCP window.
        icmptype, icmpcode: ICMP or ICMPv6 type and code.
        info: free text without spaces; for ``INFO-EVENTS-LOST`` the number of lost events.
        path: direction of the packet.
        connection: the sharewall connection name the event belongs to (not written to the file).
    """

    timestamp: float
    action: LogAction
    protocol: int | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    size: int | None = None
    tcpflags: str | None = None
    tcpsyn: int | None = None
    tcpack: int | None = None
    tcpwin: int | None = None
    icmptype: int | None = None
    icmpcode: int | None = None
    info: str | None = None
    path: LogPath | None = None
    connection: str = ""

    @classmethod
    def events_lost(cls, count: int, *, timestamp: float, connection: str = "") -> LogRecord:
        """An ``INFO-EVENTS-LOST`` record: ``count`` events were seen but could not be logged."""
        return cls(
            timestamp=timestamp,
            action=LogAction.INFO_EVENTS_LOST,
            info=str(count),
            connection=connection,
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (for ``sharewall log tail --json`` and the API stream)."""
        data = dataclasses.asdict(self)
        data["action"] = str(self.action)
        data["path"] = None if self.path is None else str(self.path)
        return data
