"""SSDP (UDP 1900) on one private link: M-SEARCH answers and NOTIFY announcements for our IGD.

A thin asyncio adapter over :mod:`sharewall.protocols.ssdp`. One socket per private link, bound
to port 1900 and to the interface (``SO_BINDTODEVICE``), joined to 239.255.255.250 on that
interface only. Every datagram's source must be in one of the link's own subnets, or it is
dropped: a search from the public side gets nothing, not even over unicast.

Timing (UDA 1.1 §1.3.3): an answer to a multicast search waits a random time up to MX seconds,
capped at :data:`MAX_ANSWER_DELAY_S` (we are one device, not a crowd, and clients such as
miniupnpc wait only a short while after their last answer). Unicast searches without MX are
answered at once; multicast ones without MX are ignored, as the spec says.

Announcements: ``ssdp:alive`` for every target when started and every half max-age after that;
``ssdp:byebye`` when closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable

from sharewall.protocols import ssdp
from sharewall.protocols._limits import SSDP_MAX_DATAGRAM_BYTES
from sharewall.protocols.errors import RemoteProtocolError
from sharewall.servers.natpmp import link_socket

__all__ = ["MAX_ANSWER_DELAY_S", "SsdpServer"]

log = logging.getLogger("sharewall.ssdp")

MAX_ANSWER_DELAY_S = 1.0
_MAX_PENDING_ANSWERS = 256
_READS_PER_WAKEUP = 32
# struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }
_PKTINFO = struct.Struct("=i4s4s")
_IP_PKTINFO = 8  # <linux/in.h>; typeshed does not list socket.IP_PKTINFO
_MULTICAST = ipaddress.IPv4Address(ssdp.MULTICAST_ADDRESS)


class SsdpServer:
    """SSDP for link ``ifname`` whose private addresses are ``interfaces``.

    ``location_for`` turns our address on the link into the description URL.
    """

    def __init__(
        self,
        ifname: str,
        interfaces: tuple[ipaddress.IPv4Interface, ...],
        device: ssdp.SsdpDevice,
        location_for: Callable[[ipaddress.IPv4Address], str],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.ifname = ifname
        self.interfaces = interfaces
        self.device = device
        self.location_for = location_for
        self._rng = rng or random.SystemRandom()
        self._sock: socket.socket | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._notifier: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, join the group on this link and announce ourselves.

        Raises:
            OSError: the socket could not be set up.
        """
        sock = link_socket(socket.SOCK_DGRAM, self.ifname, "", ssdp.SSDP_PORT, reuse_address=True)
        try:
            ifindex = socket.if_nametoindex(self.ifname)
            primary = self.interfaces[0].ip
            # struct ip_mreqn: group, local address, interface index.
            mreqn = _MULTICAST.packed + primary.packed + struct.pack("=i", ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            # UDA 1.1 §1.1.2: "TTL ... SHOULD default to 2".
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._readable)
        self._notifier = loop.create_task(self._announce_periodically())

    # --- receiving ---------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, ancillary, _, addr = sock.recvmsg(
                    SSDP_MAX_DATAGRAM_BYTES + 1, socket.CMSG_SPACE(_PKTINFO.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.debug("SSDP receive on %s: %s", self.ifname, err)
                return
            multicast = False
            for level, kind, payload in ancillary:
                if (
                    level == socket.IPPROTO_IP
                    and kind == _IP_PKTINFO
                    and len(payload) >= _PKTINFO.size
                ):
                    destination = _PKTINFO.unpack_from(payload)[2]
                    multicast = destination == _MULTICAST.packed
            self._received(data, (str(addr[0]), int(addr[1])), multicast=multicast)

    def _our_interface(self, peer: ipaddress.IPv4Address) -> ipaddress.IPv4Interface | None:
        for interface in self.interfaces:
            if peer in interface.network and peer != interface.ip:
                return interface
        return None

    def _received(self, data: bytes, peer: tuple[str, int], *, multicast: bool) -> None:
        try:
            peer_ip = ipaddress.IPv4Address(peer[0])
        except ValueError:
            return
        interface = self._our_interface(peer_ip)
        if interface is None:
            return  # not from this link's subnets: silence
        try:
            search = ssdp.parse_msearch(data, peer, multicast=multicast)
        except RemoteProtocolError:
            return  # NOTIFYs of other devices, garbage: always silent
        matches = ssdp.search_matches(search.search_target, self.device)
        if not matches:
            return
        location = self.location_for(interface.ip)
        for match in matches:
            if len(self._pending) >= _MAX_PENDING_ANSWERS:
                return
            answer = ssdp.render_search_response(self.device, match, location=location)
            delay = (
                0.0
                if search.mx_s is None
                else self._rng.uniform(0, min(float(search.mx_s), MAX_ANSWER_DELAY_S))
            )
            self._schedule(delay, answer, peer)

    def _schedule(self, delay: float, payload: bytes, peer: tuple[str, int]) -> None:
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._pending.discard(holder[0])
            self._send(payload, peer)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        holder.append(handle)
        self._pending.add(handle)

    def _send(self, payload: bytes, destination: tuple[str, int]) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendto(payload, destination)

    # --- announcing --------------------------------------------------------------------------

    def _notify_alive(self) -> None:
        location = self.location_for(self.interfaces[0].ip)
        for match in ssdp.notification_targets(self.device):
            payload = ssdp.render_notify_alive(self.device, match, location=location)
            self._send(payload, (ssdp.MULTICAST_ADDRESS, ssdp.SSDP_PORT))

    async def _announce_periodically(self) -> None:
        # Twice at start (UDP may lose one), then every half max-age (UDA 1.1 §1.2.2).
        self._notify_alive()
        await asyncio.sleep(0.1)
        self._notify_alive()
        while True:
            await asyncio.sleep(self.device.max_age_s / 2)
            self._notify_alive()

    async def close(self) -> None:
        """Say goodbye on the link and release the socket."""
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
            self._notifier = None
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        sock = self._sock
        if sock is None:
            return
        for match in ssdp.notification_targets(self.device):
            self._send(
                ssdp.render_notify_byebye(self.device, match),
                (ssdp.MULTICAST_ADDRESS, ssdp.SSDP_PORT),
            )
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        self._sock = None
        sock.close()
