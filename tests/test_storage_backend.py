"""Storage backends: migrations, idempotent writes, late readings, retention, batch_id lookups.

Every test here (and in the other ``test_storage_*`` modules, which import these fixtures) runs once
per backend: native PostgreSQL always, TimescaleDB when the cluster preloads it
(``URBANPULSE_TEST_PG_PRELOAD=timescaledb``; without it those cases are reported as skipped, with
the reason). The native case forces ``backend="postgres"`` so it runs on a TimescaleDB cluster too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

import psycopg
import pytest

from urbanpulse.contract import AirReading, IspeedReading, Kind, Reading, TrafficReading
from urbanpulse.ingest.batch import Batch, BatchResult
from urbanpulse.ingest.config import backend_in_use
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.migrate import applied, available, migrate
from urbanpulse.ingest.writer import write_batch
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

pytestmark = pytest.mark.integration

TIMESCALE = "timescaledb" in os.environ.get("URBANPULSE_TEST_PG_PRELOAD", "")
HOUR = timedelta(hours=1)
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
_names = itertools.count()


def empty_database(server: PostgresServer) -> str:
    return server.create_database(f"s{os.getpid()}_{next(_names)}")


@pytest.fixture(params=["postgres", "timescaledb"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "timescaledb" and not TIMESCALE:
        pytest.skip("TimescaleDB case: run with URBANPULSE_TEST_PG_PRELOAD=timescaledb")
    return str(request.param)


@pytest.fixture
def store(pg_cluster: PostgresServer, backend: str) -> str:
    """A fresh database migrated for ``backend``."""
    dsn = empty_database(pg_cluster)
    migrate(dsn, StorageSettings(backend=backend))  # type: ignore[arg-type]
    return dsn


def air(device: str, t: datetime, pm25: float = 30.0, **gases: float | None) -> AirReading:
    return AirReading(device_id=device, time=t, seq=int(t.timestamp()), pm25=pm25, pm10=pm25 * 1.6,
                      temperature=30.0, humidity=70.0, **gases)


def traffic(device: str, t: datetime, count: int = 20, speed: float = 40.0, occupancy: float = 10.0) -> TrafficReading:
    return TrafficReading(device_id=device, time=t, seq=int(t.timestamp()), vehicle_count=count, interval_s=60,
                          speed_kmh=speed, occupancy_pct=occupancy)


def ispeed(device: str, t: datetime, down: float, province: str = "Hà Nội", operator: str = "Viettel",
           network: Literal["4G", "5G"] = "4G") -> IspeedReading:
    return IspeedReading(device_id=device, time=t, seq=int(t.timestamp()), download_mbps=down, upload_mbps=down / 3,
                         latency_ms=30 + down / 10, jitter_ms=3.0, packet_loss_pct=0.0, operator=operator,
                         network=network, rsrp_dbm=-90.0, lat=21.0, lon=105.8, province=province)


KINDS = {AirReading: Kind.AIR, TrafficReading: Kind.TRAFFIC, IspeedReading: Kind.ISPEED}


def write(dsn: str, readings: Iterable[Reading]) -> BatchResult:
    """Store ``readings`` as one batch through the gateway's write path."""
    batch = Batch()
    for r in readings:
        batch.add(KINDS[type(r)], r, datetime.now(UTC))

    async def run() -> BatchResult:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await write_batch(conn, batch)

    return asyncio.run(run())


def count(dsn: str, query: str, params: object = None) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def test_migrations_choose_and_record_the_backend(store: str, backend: str) -> None:
    with psycopg.connect(store) as conn:
        assert backend_in_use(conn) == backend
        assert applied(conn) == [m.version for m in available()]
        if backend == "timescaledb":
            rows = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables"
                                " ORDER BY 1").fetchall()
            assert [r[0] for r in rows] == ["air_readings", "ispeed_readings", "traffic_readings"]
            caggs = conn.execute("SELECT view_name, materialized_only"
                                 " FROM timescaledb_information.continuous_aggregates ORDER BY 1").fetchall()
            assert caggs == [(n, False) for n in ("air_device_1h", "ispeed_1d", "ispeed_1h", "traffic_device_15m",
                                                  "traffic_device_1h")]
            jobs = conn.execute("SELECT proc_name, count(*) FROM timescaledb_information.jobs"
                                " WHERE hypertable_name IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
            assert dict(jobs) == {"policy_compression": 3, "policy_refresh_continuous_aggregate": 5,
                                  "policy_retention": 3}
            batches = conn.execute("SELECT DISTINCT config->>'buckets_per_batch' FROM timescaledb_information.jobs"
                                   " WHERE proc_name = 'policy_refresh_continuous_aggregate'").fetchall()
            assert batches == [("0",)]  # one atomic pass: no hole while older batches are still to come
        else:
            kinds = conn.execute("SELECT relname, relkind FROM pg_class WHERE relname IN"
                                 " ('air_readings', 'traffic_readings', 'ispeed_readings') ORDER BY 1").fetchall()
            assert kinds == [("air_readings", "p"), ("ispeed_readings", "p"), ("traffic_readings", "p")]
    assert migrate(store) == []  # a second run does nothing


def test_migrations_on_a_partly_migrated_database(pg_cluster: PostgresServer, backend: str) -> None:
    """001 + 002 applied (as in the field) with readings in them; the storage migrations keep every row."""
    dsn = empty_database(pg_cluster)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        for m in available()[:2]:
            conn.execute(m.sql)  # type: ignore[arg-type]
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", [m.version, m.name])
    # 2.5 days (several partitions / chunks) and one reading older than the rollups' refresh lookback
    old = [air("air-1", NOW - k * HOUR) for k in range(60)] + [air("air-1", NOW - timedelta(days=20))]
    write(dsn, [*old, traffic("tr-1", NOW), ispeed("sp-1", NOW, 50.0)])
    migrate(dsn, StorageSettings(backend=backend))  # type: ignore[arg-type]
    assert count(dsn, "SELECT count(*) FROM air_readings") == 61
    assert count(dsn, "SELECT count(*) FROM traffic_readings") == 1
    assert count(dsn, "SELECT sum(readings) FROM air_device_1h") == 61
    write(dsn, [air("air-1", NOW - HOUR), air("air-1", NOW + timedelta(minutes=1))])  # one duplicate
    assert count(dsn, "SELECT count(*) FROM air_readings") == 62
    maintain(dsn)
    assert count(dsn, "SELECT sum(readings) FROM air_device_1h") == 62
    assert count(dsn, "SELECT count(*) FROM air_daily") >= 4
    with psycopg.connect(dsn) as conn:
        assert backend_in_use(conn) == backend


def test_duplicates_and_late_readings_are_stored_once(store: str, backend: str) -> None:
    first = write(store, [air("air-1", NOW - k * HOUR) for k in range(48)])
    assert (first.stored, first.duplicates) == (48, 0)
    if backend == "timescaledb":  # late readings then land in compressed chunks
        # Every daily chunk that ends 15 h ago or earlier: the one holding NOW - 40 h always does, whatever
        # the time of day (with "older than 1 day" none did between 23:00 and 24:00 UTC).
        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute("SELECT compress_chunk(c)"
                         " FROM show_chunks('air_readings', older_than => now() - interval '15 hours') c")
            assert count(store, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name ="
                                " 'air_readings' AND is_compressed") >= 1
    again = write(store, [air("air-1", NOW - 40 * HOUR), air("air-1", NOW - 40 * HOUR + timedelta(minutes=30)),
                          air("air-1", NOW - 40 * HOUR + timedelta(minutes=30))])
    assert (again.stored, again.duplicates) == (1, 2)
    assert count(store, "SELECT count(*) FROM air_readings") == 49
    assert count(store, "SELECT count(*) FROM air_readings WHERE batch_id = %s", [again.batch_id]) == 1
    # the batch records say what was stored; the first attempt (rolled back on the key) left none
    assert count(store, "SELECT count(*) FROM ingest_batches") == 2
    assert count(store, "SELECT stored FROM ingest_batches WHERE id = %s", [again.batch_id]) == 1


def test_a_committed_batch_notifies_once(store: str) -> None:
    """Consumers are woken once per committed batch: not by an attempt rolled back on a duplicate."""
    with psycopg.connect(store, autocommit=True) as listener:
        listener.execute("LISTEN urbanpulse_batches")
        fresh = write(store, [air("air-1", NOW - k * HOUR) for k in range(3)])
        repeated = write(store, [air("air-1", NOW - 3 * HOUR), air("air-1", NOW - HOUR)])
        payloads = [n.payload for n in listener.notifies(timeout=1.0)]
    assert payloads == [str(fresh.batch_id), str(repeated.batch_id)]
    assert (repeated.stored, repeated.duplicates) == (1, 1)


def test_retention_drops_old_readings(store: str, backend: str) -> None:
    write(store, [air("air-1", NOW - timedelta(days=d)) for d in (0, 1, 5, 20, 40)])
    config = StorageSettings(backend=backend, air_retention=timedelta(days=10))  # type: ignore[arg-type]
    migrate(store, config)  # TimescaleDB: the policy takes the new retention
    if backend == "timescaledb":
        with psycopg.connect(store, autocommit=True) as conn:
            job = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
                               " AND hypertable_name = 'air_readings'").fetchone()
            assert job is not None
            conn.execute("CALL run_job(%s)", [job[0]])
    else:
        maintain(store, config)
    assert count(store, "SELECT count(*) FROM air_readings") == 3
    assert count(store, "SELECT count(*) FROM air_readings WHERE time < now() - interval '10 days'") == 0


def test_stragglers_of_the_default_partition_get_partitions(store: str, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("native partitioning only (TimescaleDB makes chunks on demand)")
    ahead = NOW + timedelta(days=9)  # beyond the partitions made ahead
    write(store, [air("air-1", ahead)])
    assert count(store, "SELECT count(*) FROM air_readings_default") == 1
    maintain(store, StorageSettings(premake=timedelta(days=12)))
    assert count(store, "SELECT count(*) FROM air_readings_default") == 0
    assert count(store, "SELECT count(*) FROM air_readings WHERE time = %s", [ahead]) == 1


def test_batch_id_lookups_use_an_index(store: str, backend: str) -> None:
    result = write(store, [air(f"air-{i}", NOW - k * HOUR) for i in range(20) for k in range(50)])
    with psycopg.connect(store) as conn:
        conn.execute("ANALYZE air_readings")
        conn.execute("SET enable_seqscan = off")  # on tiny tables the planner would rather scan
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT device_id, time FROM air_readings WHERE batch_id = ANY(%s)", [[result.batch_id]]))
    assert "Seq Scan" not in plan, plan
    scans = [line for line in plan.splitlines() if "Index Scan on" in line or "Custom Scan" in line]
    assert scans, plan
    if backend == "postgres":
        assert all("batch" in line for line in scans), plan


def test_past_partitions_get_a_device_index(store: str, backend: str) -> None:
    """The key leads with time (cheap writes); the job gives each past partition or chunk a device index."""
    write(store, [air(f"air-{i}", NOW - timedelta(days=3) + k * HOUR) for i in range(20) for k in range(30)])
    write(store, [air("air-1", NOW)])
    report = maintain(store, StorageSettings(backend=backend))  # type: ignore[arg-type]
    assert report.device_indexes_created["air_readings"] >= 2  # the days 3 and 2 ago (a day per chunk)
    assert maintain(store).device_indexes_created["air_readings"] == 0  # once
    with psycopg.connect(store) as conn:
        conn.execute("ANALYZE air_readings")
        conn.execute("SET enable_seqscan = off")
        past = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT time, pm25 FROM air_readings WHERE device_id = 'air-1' AND time >= %s AND time < %s",
            [NOW - timedelta(days=3), NOW - timedelta(days=2)]))
        current = conn.execute("SELECT tableoid FROM air_readings WHERE time = %s", [NOW]).fetchone()
        assert current is not None
        current_indexes = [r[0] for r in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s", [current[0]])]
    assert "_device" in past, past
    assert "Seq Scan" not in past, past
    assert current_indexes  # the key
    assert not any(i.endswith("_device") for i in current_indexes)  # not on the one being written
    rows = count(store, "SELECT count(*) FROM air_readings WHERE device_id = 'air-1'")
    assert rows == 31
    if backend == "timescaledb":  # chunks with the extra index still go to the columnstore, and take late data
        with psycopg.connect(store, autocommit=True) as conn:
            assert conn.execute("SELECT compress_chunk(c) FROM show_chunks('air_readings', older_than => now()) c"
                                ).fetchall()
    late = write(store, [air("air-1", NOW - timedelta(days=3)), air("air-1", NOW - timedelta(days=3, minutes=30))])
    assert (late.stored, late.duplicates) == (1, 1)


def test_the_time_first_key_migration_keeps_rows_and_idempotency(
    pg_cluster: PostgresServer, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database keyed (device_id, time) by 001-016, with readings (compressed ones on TimescaleDB), re-keyed."""
    dsn = empty_database(pg_cluster)
    before = [m for m in available() if m.version < 17]
    monkeypatch.setattr("urbanpulse.ingest.migrate.available", lambda: before)
    migrate(dsn, StorageSettings(backend=backend))  # type: ignore[arg-type]
    monkeypatch.undo()
    old = [air(f"air-{i}", NOW - timedelta(days=10) + k * HOUR) for i in range(3) for k in range(5)]
    write(dsn, [*old, air("air-1", NOW)])
    if backend == "timescaledb":
        with psycopg.connect(dsn, autocommit=True) as conn:
            compressed = conn.execute("SELECT compress_chunk(c) FROM show_chunks('air_readings',"
                                      " older_than => now() - interval '8 days') c").fetchall()
            assert compressed
    assert 17 in [m.version for m in migrate(dsn, StorageSettings(backend=backend))]  # type: ignore[arg-type]
    with psycopg.connect(dsn) as conn:
        key = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'air_readings_pkey'"
                           ).fetchone()
    assert key == ("PRIMARY KEY (\"time\", device_id)",)
    assert count(dsn, "SELECT count(*) FROM air_readings") == 16
    result = write(dsn, [old[0], old[-1], air("air-1", NOW), air("air-9", NOW)])  # three already stored
    assert (result.stored, result.duplicates) == (1, 3)
    assert count(dsn, "SELECT count(*) FROM air_readings") == 17
