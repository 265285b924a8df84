"""The UPnP IGD's HTTP side (TCP 2869): descriptions, SOAP control and GENA subscriptions.

A thin aiohttp adapter. One application, one listening socket per private address (bound to the
address and, where possible, to its interface), so the IGD is never reachable on the public
side. Each request's peer must be in the subnet of the address it connected to, or it gets 403.

The adapter knows HTTP, not UPnP: it caps sizes (header lines, header count, body) before
anything is parsed, then hands the request to an :class:`IgdHandler` (the daemon's NAT
traversal service) and sends back what that returns.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from sharewall.protocols._limits import (
    HTTP_MAX_FIELD_BYTES,
    HTTP_MAX_HEADER_COUNT,
    HTTP_MAX_LINE_BYTES,
    SOAP_MAX_BODY_BYTES,
)
from sharewall.protocols.soap import CONTENT_TYPE
from sharewall.servers.natpmp import link_socket

__all__ = ["IGD_HTTP_PORT", "IgdHandler", "IgdHttpServer"]

log = logging.getLogger("sharewall.igd")

#: The port Windows' UPnP device host uses; the private-side firewall opens it.
IGD_HTTP_PORT = 2869
_KEEPALIVE_TIMEOUT_S = 15.0


class IgdHandler(Protocol):
    """What the HTTP adapter asks of the IGD (implemented by the NAT traversal service)."""

    def document(self, path: str) -> bytes | None:
        """The device description or an SCPD at ``path``; None: 404."""

    async def control(
        self, path: str, body: bytes, soap_action: str | None, peer: ipaddress.IPv4Address
    ) -> tuple[int, bytes]:
        """A SOAP control request → (HTTP status, body)."""

    async def subscription(
        self, method: str, path: str, headers: Mapping[str, str], peer: ipaddress.IPv4Address
    ) -> tuple[int, dict[str, str]]:
        """A GENA SUBSCRIBE or UNSUBSCRIBE → (HTTP status, response headers)."""


class IgdHttpServer:
    """The IGD's HTTP server; :meth:`add_address` opens it on one more private address."""

    def __init__(self, handler: IgdHandler, *, server_header: str) -> None:
        self.handler = handler
        self.server_header = server_header
        self._runner: web.AppRunner | None = None
        self._sites: dict[ipaddress.IPv4Interface, web.SockSite] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=SOAP_MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=_KEEPALIVE_TIMEOUT_S,
            max_line_size=HTTP_MAX_LINE_BYTES,
            max_field_size=HTTP_MAX_FIELD_BYTES,
            max_headers=HTTP_MAX_HEADER_COUNT,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()

    @property
    def addresses(self) -> set[ipaddress.IPv4Interface]:
        return set(self._sites)

    async def add_address(self, ifname: str, interface: ipaddress.IPv4Interface) -> None:
        """Listen on ``interface.ip:2869`` (bound to ``ifname``).

        Raises:
            OSError: the address could not be bound.
        """
        assert self._runner is not None, "start() first"
        if interface in self._sites:
            return
        sock = link_socket(
            socket.SOCK_STREAM, ifname, str(interface.ip), IGD_HTTP_PORT, reuse_address=True
        )
        site = web.SockSite(self._runner, sock)
        try:
            await site.start()
        except BaseException:
            sock.close()
            raise
        self._sites[interface] = site

    async def remove_address(self, interface: ipaddress.IPv4Interface) -> None:
        site = self._sites.pop(interface, None)
        if site is not None:
            await site.stop()

    async def close(self) -> None:
        for interface in list(self._sites):
            await self.remove_address(interface)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- requests ----------------------------------------------------------------------------

    def _peer(self, request: web.Request) -> ipaddress.IPv4Address | None:
        """The peer, if it is in the subnet of the address it connected to."""
        transport = request.transport
        if transport is None or request.remote is None:
            return None
        sockname = transport.get_extra_info("sockname")
        try:
            peer = ipaddress.IPv4Address(request.remote)
            local = ipaddress.IPv4Address(sockname[0])
        except (ValueError, TypeError, IndexError):
            return None
        for interface in self._sites:
            if interface.ip == local and peer in interface.network and peer != local:
                return peer
        return None

    def _headers(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        return {"SERVER": self.server_header, **extra}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        peer = self._peer(request)
        if peer is None:
            return web.Response(status=403, headers=self._headers())
        method = request.method
        path = request.path
        if method in ("GET", "HEAD"):
            document = self.handler.document(path)
            if document is None:
                return web.Response(status=404, headers=self._headers())
            return web.Response(
                body=document, headers=self._headers({"Content-Type": CONTENT_TYPE})
            )
        if method == "POST":
            length = request.content_length
            if length is not None and length > SOAP_MAX_BODY_BYTES:
                return web.Response(status=413, headers=self._headers())
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413, headers=self._headers())
            status, answer = await self.handler.control(
                path, body, request.headers.get("SOAPACTION"), peer
            )
            content_type = {"Content-Type": CONTENT_TYPE} if answer else {}
            return web.Response(status=status, body=answer, headers=self._headers(content_type))
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            status, headers = await self.handler.subscription(
                method, path, dict(request.headers), peer
            )
            return web.Response(status=status, headers=self._headers(headers))
        return web.Response(status=405, headers=self._headers())
