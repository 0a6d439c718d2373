"""Ingest write path against its ceiling, measured in one run on this machine.

    python bench/ingest.py [--rows 200000] [--repeat 3] [--backend postgres|timescaledb]

- ceiling: binary COPY of the same air readings into a bare copy of the table (no key, no index, not
  partitioned), one transaction per batch;
- for reference: the same COPY into a copy that has the primary key (what the key alone costs);
- urbanpulse: ``write_batch`` -- one transaction: the batch row (NOTIFY at commit), binary COPY into the
  migrated table (partitioned or hypertable, primary key (time, device_id), BRIN on batch_id), which is
  idempotent: a duplicate makes the batch be written again through staging and ``ON CONFLICT DO NOTHING``
  (tests/test_storage_backend.py); here every reading is new, as nearly always;
- for reference: the write path when every batch repeats one reading of the batch before (a
  redelivery), so that every batch takes the idempotent route;

for batches of 1,000 and 10,000 readings. Both start from readings in memory (the batches are built before
the clock starts, as the gateway hands them over) and build and encode rows the same way (itemgetter,
psycopg ``write_row``).
Medians of ``--repeat`` runs (fresh readings each run); the ratio urbanpulse / ceiling (target >= 0.5).
``--backend timescaledb`` starts the server with the library preloaded (it must be installed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import psycopg

from urbanpulse.contract import AirReading, Kind
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.columns import reading_columns, table_columns
from urbanpulse.ingest.migrate import migrate
from urbanpulse.ingest.writer import write_batch
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

DEVICES = 500


def readings(count: int, start: datetime) -> list[AirReading]:
    out = []
    for i in range(count):
        t = start + timedelta(seconds=60 * (i // DEVICES))
        out.append(AirReading.model_construct(
            device_id=f"air-{i % DEVICES:04d}", time=t, seq=i, pm25=10.0 + i % 50, pm10=20.0 + i % 70,
            temperature=28.5, humidity=70.0, no2=40.0, o3=60.0, so2=None, co=900.0, noise=None))
    return out


async def ceiling(dsn: str, rows: list[AirReading], size: int, keyed: bool = False) -> float:
    columns = table_columns(Kind.AIR)
    fields = itemgetter(*(c.name for c in reading_columns(Kind.AIR)))  # as ingest/writer.py builds a row
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute("DROP TABLE IF EXISTS bare_air")
        await conn.execute("CREATE TABLE bare_air (LIKE air_readings)")  # no key, no index
        if keyed:  # for reference: what the primary key alone costs (not idempotent: fails on a duplicate)
            await conn.execute("ALTER TABLE bare_air ADD PRIMARY KEY (time, device_id)")
        await conn.commit()
        started = time.perf_counter()
        for i in range(0, len(rows), size):
            async with conn.transaction():
                copy_sql = "COPY bare_air FROM STDIN (FORMAT BINARY)"
                async with conn.cursor().copy(copy_sql) as copy:
                    copy.set_types([c.pg_type for c in columns])
                    now = datetime.now(UTC)
                    for r in rows[i:i + size]:
                        await copy.write_row((*fields(r.__dict__), now, 1))
        return len(rows) / (time.perf_counter() - started)


async def urbanpulse(dsn: str, rows: list[AirReading], size: int, redelivered: bool = False) -> float:
    """The write path's rows/s; ``redelivered``: every batch after the first also repeats one reading of
    the batch before (a redelivery), so each takes the idempotent route (staging, ON CONFLICT)."""
    batches = []  # the readings in memory as the gateway hands them over (the ceiling starts from a list too)
    for i in range(0, len(rows), size):
        batch = Batch()
        now = datetime.now(UTC)
        for r in rows[max(0, i - 1) if redelivered else i:i + size]:
            batch.add(Kind.AIR, r, now)
        batches.append(batch)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        started = time.perf_counter()
        for batch in batches:
            await write_batch(conn, batch)
        return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=("postgres", "timescaledb"), default="postgres")
    args = parser.parse_args()
    conf = {"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"} \
        if args.backend == "timescaledb" else {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(Path(tmp) / "pg", extra_conf=conf) as pg:
        migrate(pg.dsn, StorageSettings(backend=args.backend))
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        print(f"backend {args.backend}, {args.rows} air readings per run, {DEVICES} devices, median of {args.repeat}")
        for size in (1_000, 10_000):
            raw, keyed, ours, again = [], [], [], []
            for _ in range(args.repeat):
                rows = readings(args.rows, start)
                start += timedelta(seconds=60 * (args.rows // DEVICES + 1))  # new readings every run
                raw.append(asyncio.run(ceiling(pg.dsn, rows, size)))
                keyed.append(asyncio.run(ceiling(pg.dsn, rows, size, keyed=True)))
                ours.append(asyncio.run(urbanpulse(pg.dsn, rows, size)))
                rows = readings(args.rows, start)
                start += timedelta(seconds=60 * (args.rows // DEVICES + 1))
                again.append(asyncio.run(urbanpulse(pg.dsn, rows, size, redelivered=True)))
            c, k, u = statistics.median(raw), statistics.median(keyed), statistics.median(ours)
            print(f"batch {size:>6}: ceiling (bare COPY) {c:>9,.0f} rows/s | urbanpulse write path {u:>9,.0f} rows/s"
                  f" | ratio {u / c:.2f} (target >= 0.5) | for reference, COPY into a copy with the key:"
                  f" {k:>9,.0f} rows/s; the write path when every batch repeats a reading (idempotent route):"
                  f" {statistics.median(again):>9,.0f} rows/s")


if __name__ == "__main__":
    main()
