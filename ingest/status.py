"""``urbanpulse db status``: what a database holds, in lines a person reads."""

from __future__ import annotations

import psycopg

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_name
from urbanpulse.ingest.migrate import applied, available


def status(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        have = applied(conn)
        lines = [f"migrations: {len(have)} of {len(available())} applied ({', '.join(map(str, have)) or 'none'})"]
        if not have:
            return lines
        for table in [table_name(k) for k in Kind] + ["dead_letters", "events"]:
            row = conn.execute(
                "SELECT count(*), pg_size_pretty(pg_total_relation_size(%s::regclass)) FROM " + table,
                [table],
            ).fetchone()
            assert row is not None
            lines.append(f"{table}: {row[0]} rows, {row[1]}")
    return lines
