"""UDP 5351 on one private address: NAT-PMP (RFC 6886) and PCP (RFC 6887) requests in, answers out.

A thin asyncio adapter. It owns the socket and nothing else: each datagram from the link's own
subnet goes to the handler (the daemon's NAT traversal service), whose answer, if any, goes back
to the sender. Datagrams from anywhere else are dropped unread, so a packet that reached the
gateway's private address through another interface gets nothing.

Promises:
- bound to ``(private address, 5351)`` and, where the kernel lets us, to the interface itself
  (``SO_BINDTODEVICE``);
- at most :data:`MAX_IN_FLIGHT` requests are handled at once; further ones are dropped (the
  protocols are retried by their clients, so dropping is the safe overload answer);
- :meth:`announce` multicasts an unsolicited message to 224.0.0.1:5350 on this link only.

Also home of :func:`link_socket`, the bind helper the SSDP and HTTP adapters share.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable

__all__ = [
    "ALL_HOSTS",
    "CLIENT_PORT",
    "MAX_IN_FLIGHT",
    "SERVER_PORT",
    "DatagramHandler",
    "NatPmpServer",
    "link_socket",
]

log = logging.getLogger("sharewall.natpmp")

SERVER_PORT = 5351
#: RFC 6886 §3.2.1 / RFC 6887 §14.1.3: unsolicited announcements go to 224.0.0.1:5350.
ALL_HOSTS = "224.0.0.1"
CLIENT_PORT = 5350
MAX_IN_FLIGHT = 64

#: (datagram, (source address, source port)) -> the answer, or None to stay silent.
DatagramHandler = Callable[[bytes, tuple[str, int]], Awaitable[bytes | None]]


def link_socket(
    kind: socket.SocketKind,
    ifname: str,
    address: str,
    port: int,
    *,
    reuse_address: bool = False,
) -> socket.socket:
    """A non-blocking IPv4 socket bound to ``(address, port)`` and, if allowed, to ``ifname``.

    ``SO_BINDTODEVICE`` needs CAP_NET_RAW; without it the bind to the address still holds and
    the callers check every peer's subnet anyway.

    Raises:
        OSError: the address cannot be bound (already in use, not on this machine).
    """
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode() + b"\0")
        except PermissionError:
            log.warning("cannot bind to device %s (no CAP_NET_RAW); relying on addresses", ifname)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class NatPmpServer(asyncio.DatagramProtocol):
    """NAT-PMP and PCP on ``interface`` (a private address with its prefix) of link ``ifname``."""

    def __init__(
        self, ifname: str, interface: ipaddress.IPv4Interface, handler: DatagramHandler
    ) -> None:
        self.ifname = ifname
        self.interface = interface
        self.handler = handler
        self._transport: asyncio.DatagramTransport | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            OSError: the socket could not be bound.
        """
        sock = link_socket(socket.SOCK_DGRAM, self.ifname, str(self.interface.ip), SERVER_PORT)
        try:
            # Announcements leave through this link, with this address as their source.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, self.interface.ip.packed)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        peer_ip, peer_port = str(addr[0]), int(addr[1])
        try:
            peer = ipaddress.IPv4Address(peer_ip)
        except ValueError:
            return
        # Only our own link's subnet may talk to us; never answer the gateway itself.
        if peer not in self.interface.network or peer == self.interface.ip:
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return
        task = asyncio.get_running_loop().create_task(self._answer(data, (peer_ip, peer_port)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, data: bytes, peer: tuple[str, int]) -> None:
        try:
            reply = await self.handler(data, peer)
        except Exception:  # a bug must not stop the server: log it and stay silent
            log.exception("NAT-PMP/PCP handler failed for %s", peer[0])
            return
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, peer)

    def announce(self, payload: bytes) -> None:
        """Multicast ``payload`` to 224.0.0.1:5350 on this link (address change, restart)."""
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(payload, (ALL_HOSTS, CLIENT_PORT))

    def error_received(self, exc: Exception) -> None:
        log.debug("NAT-PMP/PCP socket on %s: %s", self.ifname, exc)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for task in list(self._in_flight):
            task.cancel()
        for task in list(self._in_flight):
            with contextlib.suppress(asyncio.CancelledError):
                await task
