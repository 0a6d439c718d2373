"""The hourly recomputation that follows new typical speeds, against rebuilding the two tables whole.

    python bench/maintain.py [--devices 500] [--days 120] [--step-minutes 30] [--runs 5]
                             [--backend postgres|timescaledb]

``traffic_district_1h`` and ``traffic_device_1d`` hold sums against ``traffic_typical_speed``, which the
maintenance job recomputes hourly. Generates ``--days`` of readings as ``bench/dashboards.py`` does (40 % of
the devices are traffic detectors), builds every rollup, then alternates, ``--runs`` times each, in one
transaction apiece: the typical speeds and the long-range traffic rollups as ``maintain`` refreshes them
(the buckets of the ``typical_weeks`` the typical speeds describe, :func:`refresh.recompute_recent`), and
the baseline, the same typical speeds and both tables recomputed whole. Prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow
from psycopg.sql import SQL, Identifier
from queries import server_conf

from dashboards import populate
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.migrate import migrate
from urbanpulse.ingest.refresh import horizon, recompute, refresh_traffic_long, refresh_typical_speed
from urbanpulse.ingest.rollups import AGAINST_TYPICAL
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

Conn = psycopg.Connection[TupleRow]


def as_maintained(conn: Conn) -> None:
    until = horizon(conn)
    with conn.transaction():
        assert refresh_typical_speed(conn, timedelta(0))
        refresh_traffic_long(conn, until, typical_changed=True)


def whole(conn: Conn) -> None:
    with conn.transaction():
        assert refresh_typical_speed(conn, timedelta(0))
        for rollup in AGAINST_TYPICAL:
            row = conn.execute(SQL("SELECT {}").format(SQL(rollup.bucket_sql("now()")))).fetchone()
            assert row is not None
            conn.execute(SQL("DELETE FROM {}").format(Identifier(f"{rollup.name}_store")))
            recompute(conn, rollup, [(datetime.min.replace(tzinfo=UTC), row[0])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--step-minutes", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=("postgres", "timescaledb"), default="postgres")
    args = parser.parse_args()
    conf = server_conf(args.backend)
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(Path(tmp) / "pg", extra_conf=conf) as pg:
        settings = StorageSettings(backend=args.backend, premake=timedelta(days=2))
        migrate(pg.dsn, settings)
        populate(pg.dsn, args.devices, args.days, args.step_minutes, datetime.now(UTC).replace(second=0, microsecond=0))
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM rollup_state")  # older than the refresh lookback: build from the beginning
        maintain(pg.dsn, typical_every=timedelta(0))
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            variants: dict[str, Callable[[Conn], None]] = {"as maintained": as_maintained, "whole (baseline)": whole}
            took: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.runs):
                for name, run in variants.items():
                    started = time.perf_counter()
                    run(conn)
                    took[name].append(time.perf_counter() - started)
        print(f"{args.days} days x {args.devices * 2 // 5} traffic detectors, typical_weeks"
              f" {settings.typical_weeks}, {args.backend}; typical speeds + both tables, median of {args.runs}:")
        for name, seconds in took.items():
            print(f"  {name:<18} {statistics.median(seconds):6.2f} s  ({', '.join(f'{s:.2f}' for s in seconds)})")
        ratios = [b / a for a, b in zip(*took.values(), strict=True)]
        print(f"  whole / as maintained: {statistics.median(ratios):.2f} x (median of the runs' ratios)")


if __name__ == "__main__":
    main()
