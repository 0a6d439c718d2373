"""``urbanpulse db status``: what a database holds, in lines a person reads.

Backend, applied migrations, and per readings table its rows, size, chunks (TimescaleDB, with how
many are in the columnstore and the compression ratio) or partitions (native, with the rows waiting
in the default partition); then the other tables, the rollups' watermarks and the storage settings
in force.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_name
from urbanpulse.ingest.config import read_config, shown
from urbanpulse.ingest.horizon import LOCK_IN_FORCE_SQL
from urbanpulse.ingest.migrate import applied, available

Conn = psycopg.Connection[TupleRow]


def _one(conn: Conn, query: str, params: list[object] | None = None) -> tuple[object, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def _timescale(conn: Conn, table: str) -> str:
    chunks, compressed = _one(conn, "SELECT count(*), count(*) FILTER (WHERE is_compressed)"
                                    " FROM timescaledb_information.chunks WHERE hypertable_name = %s", [table])
    before, after = _one(conn, "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes)"
                               " FROM chunk_columnstore_stats(%s)", [table])
    ratio = f"{float(before) / float(after):.1f}x" if before and after else "n/a"  # type: ignore[arg-type]
    size = _one(conn, "SELECT pg_size_pretty(hypertable_size(%s))", [table])[0]
    return f"{size}, {chunks} chunks ({compressed} in the columnstore, compression ratio {ratio})"


def _native(conn: Conn, table: str) -> str:
    parts, size = _one(conn, "SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(partition)))"
                             " FROM readings_partitions(%s)", [table])
    default = _one(conn, "SELECT count(*) FROM " + table + "_default")[0]
    total = _one(conn, "SELECT pg_size_pretty(sum(pg_total_relation_size(relid)))"
                       " FROM pg_partition_tree(%s::regclass)", [table])[0]
    return f"{total}, {parts} partitions ({size or '0 bytes'}) + default with {default} rows"


def status(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        have = applied(conn)
        lines = [f"migrations: {len(have)} of {len(available())} applied ({', '.join(map(str, have)) or 'none'})"]
        if not have:
            return lines
        config = read_config(conn)
        backend = config.get("backend_in_use")
        lines.insert(0, f"backend: {backend or 'plain tables (storage migrations not applied)'}")
        for kind in Kind:
            table = table_name(kind)
            rows = _one(conn, "SELECT count(*) FROM " + table)[0]
            detail = (_timescale(conn, table) if backend == "timescaledb" else _native(conn, table) if backend
                      else str(_one(conn, "SELECT pg_size_pretty(pg_total_relation_size(%s))", [table])[0]))
            lines.append(f"{table}: {rows} rows, {detail}")
        in_force = _one(conn, LOCK_IN_FORCE_SQL)[0]
        lines.append("ingest horizon: " + ("consumers wait for ingest transactions only" if in_force
                     else "the server's oldest transaction (trigger ingest_batches_mark missing or disabled:"
                     " events wait for every write transaction)"))
        for table in ("dead_letters", "events"):
            row = _one(conn, "SELECT count(*), pg_size_pretty(pg_total_relation_size(%s::regclass)) FROM " + table,
                       [table])
            lines.append(f"{table}: {row[0]} rows, {row[1]}")
        if backend:
            for name, watermark, updated in conn.execute(
                    "SELECT name, watermark::text, updated_at FROM rollup_state ORDER BY name").fetchall():
                lines.append(f"rollup {name}: complete below {watermark}, refreshed {updated:%Y-%m-%d %H:%M:%S%z}")
            settings = ", ".join(f"{k}={shown(v)}" for k, v in sorted(config.items())
                                 if not k.startswith("backend"))
            lines.append(f"storage settings: {settings}")
    return lines
