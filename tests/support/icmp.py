"""Raw ICMP/ICMPv6 for the lab: build messages, send them from a namespace, watch for them in another.

Three layers:
- Pure builders (:func:`checksum`, :func:`icmp4_message`, :func:`icmp6_message`, :func:`build_message`):
  bytes in, bytes out, correct checksums (ICMPv6 over the RFC 4443 pseudo-header).
- A command line run *inside* a namespace (``ip netns exec NS python -m tests.support.icmp ...``, cwd = repo):
  ``send`` sends one message from a raw socket and prints ``sent`` (or ``blocked`` when the local output
  hook dropped it); ``listen`` opens a raw socket, prints ``ready``, then prints
  ``got TYPE CODE SOURCE checksum=ok|bad`` for the first message that matches (type, code, token) and exits 0,
  or prints ``timeout`` and exits 1; ``udp-probe`` sends one datagram on a connected UDP socket and prints
  ``answered``, ``refused`` (an ICMP error came back) or ``timeout``. Every wait is bounded.
- Test-side helpers (:class:`Listener`, :func:`send`, :func:`udp_probe`, :func:`new_token`) that start those commands from the
  root namespace without changing it.

A raw socket sees an inbound packet only after the input hook accepted it, and the Internet host's raw socket
sees what left the gateway's output hook: the two observation points the ICF ICMP tests need.

The *token* (4 random bytes) goes into every message we send: the identifier/sequence field of queries and
the payload of the offending datagram quoted by error messages. The kernel copies it into echo and timestamp
replies, so a listener can tell our packets from anything else on the wire.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "Listener",
    "build_message",
    "checksum",
    "icmp4_message",
    "icmp6_message",
    "main",
    "new_token",
    "offending_datagram",
    "send",
    "udp_probe",
]

REPO = Path(__file__).resolve().parents[2]

# ICMP types we give a query layout; every other type is built as an error quoting a datagram.
ICMP4_ECHO_REQUEST = 8
ICMP4_ROUTER_SOLICITATION = 10
ICMP4_TIMESTAMP_REQUEST = 13
ICMP4_MASK_REQUEST = 17
ICMP4_DEST_UNREACHABLE = 3
ICMP4_REDIRECT = 5
ICMP4_PARAMETER_PROBLEM = 12
ICMP6_PACKET_TOO_BIG = 2
ICMP6_PARAMETER_PROBLEM = 4
ICMP6_ECHO_REQUEST = 128
ICMP6_REDIRECT = 137
FRAG_NEEDED = 4  # code of ICMPv4 destination-unreachable

_TOKEN_LEN = 4
_LISTEN_EXIT_MARGIN_S = 5.0  # how long past its own timeout a listener may take to exit
_READY_TIMEOUT_S = 10.0
_MAX_PACKETS = 10_000  # a listener reads at most this many packets before giving up


def new_token() -> bytes:
    """Four random bytes that mark one experiment's packets."""
    return secrets.token_bytes(_TOKEN_LEN)


# --- pure builders ---------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of *data*: ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp4_message(type_: int, code: int, rest: bytes, body: bytes = b"") -> bytes:
    """An ICMPv4 message: type, code, checksum, the 4-byte type-specific field *rest*, then *body*."""
    if len(rest) != 4:
        raise ValueError("the ICMP header's type-specific field is 4 bytes")
    unsummed = struct.pack("!BBH", type_, code, 0) + rest + body
    return unsummed[:2] + struct.pack("!H", checksum(unsummed)) + unsummed[4:]


def icmp6_message(type_: int, code: int, rest: bytes, body: bytes, src: str, dst: str) -> bytes:
    """An ICMPv6 message whose checksum covers the pseudo-header of *src* -> *dst* (RFC 4443 §2.3)."""
    if len(rest) != 4:
        raise ValueError("the ICMPv6 header's type-specific field is 4 bytes")
    unsummed = struct.pack("!BBH", type_, code, 0) + rest + body
    pseudo = (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!I3xB", len(unsummed), socket.IPPROTO_ICMPV6)
    )
    return unsummed[:2] + struct.pack("!H", checksum(pseudo + unsummed)) + unsummed[4:]


def offending_datagram(src: str, dst: str, token: bytes) -> bytes:
    """The datagram an error message quotes: an IP header, a UDP header (to 33434) and *token*.

    Errors travel back to the sender of that datagram, so callers pass the error's destination as *src*.
    """
    udp = struct.pack("!HHHH", 40000, 33434, 8 + len(token), 0) + token
    if ":" in src:
        return (
            struct.pack("!IHBB", 6 << 28, len(udp), socket.IPPROTO_UDP, 64)
            + ipaddress.IPv6Address(src).packed
            + ipaddress.IPv6Address(dst).packed
            + udp
        )
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0x1234,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def _milliseconds_since_midnight_utc() -> int:
    return int(time.time() * 1000) % 86_400_000


def build_message(family: int, type_: int, code: int, token: bytes, src: str, dst: str) -> bytes:
    """A well-formed ICMP (*family* 4) or ICMPv6 (6) message of *type_*/*code* from *src* to *dst*.

    Queries carry *token* in their identifier/sequence field; errors quote a datagram carrying it.
    """
    if len(token) != _TOKEN_LEN:
        raise ValueError(f"token must be {_TOKEN_LEN} bytes")
    quoted = offending_datagram(dst, src, token)
    if family == 4:
        rest, body = b"\0\0\0\0", quoted
        if type_ == ICMP4_ECHO_REQUEST:
            rest, body = token, token * 8
        elif type_ == ICMP4_TIMESTAMP_REQUEST:
            rest, body = token, struct.pack("!III", _milliseconds_since_midnight_utc(), 0, 0)
        elif type_ == ICMP4_MASK_REQUEST:
            rest, body = token, b"\0\0\0\0"
        elif type_ == ICMP4_ROUTER_SOLICITATION:
            rest, body = token, b""  # rest is "reserved": receivers ignore it
        elif type_ == ICMP4_REDIRECT:
            rest = ipaddress.IPv4Address(src).packed  # "use me as the gateway"
        elif type_ == ICMP4_DEST_UNREACHABLE and code == FRAG_NEEDED:
            rest = struct.pack("!HH", 0, 1400)  # next-hop MTU
        elif type_ == ICMP4_PARAMETER_PROBLEM:
            rest = b"\x09\0\0\0"  # pointer at the quoted header's protocol byte
        return icmp4_message(type_, code, rest, body)
    rest, body = b"\0\0\0\0", quoted
    if type_ == ICMP6_ECHO_REQUEST:
        rest, body = token, token * 8
    elif type_ == ICMP6_PACKET_TOO_BIG:
        rest = struct.pack("!I", 1280)
    elif type_ == ICMP6_PARAMETER_PROBLEM:
        rest = struct.pack("!I", 6)  # pointer at the quoted header's next-header byte
    elif type_ == ICMP6_REDIRECT:
        # Target and destination (RFC 4861 §4.5), then a Redirected Header option quoting the datagram.
        padded = quoted + b"\0" * (-len(quoted) % 8)
        option = struct.pack("!BB6x", 4, 1 + len(padded) // 8) + padded
        body = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + option
    return icmp6_message(type_, code, rest, body, src, dst)


# --- inside a namespace ----------------------------------------------------------------------------


def _raw_socket(family: int) -> socket.socket:
    if family == 4:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)


def _source_for(family: int, dst: str) -> str:
    """The address the kernel would send from to *dst* (a connected UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.connect((dst, 9))
        return str(s.getsockname()[0])


def send_here(family: int, type_: int, code: int, dst: str, token: bytes) -> bool:
    """Send one message from the current namespace through a raw socket (the kernel adds the IP header).

    Returns False when the local output path refused it (``EPERM``: a firewall's output hook dropped it).
    """
    src = _source_for(family, dst)
    message = build_message(family, type_, code, token, src, dst)
    with _raw_socket(family) as sock:
        if family == 6 and type_ >= 133:
            # Neighbour discovery messages are only believed with hop limit 255 (RFC 4861 §6.1).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        try:
            sock.sendto(message, (dst, 0))
        except PermissionError:
            return False
    return True


def _icmp_part(family: int, packet: bytes) -> bytes:
    if family == 4:  # IPv4 raw sockets deliver the IP header too
        return packet[(packet[0] & 0x0F) * 4 :]
    return packet


def listen_here(
    family: int, type_: int, code: int | None, token: bytes | None, timeout: float
) -> str | None:
    """Print ``ready``, then wait up to *timeout* s for a matching message; its description, or None."""
    with _raw_socket(family) as sock:
        print("ready", flush=True)
        deadline = time.monotonic() + timeout
        for _ in range(_MAX_PACKETS):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                return None
            packet, peer = sock.recvfrom(65535)
            message = _icmp_part(family, packet)
            if len(message) < 4 or message[0] != type_:
                continue
            if code is not None and message[1] != code:
                continue
            if token is not None and token not in message[4:]:
                continue
            # IPv6 raw sockets only deliver messages whose checksum the kernel verified.
            valid = family == 6 or checksum(message) == 0
            return f"got {message[0]} {message[1]} {peer[0]} checksum={'ok' if valid else 'bad'}"
    return None


def udp_probe_here(host: str, port: int, timeout: float) -> str:
    """Send one datagram on a *connected* UDP socket: ``answered``, ``refused`` or ``timeout``.

    Only a connected socket hears about an ICMP error for its datagram (as ECONNREFUSED).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        try:
            sock.send(b"probe")
            sock.recv(512)
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
    return "answered"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.icmp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("send", "listen"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--family", type=int, choices=(4, 6), required=True)
        cmd.add_argument("--type", type=int, required=True, dest="type_")
        cmd.add_argument("--code", type=int, default=None if name == "listen" else 0)
        cmd.add_argument("--token", type=bytes.fromhex, default=None)
    sub.choices["send"].add_argument("--dst", required=True)
    sub.choices["listen"].add_argument("--timeout", type=float, default=1.0)
    udp = sub.add_parser("udp-probe")
    udp.add_argument("--host", required=True)
    udp.add_argument("--port", type=int, required=True)
    udp.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "udp-probe":
        print(udp_probe_here(args.host, args.port, args.timeout), flush=True)
        return 0
    if args.command == "send":
        sent = send_here(args.family, args.type_, args.code, args.dst, args.token or new_token())
        print("sent" if sent else "blocked", flush=True)
        return 0
    found = listen_here(args.family, args.type_, args.code, args.token, args.timeout)
    print(found or "timeout", flush=True)
    return 0 if found else 1


# --- from the test process -------------------------------------------------------------------------


def _in_namespace(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.support.icmp", *args]


def send(netns: str, family: int, type_: int, code: int, dst: str, token: bytes) -> str:
    """Send one ICMP message of *type_*/*code* from namespace *netns* to *dst*.

    Returns ``"sent"``, or ``"blocked"`` when the sender's own output hook dropped it (``EPERM``).

    Raises:
        subprocess.CalledProcessError: the sender failed (its stderr is in the exception).
    """
    argv = _in_namespace(
        netns,
        "send",
        f"--family={family}",
        f"--type={type_}",
        f"--code={code}",
        f"--dst={dst}",
        f"--token={token.hex()}",
    )
    done = subprocess.run(argv, cwd=REPO, check=True, capture_output=True, text=True, timeout=20)
    return done.stdout.strip()


def udp_probe(netns: str, host: str, port: int, *, timeout: float) -> str:
    """From *netns*, one datagram to *host*:*port* on a connected socket: answered/refused/timeout."""
    argv = _in_namespace(
        netns, "udp-probe", f"--host={host}", f"--port={port}", f"--timeout={timeout}"
    )
    done = subprocess.run(
        argv, cwd=REPO, check=True, capture_output=True, text=True, timeout=timeout + 20
    )
    return done.stdout.strip()


class Listener:
    """A raw-socket listener in *netns*, ready when the constructor returns; use as a context manager.

    Args:
        family: 4 or 6.
        type_: the ICMP type to wait for; *code* and *token* narrow the match when given.
        timeout: how long the listener waits in total (keep it short for expected silence).
    """

    def __init__(
        self,
        netns: str,
        family: int,
        type_: int,
        *,
        code: int | None = None,
        token: bytes | None = None,
        timeout: float = 1.0,
    ) -> None:
        args = ["listen", f"--family={family}", f"--type={type_}", f"--timeout={timeout}"]
        if code is not None:
            args.append(f"--code={code}")
        if token is not None:
            args.append(f"--token={token.hex()}")
        self.timeout = timeout
        self.process = subprocess.Popen(
            _in_namespace(netns, *args),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._result: str | None = None
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], _READY_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"ICMP listener did not start: {line!r} {self._stderr()}")

    def _stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def result(self) -> str | None:
        """Wait for the listener to finish: the ``got ...`` line, or None when nothing matched."""
        if self.process.returncode is None:
            try:
                out, err = self.process.communicate(timeout=self.timeout + _LISTEN_EXIT_MARGIN_S)
            except subprocess.TimeoutExpired:
                self.close()
                raise
            line = out.strip()
            if line.startswith("got "):
                self._result = line
            elif line != "timeout":
                raise RuntimeError(f"ICMP listener failed ({self.process.returncode}): {err}")
        return self._result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
