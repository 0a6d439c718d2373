"""TimescaleDB specifics: policies from the configuration, refreshing continuous aggregates.

Policies (set by ``migrate`` after the migrations, replaced each run so a changed setting applies):

- retention: ``add_retention_policy(<kind>_readings, drop_after => <kind>_retention)``;
- columnstore: ``add_columnstore_policy(<kind>_readings, after => compress_after)``;
- refresh: each continuous aggregate from ``refresh_lookback`` ago up to its last complete bucket,
  every bucket width (at most hourly). Real-time aggregation is on, so newer buckets are computed
  from the readings at query time. Older buckets that late data reaches are refreshed by
  :func:`refresh_aggregates` (the maintenance job), found like the native rollups' (``refresh``).

Every refresh, by policy or by :func:`refresh_aggregates`, is one atomic pass (``buckets_per_batch``
0). TimescaleDB (2.2x) refreshes in batches of 10 buckets, newest first, by default: after the first
batch the aggregate's watermark is already at the top, so until the older batches commit, real-time
queries read neither those buckets' materialisation nor their readings -- dashboards would show a hole.
"""

from __future__ import annotations

import itertools
import time
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import TupleRow

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_name
from urbanpulse.ingest.config import read_config
from urbanpulse.ingest.refresh import horizon, next_bucket, runs, touched_buckets
from urbanpulse.ingest.rollups import BASE

_REFRESH_ATTEMPTS = 150  # x 0.2 s


def _exists(conn: psycopg.Connection[TupleRow], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
    return bool(row and row[0])


def sync_policies(conn: psycopg.Connection[TupleRow]) -> None:
    """Replace the retention, columnstore and refresh policies with ones from ``storage_config``."""
    config = read_config(conn)
    for kind in Kind:
        table = table_name(kind)
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", [table])
        conn.execute("SELECT add_retention_policy(%s, drop_after => %s::interval)",
                     [table, config[f"{kind.value}_retention"]])
        conn.execute("CALL remove_columnstore_policy(%s, if_exists => true)", [table])
        conn.execute("CALL add_columnstore_policy(%s, after => %s::interval, if_not_exists => true)",
                     [table, config["compress_after"]])
    for rollup in BASE:
        if not _exists(conn, rollup.name):
            continue
        conn.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", [rollup.name])
        conn.execute(
            # the window (start - end offset) at least two buckets: TimescaleDB refuses a smaller one
            "SELECT add_continuous_aggregate_policy(%s, start_offset => greatest(%s::interval, 3 * %s::interval),"
            " end_offset => %s::interval, schedule_interval => least(%s::interval, interval '1 hour'),"
            " buckets_per_batch => 0)",
            [rollup.name, config["refresh_lookback"], rollup.width, rollup.width, rollup.width],
        )


def _refresh(conn: psycopg.Connection[TupleRow], name: str, start: object, end: object) -> None:
    """``refresh_continuous_aggregate`` of ``[start, end)`` in one pass, waiting for a policy job at it."""
    for attempt in itertools.count():
        try:
            conn.execute("CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz,"
                         " options => '{\"buckets_per_batch\": 0}')", [name, start, end])
            return
        except psycopg.errors.LockNotAvailable:  # the refresh policy is at it: wait for it
            if attempt >= _REFRESH_ATTEMPTS:
                raise
            time.sleep(0.2)


def refresh_aggregates(conn: psycopg.Connection[TupleRow], until: int | None = None) -> None:
    """Refresh every continuous aggregate over the lookback window, up to its last complete bucket, and
    the older buckets that batches committed since the last run touched (late data past the lookback: a
    spool replayed after a long outage, a backfill).

    ``until``: the ingest horizon the caller took before anything else (:func:`~urbanpulse.ingest.refresh.
    horizon`; taken here when None); batches below it are looked at, the others at the next run. The
    first time (no ``rollup_state`` row yet) from the beginning: an aggregate created over existing
    readings (a database migrated in the field) holds them all afterwards, not only the lookback's.
    ``conn`` must be in autocommit mode (``refresh_continuous_aggregate`` refuses transactions).
    """
    if until is None:
        until = horizon(conn)
    config = read_config(conn)
    zone = ZoneInfo(config["day_timezone"])
    for rollup in BASE:
        # the window at least two buckets (TimescaleDB refuses one shorter than a bucket: a daily
        # aggregate under a lookback of hours)
        row = conn.execute(f"SELECT {rollup.bucket_sql('now()')}, least(now() - %s::interval,"
                           f" {rollup.bucket_sql('now()')} - 2 * %s::interval), now() - %s::interval,"
                           " (SELECT horizon::text::bigint FROM rollup_state WHERE name = %s),"
                           " NOT EXISTS (SELECT 1 FROM rollup_state WHERE name = %s)",
                           [config["refresh_lookback"], rollup.width, config[f"{rollup.kind.value}_retention"],
                            rollup.name, rollup.name]).fetchone()
        assert row is not None
        end, lookback_start, kept_from, since, first = row
        _refresh(conn, rollup.name, None if first else lookback_start, end)
        if since is not None:  # None: the first run, or a database from before horizons were kept here
            # not the buckets whose readings retention may have dropped: the aggregate keeps their history
            older = [b for b in touched_buckets(conn, rollup, int(since), until) if kept_from <= b < lookback_start]
            for lo, hi in runs(older, next_bucket(rollup, zone)):
                _refresh(conn, rollup.name, lo, hi)
        conn.execute("INSERT INTO rollup_state (name, horizon, watermark) VALUES (%s, %s::text::xid8, %s)"
                     " ON CONFLICT (name) DO UPDATE SET horizon = EXCLUDED.horizon, watermark = EXCLUDED.watermark,"
                     " updated_at = now()", [rollup.name, until, end])
