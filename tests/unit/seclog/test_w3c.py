"""W3C rendering of security log records: golden lines from real Windows Firewall logs, and invariants."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharewall.seclog.record import LogAction, LogPath, LogRecord, tcp_flags_text
from sharewall.seclog.w3c import FIELDS, HEADER, protocol_name, render_line

UTC = datetime.UTC


def at(text: str, tz: datetime.tzinfo = UTC) -> float:
    """Epoch seconds of a ``YYYY-MM-DD HH:MM:SS`` wall time in ``tz``."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).timestamp()


def test_header_is_windows_firewall_header_byte_for_byte() -> None:
    """The four directives as Windows Firewall writes them, then the empty line later Windows adds."""
    assert HEADER == (
        "#Version: 1.5\n"
        "#Software: Microsoft Windows Firewall\n"
        "#Time Format: Local\n"
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn"
        " tcpack tcpwin icmptype icmpcode info path\n"
        "\n"
    )
    assert len(FIELDS) == 17


GOLDEN: list[tuple[LogRecord, str]] = [
    (  # networkuptime.com "Protecting Your Data" sample (seed-system.md §7.4)
        LogRecord(
            timestamp=at("2005-11-20 11:43:41"),
            action=LogAction.DROP,
            protocol=6,
            src_ip="192.168.0.7",
            dst_ip="192.168.0.6",
            src_port=1172,
            dst_port=3389,
            size=48,
            tcpflags="S",
            tcpsyn=1640769051,
            tcpack=0,
            tcpwin=65535,
            path=LogPath.RECEIVE,
        ),
        "2005-11-20 11:43:41 DROP TCP 192.168.0.7 192.168.0.6 1172 3389 48 S 1640769051 0 65535"
        " - - - RECEIVE",
    ),
    (
        LogRecord(
            timestamp=at("2005-11-20 11:48:36"),
            action=LogAction.OPEN,
            protocol=6,
            src_ip="192.168.0.6",
            dst_ip="66.102.7.104",
            src_port=4310,
            dst_port=80,
        ),
        "2005-11-20 11:48:36 OPEN TCP 192.168.0.6 66.102.7.104 4310 80 - - - - - - - - -",
    ),
    (  # Azure Stack Edge docs sample, IPv4 and IPv6
        LogRecord(
            timestamp=at("2019-11-06 12:35:19"),
            action=LogAction.DROP,
            protocol=17,
            src_ip="5.5.3.197",
            dst_ip="224.0.0.251",
            src_port=5353,
            dst_port=5353,
            size=59,
            path=LogPath.RECEIVE,
        ),
        "2019-11-06 12:35:19 DROP UDP 5.5.3.197 224.0.0.251 5353 5353 59 - - - - - - - RECEIVE",
    ),
    (
        LogRecord(
            timestamp=at("2019-11-06 12:35:19"),
            action=LogAction.DROP,
            protocol=17,
            src_ip="fe80::3680:dff:fe01:9e88",
            dst_ip="ff02::fb",
            src_port=5353,
            dst_port=5353,
            size=89,
            path=LogPath.RECEIVE,
        ),
        "2019-11-06 12:35:19 DROP UDP fe80::3680:dff:fe01:9e88 ff02::fb 5353 5353 89"
        " - - - - - - - RECEIVE",
    ),
    (  # a dropped ping, as a Windows 7 log shows it
        LogRecord(
            timestamp=at("2016-03-06 02:55:08"),
            action=LogAction.DROP,
            protocol=1,
            src_ip="192.168.11.3",
            dst_ip="192.168.11.2",
            size=60,
            icmptype=8,
            icmpcode=0,
            path=LogPath.RECEIVE,
        ),
        "2016-03-06 02:55:08 DROP ICMP 192.168.11.3 192.168.11.2 - - 60 - - - - 8 0 - RECEIVE",
    ),
    (  # Microsoft's own sample of an INFO-EVENTS-LOST line
        LogRecord.events_lost(59, timestamp=at("2005-04-11 08:52:26")),
        "2005-04-11 08:52:26 INFO-EVENTS-LOST - - - - - - - - - - - - 59 -",
    ),
    (  # Microsoft's sample with two flags
        LogRecord(
            timestamp=at("2005-04-11 08:06:27"),
            action=LogAction.DROP,
            protocol=6,
            src_ip="123.45.78.90",
            dst_ip="123.156.78.90",
            src_port=80,
            dst_port=1774,
            size=576,
            tcpflags=tcp_flags_text(0x18),
            tcpsyn=123456789,
            tcpack=987654321,
            tcpwin=12345,
            path=LogPath.RECEIVE,
        ),
        "2005-04-11 08:06:27 DROP TCP 123.45.78.90 123.156.78.90 80 1774 576 AP 123456789"
        " 987654321 12345 - - - RECEIVE",
    ),
    (  # ICMPv6 is written "ICMP", as Windows does
        LogRecord(
            timestamp=at("2024-02-29 23:59:59"),
            action=LogAction.DROP,
            protocol=58,
            src_ip="2001:db8::1",
            dst_ip="2001:db8::2",
            size=104,
            icmptype=128,
            icmpcode=0,
            path=LogPath.FORWARD,
        ),
        "2024-02-29 23:59:59 DROP ICMP 2001:db8::1 2001:db8::2 - - 104 - - - - 128 0 - FORWARD",
    ),
    (  # other protocols appear as their number
        LogRecord(
            timestamp=at("2024-01-01 00:00:00"),
            action=LogAction.OPEN_INBOUND,
            protocol=47,
            src_ip="198.51.100.7",
            dst_ip="192.0.2.1",
        ),
        "2024-01-01 00:00:00 OPEN-INBOUND 47 198.51.100.7 192.0.2.1 - - - - - - - - - - -",
    ),
    (
        LogRecord(
            timestamp=at("2024-01-01 00:00:00"),
            action=LogAction.CLOSE,
            protocol=17,
            src_ip="192.168.137.20",
            dst_ip="9.9.9.9",
            src_port=40000,
            dst_port=53,
            connection="uplink",  # not a W3C field: never written
        ),
        "2024-01-01 00:00:00 CLOSE UDP 192.168.137.20 9.9.9.9 40000 53 - - - - - - - - -",
    ),
]


@pytest.mark.parametrize(("record", "expected"), GOLDEN)
def test_golden_lines(record: LogRecord, expected: str) -> None:
    """Each record renders exactly as the Windows Firewall line it stands for."""
    assert render_line(record, UTC) == expected + "\n"


def test_time_fields_use_the_given_zone_and_drop_fractions() -> None:
    """date and time are wall-clock time in the zone, truncated to the second."""
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    record = LogRecord(timestamp=at("2023-12-31 23:30:15") + 0.999, action=LogAction.DROP)
    assert render_line(record, plus_two).startswith("2024-01-01 01:30:15 DROP ")


def test_none_zone_means_system_local_time() -> None:
    """Without a zone, the line shows the machine's local time, as ``#Time Format: Local`` says."""
    moment = 1_700_000_000.0
    local = datetime.datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")
    assert render_line(LogRecord(timestamp=moment, action=LogAction.DROP)).startswith(local)


def test_values_never_split_a_line() -> None:
    """Spaces, newlines and non-ASCII in a text value become ``_``; an empty one becomes ``-``."""
    record = LogRecord(timestamp=0, action=LogAction.DROP, info="two words\nné", tcpflags="")
    fields = render_line(record, UTC).rstrip("\n").split(" ")
    assert fields[15] == "two_words_n_"
    assert fields[9] == "-"


def test_timestamp_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="timestamp out of range"):
        render_line(LogRecord(timestamp=1e20, action=LogAction.DROP), UTC)


@pytest.mark.parametrize(
    ("flags", "letters"),
    [
        (0x02, "S"),
        (0x12, "AS"),
        (0x10, "A"),
        (0x18, "AP"),
        (0x11, "AF"),
        (0x14, "AR"),
        (0x04, "R"),
        (0x3F, "AFPRSU"),
        (0x00, None),
        (0xC0, None),  # ECE and CWR are not logged
    ],
)
def test_tcp_flag_letters(flags: int, letters: str | None) -> None:
    assert tcp_flags_text(flags) == letters


def test_protocol_names() -> None:
    assert [protocol_name(p) for p in (6, 17, 1, 58, 0, 132)] == [
        "TCP",
        "UDP",
        "ICMP",
        "ICMP",
        "0",
        "132",
    ]


def test_to_json_uses_plain_strings() -> None:
    record = LogRecord(timestamp=1.5, action=LogAction.OPEN_INBOUND, path=LogPath.SEND)
    data = record.to_json()
    assert data["action"] == "OPEN-INBOUND"
    assert data["path"] == "SEND"
    assert type(data["action"]) is str


_optional_int = st.none() | st.integers(min_value=0, max_value=2**32 - 1)
_optional_text = st.none() | st.text(max_size=20)

records = st.builds(
    LogRecord,
    timestamp=st.floats(min_value=0, max_value=4_000_000_000),
    action=st.sampled_from(LogAction),
    protocol=st.none() | st.integers(min_value=0, max_value=255),
    src_ip=_optional_text,
    dst_ip=_optional_text,
    src_port=_optional_int,
    dst_port=_optional_int,
    size=_optional_int,
    tcpflags=_optional_text,
    tcpsyn=_optional_int,
    tcpack=_optional_int,
    tcpwin=_optional_int,
    icmptype=_optional_int,
    icmpcode=_optional_int,
    info=_optional_text,
    path=st.none() | st.sampled_from(LogPath),
    connection=st.text(max_size=10),
)


@given(records)
def test_every_record_is_one_ascii_line_of_seventeen_fields(record: LogRecord) -> None:
    """Whatever the values, a line has the 17 fields, only printable ASCII, and one newline at the end."""
    line = render_line(record, UTC)
    assert line.endswith("\n")
    body = line[:-1]
    assert body.isascii()
    assert body.isprintable()
    fields = body.split(" ")
    assert len(fields) == len(FIELDS)
    assert all(fields)
