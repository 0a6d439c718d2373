"""The readings tables agree with the reading contract (it is defined once, in urbanpulse.contract)."""

from __future__ import annotations

import psycopg
import pytest

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_columns, table_name
from urbanpulse.ingest.migrate import applied, available, migrate

PG_NAMES = {"text": "text", "int8": "bigint", "float8": "double precision", "timestamptz":
            "timestamp with time zone", "bool": "boolean"}


@pytest.mark.integration
def test_tables_match_the_contract(database: str) -> None:
    with psycopg.connect(database) as conn:
        for kind in Kind:
            rows = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position", [table_name(kind)]).fetchall()
            assert rows == [(c.name, PG_NAMES[c.pg_type]) for c in table_columns(kind)], kind


@pytest.mark.integration
def test_migrate_is_idempotent(database: str) -> None:
    assert migrate(database) == []
    with psycopg.connect(database) as conn:
        assert applied(conn) == [m.version for m in available()]
