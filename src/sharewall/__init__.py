"""sharewall: Internet Connection Sharing and Internet Connection Firewall for Linux.

The Pythonic library::

    from sharewall import Client            # sync; AsyncClient for asyncio
    with Client() as sw:                    # talks to sharewalld over its Unix socket
        sw.share("eth0", ["lan0"])
        sw.add_mapping("eth0", name="web", protocol="tcp", external_port=8080,
                       internal_port=80, target="192.168.137.10")

Windows-style code uses :mod:`sharewall.api.hnetcfg` (``CreateObject("HNetCfg.HNetShare")``).
Errors are :class:`SharewallError` subclasses with a stable ``code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # before the imports below: sharewall.api.client reads it

from sharewall.api.client import Client
from sharewall.errors import (
    ConflictError,
    DaemonUnavailableError,
    ErrorCode,
    KernelError,
    NotFoundError,
    PermissionDeniedError,
    SharewallError,
    ValidationError,
)

if TYPE_CHECKING:
    from sharewall.api.aio import AsyncClient

__all__ = [
    "AsyncClient",
    "Client",
    "ConflictError",
    "DaemonUnavailableError",
    "ErrorCode",
    "KernelError",
    "NotFoundError",
    "PermissionDeniedError",
    "SharewallError",
    "ValidationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # asyncio is not imported for the CLI's sake: AsyncClient loads on first use.
    if name == "AsyncClient":
        from sharewall.api.aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'sharewall' has no attribute {name!r}")
