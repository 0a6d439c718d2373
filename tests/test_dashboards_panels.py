"""Every panel's SQL, expanded as Grafana would, runs against a real database and returns plottable rows.

The database is filled the way the gateway fills it: simulated messages (with a PM2.5 spike and some
malformed ones) are parsed by the gateway's parser into ingest batches and written by ingest's writer;
one open and one resolved event are inserted by hand. Then, for each panel, for the last 1 h, 24 h and
7 d of the data, and for a one-value and an every-value selection of the (multi-value) template
variables, the query is expanded with ``$__interval`` as Grafana picks it for ~200 points, and run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from urbanpulse.contract import Kind
from urbanpulse.dashboards import panels
from urbanpulse.dashboards.macros import auto_interval, expand
from urbanpulse.dashboards.render import dashboard_json, panel_queries, variable_queries
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.writer import write_batch
from urbanpulse.sim.city import fleet
from urbanpulse.sim.stream import Spike, messages

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
STEPS = 4 * 60  # four hours of readings
END = START + STEPS * STEP
RANGES = (timedelta(hours=1), timedelta(hours=24), timedelta(days=7))
SPIKE = Spike(device_id="air-00003", metric="pm25", start=200, length=5, factor=6.0)

TIMESTAMP_OIDS = {"timestamptz", "timestamp"}
NUMERIC_TYPES = {"int2", "int4", "int8", "float4", "float8", "numeric"}


@dataclass(frozen=True, slots=True)
class Loaded:
    dsn: str
    provinces: tuple[str, ...]
    dead_letters: int


async def _populate(dsn: str) -> tuple[set[str], int]:
    devices = fleet(10, seed=11)
    provinces = {d.province.name for d in devices if d.kind is Kind.ISPEED}
    dead = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        batch = Batch()
        stream = messages(devices, START, STEPS, STEP, seed=11, malformed_rate=0.03, spikes=(SPIKE,))
        for index, message in enumerate(stream):
            received_at = START + (index // len(devices)) * STEP + timedelta(seconds=2)
            parsed = parse_message(message.topic, message.payload, received_at)
            if parsed.kind is not None:
                for reading in parsed.readings:
                    batch.add(parsed.kind, reading, received_at)
            for letter in parsed.rejected:
                batch.reject(letter)
            if len(batch) >= 2000:
                dead += (await write_batch(conn, batch)).dead_letters
                batch = Batch()
        if len(batch):
            dead += (await write_batch(conn, batch)).dead_letters
        await conn.execute(
            "INSERT INTO events (device_id, kind, metric, detector, status, severity, opened_at, last_seen_at,"
            " resolved_at, peak_score, last_score, peak_value, readings) VALUES"
            " (%s, 'air', 'pm25', 'ewma', 'open', 'critical', %s, %s, NULL, 0.97, 0.91, 180.0, 5),"
            " ('traffic-00001', 'traffic', 'speed_kmh', 'ewma', 'resolved', 'warning', %s, %s, %s,"
            "  0.85, 0.2, 4.0, 3)",
            [SPIKE.device_id, START + SPIKE.start * STEP, START + (SPIKE.start + 4) * STEP,
             END - timedelta(minutes=50), END - timedelta(minutes=45), END - timedelta(minutes=40)],
        )
    return provinces, dead


@pytest.fixture
def loaded(database: str) -> Loaded:
    provinces, dead = asyncio.run(_populate(database))
    assert dead > 0, "the stream should have produced malformed messages"
    return Loaded(database, tuple(sorted(provinces)), dead)


def _selections(data: Loaded) -> list[dict[str, Sequence[str]]]:
    """One value of each variable, then every value (what "All" sends), both as multi-value lists."""
    return [
        {"kind": ["air"], "province": [data.provinces[0]]},
        {"kind": [k.value for k in Kind], "province": list(data.provinces)},
    ]


def _run(conn: psycopg.Connection[Any], sql: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    cur = conn.execute(sql.encode())
    assert cur.description is not None
    columns = []
    for column in cur.description:
        info = psycopg.postgres.types.get(column.type_code)
        columns.append((column.name, info.name if info else str(column.type_code)))
    return columns, cur.fetchall()


def _check_time_series(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]], lo: datetime,
                       interval: timedelta, allowed: set[str] | None, label: str) -> None:
    name, kind = columns[0]
    assert name == "time", label
    # $__timeGroup is an epoch number on plain PostgreSQL (Grafana reads it as seconds), a
    # timestamptz under TimescaleDB's time_bucket.
    assert kind in TIMESTAMP_OIDS | {"numeric", "float8"}, (label, kind)
    assert any(k in NUMERIC_TYPES for n, k in columns[1:] if n != "metric"), (label, columns)
    times = [r[0] for r in rows]
    assert times == sorted(times), f"{label}: rows must be ordered by time"
    if kind in ("numeric", "float8"):
        assert all(lo.timestamp() - interval.total_seconds() <= float(t) <= END.timestamp() for t in times), label
    names = [n for n, _ in columns]
    if allowed is not None and "metric" in names:
        got = {r[names.index("metric")] for r in rows}
        assert got <= allowed, (label, got - allowed)


def _allowed_series(title: str, selection: dict[str, Sequence[str]]) -> set[str] | None:
    if title == panels.ISPEED_DOWNLOAD.title:
        return set(selection["province"])
    if title == panels.READING_RATE.title:
        return set(selection["kind"])
    return None


def test_every_panel_returns_rows_for_every_range(loaded: Loaded) -> None:
    document = dashboard_json()
    queries = panel_queries(document)
    assert {q.panel_title for q in queries} == {p.title for p in panels.CITY.panels}
    declared = {p.title: p for p in panels.CITY.panels}
    checked = 0
    with psycopg.connect(loaded.dsn) as conn:
        for span in RANGES:
            time_from, time_to = END - span, END
            interval = auto_interval(span, 200)
            for selection in _selections(loaded):
                for query in queries:
                    sql = expand(query.raw_sql, time_from=time_from, time_to=time_to, interval=interval,
                                 variables=selection)
                    label = f"{query.panel_title} / last {span} / {selection}"
                    columns, rows = _run(conn, sql)
                    assert rows, f"{label}: no rows\n{sql}"
                    if query.panel_type == "timeseries":
                        assert query.format == "time_series", label
                        _check_time_series(columns, rows, time_from, interval,
                                           _allowed_series(query.panel_title, selection), label)
                    else:
                        assert query.format == "table", label
                        assert tuple(n for n, _ in columns) == declared[query.panel_title].columns, label
                    checked += 1
    assert checked == len(RANGES) * 2 * len(queries)


def test_tables_show_what_they_say(loaded: Loaded) -> None:
    variables = {"kind": [k.value for k in Kind], "province": list(loaded.provinces)}
    span = timedelta(days=7)
    with psycopg.connect(loaded.dsn) as conn:
        events_sql = expand(panels.EVENTS.sql, time_from=END - span, time_to=END,
                            interval=auto_interval(span), variables=variables)
        _, rows = _run(conn, events_sql)
        # open first, then resolved ones that were still active inside the range
        assert [(r[0], r[1], r[6]) for r in rows] == [(SPIKE.device_id, "pm25", "open"),
                                                       ("traffic-00001", "speed_kmh", "resolved")]
        later = expand(panels.EVENTS.sql, time_from=END - timedelta(minutes=30), time_to=END,
                       interval=auto_interval(span), variables=variables)
        _, rows = _run(conn, later)
        assert [r[6] for r in rows] == ["open"]  # resolved 40 min before END: outside the last 30 min
        letters_sql = expand(panels.DEAD_LETTERS.sql, time_from=END - span, time_to=END + STEP,
                             interval=auto_interval(span), variables=variables)
        _, rows = _run(conn, letters_sql)
        assert sum(int(r[3]) for r in rows) == loaded.dead_letters


def test_rate_panel_counts_readings_per_minute(loaded: Loaded) -> None:
    """With one reading per device a minute, each full bucket shows the number of devices."""
    span = timedelta(hours=1)
    sql = expand(panels.READING_RATE.sql, time_from=END - span, time_to=END - timedelta(seconds=1),
                 interval=timedelta(minutes=5), variables={"kind": ["traffic"]})
    with psycopg.connect(loaded.dsn) as conn:
        _, rows = _run(conn, sql)
    rates = [Decimal(str(r[2])) for r in rows]
    assert rates, sql
    assert max(rates) <= 10  # 10 traffic devices, a reading each a minute; malformed ones are missing
    assert sum(rates) / len(rates) > 9


def test_variable_query_lists_provinces(loaded: Loaded) -> None:
    sql = expand(variable_queries(dashboard_json())["province"], time_from=END - timedelta(hours=1),
                 time_to=END, interval=timedelta(seconds=20))
    with psycopg.connect(loaded.dsn) as conn:
        _, rows = _run(conn, sql)
    assert tuple(r[0] for r in rows) == loaded.provinces


def test_timescaledb_expansion_uses_time_bucket() -> None:
    for query in panel_queries(dashboard_json()):
        sql = expand(query.raw_sql, time_from=END - timedelta(hours=1), time_to=END,
                     interval=timedelta(seconds=20), variables={"kind": ["air"], "province": ["Ha Noi"]},
                     timescaledb=True)
        if query.panel_type == "timeseries":
            assert "time_bucket('20.000s',time) AS \"time\"" in sql, query.panel_title
            assert "floor(" not in sql, query.panel_title
        assert "$" not in sql, (query.panel_title, sql)
