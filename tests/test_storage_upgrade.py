"""Migrations 022 and 025 on a database in use: the speed-test rollups gain their counts (022), then keep each
radio network apart (025), and their history older than the readings' retention is kept (the first version of 022
rebuilt them from the readings alone and lost it)."""

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
    """Two tests an hour, one hour a day, for DAYS days: 30 Mbit/s and more, rising by a megabit a day back; the
    first of each hour 4G, the second 5G."""
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
                             " %s, -90, 21, 105, 'Ha Noi', now(), %s)",
                             [t, day * 2 + n, 30.0 + day + n, ("4G", "5G")[n], batch[0]])


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
        # the old days kept aside (022 on TimescaleDB, whose aggregates cannot gain columns; 025 on both)
        archived = conn.execute("SELECT count(*), coalesce(sum(tests), 0) FROM ispeed_1d_archive").fetchone()
        assert archived is not None
        assert archived[0] >= DAYS - KEPT - 1
        assert (live[0] / 2 + archived[0], live[1] + archived[1]) == before  # a row a network, one if archived
        assert live[2] == live[0]  # every day that still has readings has its counts
        (median,) = conn.execute(f"SELECT {median_sql()} FROM ispeed_1h WHERE bucket > now() - interval '3 days'"
                                 ).fetchone() or (None,)
        readings = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps)"
                                " FROM ispeed_readings WHERE time > now() - interval '3 days' - interval '1 hour'"
                                ).fetchone()
        assert readings is not None
        assert median == pytest.approx(readings[0], abs=5)
        conn.execute("SET ROLE urbanpulse_grafana")
        conn.execute("SELECT count(*) FROM ispeed_1h").fetchone()  # still readable by Grafana's role


@pytest.mark.parametrize("backend", ["postgres", "timescaledb"])
def test_025_splits_the_rollups_by_network(pg_cluster: PostgresServer, backend: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A database in use from before 025: afterwards each bucket with readings has a row a network whose counts
    are its network's tests, the older buckets are archived with their totals (network NULL), nothing is lost,
    and Grafana's role reads both."""
    if backend == "timescaledb" and not TIMESCALE:
        pytest.skip("TimescaleDB case: run with URBANPULSE_TEST_PG_PRELOAD=timescaledb")
    dsn = pg_cluster.create_database(f"net{os.getpid()}_{backend}")
    config = StorageSettings(backend=backend)
    everything = migrations.available
    monkeypatch.setattr(migrations, "available", lambda: [m for m in everything() if m.version < 25])
    migrations.migrate(dsn, config)
    monkeypatch.setattr(migrations, "available", everything)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        _tests(conn, now)
    maintain(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        pooled = conn.execute("SELECT count(*), sum(tests) FROM ispeed_1h").fetchone()
        assert pooled == (DAYS, 2 * DAYS)  # one row an hour: 4G and 5G together
        if backend == "timescaledb":
            conn.execute("SELECT drop_chunks('ispeed_readings', older_than => now() - %s::interval)",
                         [f"{KEPT} days"])
        else:
            conn.execute("DELETE FROM ispeed_readings WHERE time < now() - %s::interval", [f"{KEPT} days"])
        (left,) = conn.execute("SELECT count(*) FROM ispeed_readings").fetchone() or (0,)
    assert [m.version for m in migrations.migrate(dsn, config)] == [25]
    with psycopg.connect(dsn, autocommit=True) as conn:  # before any maintenance: the migration's own work
        rows = conn.execute("SELECT network, count(*), sum(tests), sum(below_40), min(download_median)"
                            " FROM ispeed_1h GROUP BY network ORDER BY network").fetchall()
        archived = conn.execute("SELECT count(*), sum(tests), count(network) FROM ispeed_1h_archive").fetchone()
        assert archived is not None
        hours_left = left // 2
        assert hours_left == KEPT
        assert [r[:3] for r in rows] == [("4G", KEPT, KEPT), ("5G", KEPT, KEPT)]
        # each network's own tests: 4G 30 + day Mbit/s, under 40 on days 0-9; 5G 31 + day, on days 0-8
        assert [r[3:] for r in rows] == [(10, 30.0), (9, 31.0)]
        assert archived[0] + hours_left == DAYS
        assert archived[1] + left == 2 * DAYS
        assert archived[2] == 0  # network NULL: all networks
        # the median of one network's rows is its tests' own
        (median_4g,) = conn.execute(f"SELECT {median_sql()} FROM ispeed_1h WHERE network = '4G'").fetchone() or (None,)
        exact = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps)"
                             " FROM ispeed_readings WHERE network = '4G'").fetchone()
        assert exact is not None
        assert median_4g == pytest.approx(exact[0], abs=5)
        conn.execute("SET ROLE urbanpulse_grafana")
        conn.execute("SELECT count(*) FROM ispeed_1d, ispeed_1d_archive").fetchone()
    maintain(dsn, config)  # and maintenance keeps the rows apart
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute("SELECT count(*), sum(tests), count(DISTINCT network) FROM ispeed_1d").fetchone()
        assert after == (2 * hours_left, left, 2)
