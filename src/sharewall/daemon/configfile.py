"""The human-edited TOML configuration: parsed strictly, imported into the store when it changes.

The TOML file is what people edit; the store holds what the API changed. On start and on SIGHUP, if the
file's content differs from what was last imported, its declarations are applied as ordinary changes (so the
same validation runs). A file that does not validate is reported with the bad key, and nothing changes.

Example::

    [settings]
    private_network = "192.168.137.0/24"

    [dhcp]                      # the DHCP allocator and DNS proxy on private connections
    lease_time_s = 3600
    domain = "mshome.net"
    range_start_offset = 100    # .100-.200 of each private /24
    range_end_offset = 200
    upstream_servers = []       # empty: learn them from /etc/resolv.conf

    [sharing]
    public = "wan0"
    private = ["lan0"]

    [connections.wan0]
    firewall = true
    icmp = { inbound_echo_request = true }
    log = { log_dropped = true, log_connections = true }   # pfirewall.log (off by default)

    [[connections.wan0.mappings]]
    name = "web"
    protocol = "tcp"
    external_port = 8080
    internal_port = 80
    target = "192.168.137.12"
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from sharewall.errors import ErrorCode, ValidationError
from sharewall.model.config import Settings
from sharewall.model.dhcp import DhcpSettings, validate_dhcp_settings
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings, check_log_size_kb
from sharewall.model.mapping import PortMapping, make_mapping
from sharewall.model.nat_policy import NatTraversalSettings


class FileMapping(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    protocol: str
    external_port: int
    internal_port: int | None = None
    target: str = "gateway"
    enabled: bool = True


class FileConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    firewall: bool | None = None
    icmp: IcmpSettings | None = None
    log: SecurityLogSettings | None = None
    mappings: list[FileMapping] = []


class FileSharing(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    public: str
    private: list[str]
    private_address: str | None = None


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    settings: Settings = msgspec.field(default_factory=Settings)
    dhcp: DhcpSettings | None = None
    nat_traversal: NatTraversalSettings | None = None
    sharing: FileSharing | None = None
    connections: dict[str, FileConnection] = {}


class ParsedConfig(msgspec.Struct, kw_only=True):
    digest: str
    file: ConfigFile
    mappings: dict[str, list[PortMapping]]


def _readable(err: msgspec.ValidationError, prefix: str = "") -> str:
    """msgspec's "Expected int, got str - at `$.a.b`" as "a.b: expected int, got str"."""
    text = str(err)
    message, _, at = text.partition(" - at `$")
    where = prefix + at.rstrip("`")
    where = where.lstrip(".")
    if message.startswith("Object contains unknown field"):
        return (
            f"{where + '.' if where else ''}{message.split('`')[1]}: unknown key"
            if "`" in message
            else message
        )
    return f"{where}: {message[0].lower()}{message[1:]}" if where else message


def parse_config_file(path: Path) -> ParsedConfig | None:
    """Parse and validate the TOML file; None if it does not exist.

    Raises:
        ValidationError: (code invalid_config) naming the file and the bad key.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{path}: {err}", code=ErrorCode.INVALID_CONFIG) from None
    # Connections are checked one by one so that an error names the connection ("connections.wan0"),
    # which msgspec's own path would show as "connections[...]".
    raw_connections = data.pop("connections", {})
    if not isinstance(raw_connections, dict):
        raise ValidationError(f"{path}: connections must be a table", code=ErrorCode.INVALID_CONFIG)
    try:
        parsed = msgspec.convert(data, type=ConfigFile)
    except msgspec.ValidationError as err:
        raise ValidationError(f"{path}: {_readable(err)}", code=ErrorCode.INVALID_CONFIG) from None
    for conn_name, declared in raw_connections.items():
        try:
            parsed.connections[conn_name] = msgspec.convert(declared, type=FileConnection)
        except msgspec.ValidationError as err:
            where = f"connections.{conn_name}"
            raise ValidationError(
                f"{path}: {_readable(err, where)}", code=ErrorCode.INVALID_CONFIG
            ) from None
    try:
        check_log_size_kb(parsed.settings.log_max_kb)
    except ValidationError as err:
        raise ValidationError(
            f"{path}: settings.log_max_kb: {err.message}", code=ErrorCode.INVALID_CONFIG
        ) from None
    if parsed.dhcp is not None:
        try:
            parsed.dhcp = validate_dhcp_settings(parsed.dhcp)
        except ValidationError as err:
            raise ValidationError(
                f"{path}: dhcp: {err.message}", code=ErrorCode.INVALID_CONFIG
            ) from None
    mappings: dict[str, list[PortMapping]] = {}
    for conn_name, conn in parsed.connections.items():
        for index, m in enumerate(conn.mappings):
            try:
                mappings.setdefault(conn_name, []).append(
                    make_mapping(
                        name=m.name,
                        protocol=m.protocol,
                        external_port=m.external_port,
                        internal_port=m.internal_port,
                        target=m.target,
                        enabled=m.enabled,
                    )
                )
            except ValidationError as err:
                raise ValidationError(
                    f"{path}: connections.{conn_name}.mappings[{index}]: {err.message}",
                    code=ErrorCode.INVALID_CONFIG,
                ) from None
    return ParsedConfig(digest=hashlib.sha256(raw).hexdigest(), file=parsed, mappings=mappings)
