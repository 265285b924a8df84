"""Exceptions shared by every layer, each with a stable error code.

Hierarchy::

    SharewallError                 (code: ErrorCode, message: str)
    ├── ValidationError            bad input: a value out of range, a bad address, a bad name
    ├── NotFoundError              unknown connection or mapping
    ├── ConflictError              duplicate mapping, overlapping subnet, role clash
    ├── PermissionDeniedError      caller may read but not change state
    ├── KernelError                nft/netlink refused a change (nothing was applied)
    └── DaemonUnavailableError     the client cannot reach sharewalld

The codes travel over the local API as ``{"error": {"code": ..., "message": ...}}`` and are part of
the public contract: never renumber or rename them.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Stable machine-readable error codes (also the HTTP API's ``error.code``)."""

    INVALID_ARGUMENT = "invalid_argument"
    INVALID_CONFIG = "invalid_config"
    UNKNOWN_CONNECTION = "unknown_connection"
    UNKNOWN_MAPPING = "unknown_mapping"
    DUPLICATE_MAPPING = "duplicate_mapping"
    CONFLICT = "conflict"
    BUILTIN_MAPPING = "builtin_mapping"
    PERMISSION_DENIED = "permission_denied"
    KERNEL_ERROR = "kernel_error"
    DAEMON_UNAVAILABLE = "daemon_unavailable"
    INTERNAL = "internal"


class SharewallError(Exception):
    """Base of every error sharewall raises on purpose."""

    default_code = ErrorCode.INTERNAL
    http_status = 500

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def to_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "message": self.message}


class ValidationError(SharewallError):
    default_code = ErrorCode.INVALID_ARGUMENT
    http_status = 400


class NotFoundError(SharewallError):
    default_code = ErrorCode.UNKNOWN_CONNECTION
    http_status = 404


class ConflictError(SharewallError):
    default_code = ErrorCode.CONFLICT
    http_status = 409


class PermissionDeniedError(SharewallError):
    default_code = ErrorCode.PERMISSION_DENIED
    http_status = 403


class KernelError(SharewallError):
    default_code = ErrorCode.KERNEL_ERROR
    http_status = 500


class DaemonUnavailableError(SharewallError):
    default_code = ErrorCode.DAEMON_UNAVAILABLE
    http_status = 503


_BY_CODE: dict[ErrorCode, type[SharewallError]] = {
    ErrorCode.INVALID_ARGUMENT: ValidationError,
    ErrorCode.INVALID_CONFIG: ValidationError,
    ErrorCode.UNKNOWN_CONNECTION: NotFoundError,
    ErrorCode.UNKNOWN_MAPPING: NotFoundError,
    ErrorCode.DUPLICATE_MAPPING: ConflictError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.BUILTIN_MAPPING: ConflictError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.KERNEL_ERROR: KernelError,
    ErrorCode.DAEMON_UNAVAILABLE: DaemonUnavailableError,
}


def error_from_dict(data: dict[str, str]) -> SharewallError:
    """Rebuild the typed exception from the API's ``error`` object (client side)."""
    try:
        code = ErrorCode(data.get("code", "internal"))
    except ValueError:
        code = ErrorCode.INTERNAL
    cls = _BY_CODE.get(code, SharewallError)
    return cls(data.get("message", "unknown error"), code=code)
