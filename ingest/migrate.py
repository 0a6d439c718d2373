"""Versioned SQL migrations: ``migrations/NNN_name.sql``, each applied once, in order, in a transaction.

Safe to run twice and from several processes at once (an advisory lock serialises them).

From 003 on, a migration may come in one file per storage backend, ``NNN_name.timescaledb.sql`` and
``NNN_name.postgres.sql``: migration 003 chooses the backend (TimescaleDB when the extension is
installed and preloaded, native partitioning otherwise, unless ``StorageSettings.backend`` forces one) and
records it in ``storage_config``; later migrations apply the file of that backend. After the
migrations, the TimescaleDB policies (retention, columnstore, refresh) are set to the configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from urbanpulse.ingest.config import backend_in_use, write_config
from urbanpulse.settings import StorageSettings

_LOCK_KEY = 0x75726270  # 'urbp'
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)(?:\.(timescaledb|postgres))?\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str  # the backend-independent text; empty when the migration comes per backend
    variants: dict[str, str] = field(default_factory=dict)  # backend -> text

    def sql_for(self, backend: str | None) -> str:
        if not self.variants:
            return self.sql
        if backend not in self.variants:
            msg = f"migration {self.version:03d}_{self.name} has no variant for backend {backend!r}"
            raise RuntimeError(msg)
        return self.variants[backend]


def available() -> list[Migration]:
    """The migrations shipped with urbanpulse, in version order (one entry per version)."""
    common: dict[int, tuple[str, str]] = {}
    variants: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for entry in resources.files("urbanpulse.ingest").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, backend = int(match[1]), match[2], match[3]
        if names.setdefault(version, name) != name:
            msg = f"two migrations share version {version:03d}"
            raise RuntimeError(msg)
        text = entry.read_text(encoding="utf-8")
        if backend:
            variants.setdefault(version, {})[backend] = text
        else:
            common[version] = (name, text)
    return [
        Migration(v, names[v], common.get(v, ("", ""))[1], variants.get(v, {})) for v in sorted(names)
    ]


def applied(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """Versions already applied to the database (empty on a new one)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [int(row[0]) for row in rows]


def migrate(dsn: str, config: StorageSettings | None = None) -> list[Migration]:
    """Apply every migration the database lacks; return those applied now."""
    from urbanpulse.ingest.timescale import refresh_aggregates, sync_policies  # noqa: PLC0415 (imports us)

    config = config or StorageSettings()
    done: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            write_config(conn, config)
            have = set(applied(conn))
            for migration in available():
                if migration.version in have:
                    continue
                with conn.transaction():
                    text = migration.sql_for(backend_in_use(conn))
                    conn.execute(sql.SQL(text))  # our own files, never input
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        [migration.version, migration.name],
                    )
                done.append(migration)
            if backend_in_use(conn) == "timescaledb":
                sync_policies(conn)
                if done:  # a first refresh from the beginning (see refresh_aggregates)
                    refresh_aggregates(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    return done
