"""Migration 022 on a database in use: the speed-test rollups gain their counts, and their history older than the
readings' retention is kept (the first version rebuilt them from the readings alone and lost it)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from urbanpulse.ingest import migrate as migrations
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.speeds import median_sql
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

pytestmark = pytest.mark.integration

TIMESCALE = "timescaledb" in os.environ.get("URBANPULSE_TEST_PG_PRELOAD", "")
DAYS, KEPT = 20, 10


def _tests(conn: psycopg.Connection[tuple[object, ...]], now: datetime) -> None:
    """Two tests an hour, one hour a day, for DAYS days: 30 Mbit/s and more, rising by a megabit a day back."""
    with conn.transaction():
        batch = conn.execute("INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (%s, %s, 0)"
                             " RETURNING id", [2 * DAYS, 2 * DAYS]).fetchone()
        assert batch is not None
        for day in range(DAYS):
            for n, minute in enumerate((10, 40)):
                t = now - timedelta(days=day, hours=2) + timedelta(minutes=minute)
                conn.execute("INSERT INTO ispeed_readings (device_id, time, seq, download_mbps, upload_mbps,"
                             " latency_ms, jitter_ms, packet_loss_pct, operator, network, rsrp_dbm, lat, lon,"
                             " province, received_at, batch_id) VALUES ('p1', %s, %s, %s, 10, 20, 1, 0, 'Viettel',"
                             " '4G', -90, 21, 105, 'Ha Noi', now(), %s)", [t, day * 2 + n, 30.0 + day + n, batch[0]])


@pytest.mark.parametrize("backend", ["postgres", "timescaledb"])
def test_022_keeps_the_history_past_the_readings(pg_cluster: PostgresServer, backend: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "timescaledb" and not TIMESCALE:
        pytest.skip("TimescaleDB case: run with URBANPULSE_TEST_PG_PRELOAD=timescaledb")
    dsn = pg_cluster.create_database(f"up{os.getpid()}_{backend}")
    config = StorageSettings(backend=backend)
    everything = migrations.available
    monkeypatch.setattr(migrations, "available", lambda: [m for m in everything() if m.version < 22])
    migrations.migrate(dsn, config)  # a database from before 022
    monkeypatch.setattr(migrations, "available", everything)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        _tests(conn, now)
    maintain(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = conn.execute("SELECT count(*), sum(tests) FROM ispeed_1d").fetchone()
        assert before == (DAYS, 2 * DAYS)
        if backend == "timescaledb":  # the readings' retention, as its policy would run it
            conn.execute("SELECT drop_chunks('ispeed_readings', older_than => now() - %s::interval)",
                         [f"{KEPT} days"])
        else:
            conn.execute("DELETE FROM ispeed_readings WHERE time < now() - %s::interval", [f"{KEPT} days"])
    assert [m.version for m in migrations.migrate(dsn, config)][:1] == [22]  # and what came after it
    maintain(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        live = conn.execute("SELECT count(*), sum(tests), count(below_40) FROM ispeed_1d").fetchone()
        assert live is not None
        archived = (0, 0)
        if backend == "timescaledb":  # a continuous aggregate cannot gain columns: the old days kept aside
            archived = conn.execute("SELECT count(*), coalesce(sum(tests), 0) FROM ispeed_1d_archive").fetchone()
        assert (live[0] + archived[0], live[1] + archived[1]) == before
        assert live[2] >= KEPT - 1  # the days that still have readings have their counts
        (median,) = conn.execute(f"SELECT {median_sql()} FROM ispeed_1h WHERE bucket > now() - interval '3 days'"
                                 ).fetchone() or (None,)
        readings = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps)"
                                " FROM ispeed_readings WHERE time > now() - interval '3 days' - interval '1 hour'"
                                ).fetchone()
        assert readings is not None
        assert median == pytest.approx(readings[0], abs=5)
        conn.execute("SET ROLE urbanpulse_grafana")
        conn.execute("SELECT count(*) FROM ispeed_1h").fetchone()  # still readable by Grafana's role
