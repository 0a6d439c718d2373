"""Dashboard queries on rollups against the same questions asked of the raw readings, in one run.

    python bench/queries.py [--devices 500] [--days 30] [--step-minutes 5] [--backend postgres|timescaledb]

Generates ``--days`` of air readings for ``--devices`` stations (10 provinces, 40 districts, one
reading every ``--step-minutes``) straight into the database with SQL, runs the maintenance job
(rollups and AQI built from the beginning), then times each question on its rollup and on the raw
readings: p50 / p95 over ``--runs`` runs (``--raw-runs`` for raw), and raw p50 / rollup p50.
Questions over several days read the daily rollups (whole days in the day time zone, both sides), as a
dashboard over a week or a month does; hourly rollups answer the hourly questions.
Targets: rollup p95 < 100 ms; raw / rollup >= 20x at 30 days.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

BIN = "date_bin('1 hour', r.time, '2000-01-03 00:00+00')"
DAY_ZONE = ZoneInfo(StorageSettings().day_timezone)  # where the daily rollups' days start
DAY = f"date_trunc('day', r.time, '{DAY_ZONE.key}')"
RAW_PLACE = ("FROM air_readings r LEFT JOIN devices d ON d.device_id = r.device_id"
             " WHERE r.time >= %(lo)s AND r.time < %(hi)s")

# (question, rollup SQL, raw SQL answering the same question)
QUESTIONS = {
    "province hourly PM2.5 (+AQI)": (
        "SELECT bucket, province, pm25_mean, aqi FROM air_hourly_province"
        " WHERE bucket >= %(lo)s AND bucket < %(hi)s ORDER BY 1, 2",
        f"SELECT {BIN}, coalesce(d.province, 'unknown'), avg(r.pm25) {RAW_PLACE} GROUP BY 1, 2 ORDER BY 1, 2"),
    "province daily PM2.5 + AQI": (
        "SELECT bucket, province, pm25_mean, aqi FROM air_daily_province"
        " WHERE bucket >= %(lo)s AND bucket < %(hi)s ORDER BY 1, 2",
        f"SELECT {DAY}, coalesce(d.province, 'unknown'), avg(r.pm25) {RAW_PLACE} GROUP BY 1, 2 ORDER BY 1, 2"),
    "top-10 stations by max hourly PM2.5": (
        "SELECT device_id, max(pm25_mean) FROM air_device_1h WHERE bucket >= %(lo)s AND bucket < %(hi)s"
        " GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
        f"SELECT device_id, max(m) FROM (SELECT r.device_id, {BIN}, avg(r.pm25) AS m FROM air_readings r"
        " WHERE r.time >= %(lo)s AND r.time < %(hi)s GROUP BY 1, 2) s GROUP BY 1 ORDER BY 2 DESC LIMIT 10"),
    "top-10 stations by max hourly PM2.5, from days": (
        "SELECT device_id, max(pm25_max_1h) FROM air_daily WHERE bucket >= %(lo)s AND bucket < %(hi)s"
        " GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
        f"SELECT device_id, max(m) FROM (SELECT r.device_id, {BIN}, avg(r.pm25) AS m FROM air_readings r"
        " WHERE r.time >= %(lo)s AND r.time < %(hi)s GROUP BY 1, 2) s GROUP BY 1 ORDER BY 2 DESC LIMIT 10"),
    "one province, hourly per station (+AQI)": (
        "SELECT bucket, device_id, pm25_mean, aqi FROM air_hourly WHERE province = 'P03'"
        " AND bucket >= %(lo)s AND bucket < %(hi)s ORDER BY 1, 2",
        f"SELECT {BIN}, r.device_id, avg(r.pm25) {RAW_PLACE} AND d.province = 'P03' GROUP BY 1, 2 ORDER BY 1, 2"),
}
PLAN = [  # (question, range in days): daily rollups answer whole days (in the day time zone), up to today
    ("province hourly PM2.5 (+AQI)", 1), ("province hourly PM2.5 (+AQI)", 7),
    ("province daily PM2.5 + AQI", 30),
    ("top-10 stations by max hourly PM2.5", 1),
    ("top-10 stations by max hourly PM2.5, from days", 7), ("top-10 stations by max hourly PM2.5, from days", 30),
    ("one province, hourly per station (+AQI)", 1), ("one province, hourly per station (+AQI)", 7),
]
DAILY = {"province daily PM2.5 + AQI", "top-10 stations by max hourly PM2.5, from days"}

GENERATE = """
INSERT INTO air_readings (device_id, time, seq, pm25, pm10, temperature, humidity, no2, o3, so2, co, noise,
                          received_at, batch_id)
SELECT d.device_id, t, extract(epoch FROM t)::bigint,
       greatest(1, 35 + 25 * sin(extract(hour FROM t) / 3.82) + d.offs + 20 * random()),
       greatest(2, 60 + 35 * sin(extract(hour FROM t) / 3.82) + d.offs + 30 * random()),
       28 + 4 * random(), 60 + 30 * random(), 30 + 60 * random(), 40 + 120 * random(), 10 + 30 * random(),
       800 + 2000 * random(), NULL, t + interval '2 seconds', %(batch)s
FROM (SELECT device_id, (hashtext(device_id) %% 20)::float8 AS offs FROM devices WHERE kind = 'air') AS d,
     generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 second', %(step)s::interval) AS t
"""


def populate(dsn: str, devices: int, days: int, step_minutes: int, end: datetime) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, province, district, lat, lon, secret_hash)"
            " SELECT format('air-%%s', lpad(i::text, 4, '0')), 'air', format('P%%s', lpad((i %% 10)::text, 2, '0')),"
            " format('D%%s', lpad((i %% 40)::text, 2, '0')), 21, 105, '$7$101$c2FsdA==$aGFzaA=='"
            " FROM generate_series(0, %s - 1) i", [devices])
        for day in range(days):
            lo = end - timedelta(days=days - day)
            row = conn.execute("INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (0, 0, 0)"
                               " RETURNING id").fetchone()
            assert row is not None
            conn.execute(GENERATE, {"batch": row[0], "lo": lo, "hi": lo + timedelta(days=1),
                                    "step": f"{step_minutes} minutes"})
        conn.execute("ANALYZE")
        total = conn.execute("SELECT count(*) FROM air_readings").fetchone()
        print(f"generated {total[0] if total else 0:,} air readings ({devices} stations x {days} days)")


def timings(conn: psycopg.Connection[object], query: str, params: dict[str, object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()  # type: ignore[arg-type]
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def server_conf(backend: str) -> dict[str, str]:
    """The benchmark server's settings (bench/dashboards.py and bench/maintain.py use them too)."""
    conf = {"shared_buffers": "1GB", "work_mem": "64MB"}
    if backend == "timescaledb":
        conf |= {"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"}
    return conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step-minutes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--raw-runs", type=int, default=5)
    parser.add_argument("--backend", choices=("postgres", "timescaledb"), default="postgres")
    args = parser.parse_args()
    conf = server_conf(args.backend)
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(Path(tmp) / "pg", extra_conf=conf) as pg:
        migrate(pg.dsn, StorageSettings(backend=args.backend, premake=timedelta(days=2)))
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        started = time.perf_counter()
        populate(pg.dsn, args.devices, args.days, args.step_minutes, end)
        print(f"  in {time.perf_counter() - started:.0f} s")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:  # generated data is older than the
            conn.execute("DELETE FROM rollup_state")  # refresh lookback: build rollups from the beginning
        started = time.perf_counter()
        maintain(pg.dsn, typical_every=timedelta(0))
        print(f"maintain (rollups and AQI from the beginning): {time.perf_counter() - started:.0f} s")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            print(f"backend {args.backend}; p50 / p95 in ms (rollup: {args.runs} runs, raw: {args.raw_runs})")
            for question, days in PLAN:
                rollup_sql, raw_sql = QUESTIONS[question]
                hi = end
                if question in DAILY:  # whole days, the last one ending at today's midnight
                    hi = end.astimezone(DAY_ZONE).replace(hour=0).astimezone(UTC)
                params: dict[str, object] = {"lo": hi - timedelta(days=days), "hi": hi}
                timings(conn, rollup_sql, params, 2)  # warm up
                fast = timings(conn, rollup_sql, params, args.runs)  # type: ignore[arg-type]
                slow = timings(conn, raw_sql, params, args.raw_runs)  # type: ignore[arg-type]
                ratio = statistics.median(slow) / statistics.median(fast)
                print(f"{question:<42} {days:>2} d | rollup {statistics.median(fast):7.1f} / {p95(fast):7.1f}"
                      f" | raw {statistics.median(slow):8.1f} / {p95(slow):8.1f} | raw/rollup {ratio:6.1f}x")


if __name__ == "__main__":
    main()
