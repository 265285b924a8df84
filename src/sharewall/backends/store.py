"""The durable store: SQLite in WAL mode, one small transaction per acknowledged change.

Why not rewrite a TOML file per change: tomlkit needs ~180 ms per 1,000 tables, so 10,000 mappings would
make every change slow. Here one change is one row and one fsync'd commit (``synchronous=FULL``), so a
change is durable before the daemon answers, and a crash at any instant leaves either the old or the new
row, never a torn file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import msgspec

from sharewall.model.config import Config, ConnectionConfig, Settings, Sharing
from sharewall.model.dhcp import DhcpSettings, Reservation
from sharewall.model.firewall import IcmpSettings, SecurityLogSettings
from sharewall.model.mapping import PortMapping

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, mac TEXT NOT NULL DEFAULT '',
    firewall INTEGER NOT NULL DEFAULT 0, icmp TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS mappings (
    conn_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (conn_id, name)
);
"""

_mapping_encoder = msgspec.json.Encoder()
_mapping_decoder = msgspec.json.Decoder(PortMapping)


class Store:
    """All of sharewall's persistent state in ``STATE_DIR/state.db``."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "state.db"
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is one transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(connections)")}
        if "log" not in columns:  # added with the security log; older stores lack it
            self._db.execute("ALTER TABLE connections ADD COLUMN log TEXT NOT NULL DEFAULT '{}'")

    def close(self) -> None:
        self._db.close()

    # --- reading -----------------------------------------------------------------------------

    def load(self) -> Config:
        config = Config()
        row = self._db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        if row:
            config.settings = msgspec.json.decode(row[0], type=Settings)
        row = self._db.execute("SELECT value FROM meta WHERE key='sharing'").fetchone()
        if row:
            config.sharing = msgspec.json.decode(row[0], type=Sharing)
        row = self._db.execute("SELECT value FROM meta WHERE key='dhcp'").fetchone()
        if row:
            config.dhcp = msgspec.json.decode(row[0], type=DhcpSettings)
        row = self._db.execute("SELECT value FROM meta WHERE key='reservations'").fetchone()
        if row:
            config.reservations = msgspec.json.decode(row[0], type=list[Reservation])
        for cid, name, mac, firewall, icmp, log in self._db.execute(
            "SELECT id, name, mac, firewall, icmp, log FROM connections ORDER BY rowid"
        ):
            config.connections[cid] = ConnectionConfig(
                id=cid,
                name=name,
                mac=mac,
                firewall=bool(firewall),
                icmp=msgspec.json.decode(icmp, type=IcmpSettings),
                log=msgspec.json.decode(log, type=SecurityLogSettings),
            )
        for cid, data in self._db.execute("SELECT conn_id, data FROM mappings ORDER BY rowid"):
            conn = config.connections.get(cid)
            if conn is not None:
                mapping = _mapping_decoder.decode(data)
                conn.mappings[mapping.name] = mapping
        return config

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- writing (each public method is one durable transaction) -----------------------------

    def _tx(self, statements: Iterable[tuple[str, tuple[object, ...]]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                db.execute(sql, args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _connection_stmt(conn: ConnectionConfig) -> tuple[str, tuple[object, ...]]:
        return (
            "INSERT INTO connections (id, name, mac, firewall, icmp) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name=excluded.name, mac=excluded.mac, "
            "firewall=excluded.firewall, icmp=excluded.icmp",
            (
                conn.id,
                conn.name,
                conn.mac,
                int(conn.firewall),
                msgspec.json.encode(conn.icmp).decode(),
            ),
        )

    @staticmethod
    def _mapping_stmt(conn_id: str, mapping: PortMapping) -> tuple[str, tuple[object, ...]]:
        return (
            "INSERT INTO mappings (conn_id, name, data) VALUES (?, ?, ?) "
            "ON CONFLICT(conn_id, name) DO UPDATE SET data=excluded.data",
            (conn_id, mapping.name, _mapping_encoder.encode(mapping).decode()),
        )

    def save(
        self,
        *,
        connections: Iterable[ConnectionConfig] = (),
        put_mappings: Iterable[tuple[str, PortMapping]] = (),
        delete_mappings: Iterable[tuple[str, str]] = (),
        sharing: Sharing | None = None,
        settings: Settings | None = None,
        dhcp: DhcpSettings | None = None,
        reservations: list[Reservation] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Write any mix of changes as ONE transaction (all or nothing), durable on return."""
        stmts: list[tuple[str, tuple[object, ...]]] = [
            self._connection_stmt(c) for c in connections
        ]
        stmts.extend(
            ("DELETE FROM mappings WHERE conn_id=? AND name=?", (cid, name))
            for cid, name in delete_mappings
        )
        stmts.extend(self._mapping_stmt(cid, m) for cid, m in put_mappings)
        if sharing is not None:
            stmts.append(
                (
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('sharing', ?)",
                    (msgspec.json.encode(sharing).decode(),),
                )
            )
        if settings is not None:
            stmts.append(
                (
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)",
                    (msgspec.json.encode(settings).decode(),),
                )
            )
        meta = dict(meta or {})
        if dhcp is not None:
            meta["dhcp"] = msgspec.json.encode(dhcp).decode()
        if reservations is not None:
            meta["reservations"] = msgspec.json.encode(reservations).decode()
        for key, value in meta.items():
            stmts.append(("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))
        if stmts:
            self._tx(stmts)

    def replace_all(self, config: Config) -> None:
        """Rewrite everything from *config* in one transaction (rollback of a failed change)."""
        stmts: list[tuple[str, tuple[object, ...]]] = [
            ("DELETE FROM connections", ()),
            ("DELETE FROM mappings", ()),
        ]
        stmts.extend(self._connection_stmt(c) for c in config.connections.values())
        stmts.extend(
            self._mapping_stmt(c.id, m)
            for c in config.connections.values()
            for m in c.mappings.values()
        )
        stmts.append(
            (
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('sharing', ?)",
                (msgspec.json.encode(config.sharing).decode(),),
            )
        )
        stmts.append(
            (
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)",
                (msgspec.json.encode(config.settings).decode(),),
            )
        )
        for key, value in (("dhcp", config.dhcp), ("reservations", config.reservations)):
            stmts.append(
                (
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (key, msgspec.json.encode(value).decode()),
                )
            )
        self._tx(stmts)
