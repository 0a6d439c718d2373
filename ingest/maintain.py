"""``urbanpulse db maintain``: the storage job urbanpulse runs itself (every few minutes).

On native PostgreSQL:

- partitions: creates each readings table's partitions up to ``premake`` ahead, moves readings that
  landed in the default partition into partitions of their own (within the retention window, up to
  ``premake`` ahead; later ones wait in the default partition), drops partitions (and default rows)
  past the kind's retention;
- rollups: recomputes the buckets of ``air_device_1h``, ``traffic_device_15m``, ``traffic_device_1h``
  (from ``traffic_device_15m``, after it), ``ispeed_1h`` and ``ispeed_1d`` touched by the batches
  committed since the last run (ingest/refresh.py) and moves their watermarks to the current bucket.

On TimescaleDB, retention, columnstore and the refresh of the continuous aggregates are policies
run by TimescaleDB's scheduler; this job refreshes the aggregates once more over the lookback window
(so the AQI below reads the latest late data), and also the older buckets (within retention) that
batches committed since the last run touched, each aggregate keeping its horizon (ingest/timescale.py).

On both: each partition or chunk wholly in the past gets its (device_id, time) index for per-device
reads (the key leads with time, which keeps writes cheap; migration 017); hourly and daily VN_AQI per
station (air_aqi_1h, air_aqi_1d) and per district (air_district_1h, air_district_1d) of the hours
touched since the last run (and the hours and days depending on them), the traffic segments' typical
speeds (at most every ``typical_every``) and the long-range rollups of migration 018 (the traffic
ones rebuilt whole after new typical speeds, otherwise the buckets touched since the last run); the
refused messages (``dead_letters``) past ``dead_letter_retention`` are deleted, a batch a transaction.

Error policy: each step is its own transaction; an error rolls that step back and is raised (the
next run redoes it: every step is idempotent). An advisory lock keeps two runs from overlapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from psycopg.rows import TupleRow

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_name
from urbanpulse.ingest.config import backend_in_use, read_config, write_config
from urbanpulse.ingest.problems import NotMigratedError
from urbanpulse.ingest.refresh import (
    horizon,
    refresh_aqi,
    refresh_table,
    refresh_traffic_long,
    refresh_typical_speed,
)
from urbanpulse.ingest.rollups import AIR_1H, BASE
from urbanpulse.ingest.timescale import refresh_aggregates
from urbanpulse.settings import StorageSettings

_LOCK_KEY = 0x75726271  # 'urbq'
log = logging.getLogger(__name__)


@dataclass(slots=True)
class MaintainReport:
    """What one run did."""

    backend: str
    partitions_created: dict[str, int] = field(default_factory=dict)
    partitions_dropped: dict[str, int] = field(default_factory=dict)
    device_indexes_created: dict[str, int] = field(default_factory=dict)
    buckets_recomputed: dict[str, int] = field(default_factory=dict)
    typical_speed_refreshed: bool = False
    dead_letters_deleted: int = 0

    def lines(self) -> list[str]:
        out = [f"backend: {self.backend}"]
        for table, n in self.partitions_created.items():
            out.append(f"{table}: {n} partitions created, {self.partitions_dropped.get(table, 0)} dropped")
        out += [f"{table}: {n} device indexes created" for table, n in self.device_indexes_created.items() if n]
        out += [f"{name}: {n} buckets recomputed" for name, n in self.buckets_recomputed.items()]
        out.append("traffic typical speed: " + ("recomputed" if self.typical_speed_refreshed else "fresh"))
        out.append(f"dead letters: {self.dead_letters_deleted} past their retention deleted")
        return out


def _partitions(conn: psycopg.Connection[TupleRow], report: MaintainReport) -> None:
    config = read_config(conn)
    for kind in Kind:
        table = table_name(kind)
        retention = config[f"{kind.value}_retention"]
        with conn.transaction():
            row = conn.execute(
                "SELECT readings_ensure_partitions(%(t)s, now(), now() + %(ahead)s::interval),"
                " (SELECT readings_ensure_partitions(%(t)s, min(time), max(time) + interval '1 microsecond')"
                "  FROM " + table + "_default"
                "  WHERE time >= now() - %(keep)s::interval AND time < now() + %(ahead)s::interval),"
                " readings_drop_partitions(%(t)s, now() - %(keep)s::interval)",
                {"t": table, "ahead": config["premake"], "keep": retention},
            ).fetchone()
            assert row is not None
        report.partitions_created[table] = int(row[0]) + int(row[1] or 0)
        report.partitions_dropped[table] = int(row[2])


DEAD_LETTER_BATCH = 10_000  # rows deleted a transaction: a large backlog never holds a long lock


def _dead_letters(conn: psycopg.Connection[TupleRow], report: MaintainReport) -> None:
    """Delete the refused messages older than ``dead_letter_retention``, a batch a transaction."""
    keep = read_config(conn).get("dead_letter_retention")
    if keep is None:  # a database configured before the setting: the next `db migrate` or `maintain` writes it
        return
    while True:
        with conn.transaction():
            cur = conn.execute("DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                               " WHERE received_at < now() - %s::interval LIMIT %s)", [keep, DEAD_LETTER_BATCH])
        report.dead_letters_deleted += cur.rowcount
        if cur.rowcount < DEAD_LETTER_BATCH:
            return


def _device_indexes(conn: psycopg.Connection[TupleRow], report: MaintainReport) -> None:
    for kind in Kind:
        table = table_name(kind)
        with conn.transaction():
            row = conn.execute("SELECT readings_index_past(%s, now())", [table]).fetchone()
        assert row is not None
        report.device_indexes_created[table] = int(row[0])


def maintain(
    dsn: str, config: StorageSettings | None = None, typical_every: timedelta = timedelta(hours=1)
) -> MaintainReport:
    """Run the storage job once (see the module docstring); ``config`` updates the runtime settings."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            if config is not None:
                write_config(conn, config, fixed_too=False)  # a fixed key that differs: said by migrate
            backend = backend_in_use(conn)
            if backend is None:
                raise NotMigratedError
            report = MaintainReport(backend)
            # Every batch below the horizon committed before this run began, so the steps below (the
            # continuous aggregates' refresh first) see all of it; a batch committing meanwhile stays due.
            until = horizon(conn)
            if backend == "postgres":
                _partitions(conn, report)
            else:
                refresh_aggregates(conn, until)
            if backend == "postgres":
                for rollup in BASE:
                    with conn.transaction():
                        report.buckets_recomputed[rollup.name] = refresh_table(conn, rollup, until)
            with conn.transaction():
                report.buckets_recomputed["air_aqi"] = refresh_aqi(conn, until, AIR_1H)
            with conn.transaction():  # the typical speeds and the sums against them change together
                report.typical_speed_refreshed = refresh_typical_speed(conn, typical_every)
                report.buckets_recomputed |= refresh_traffic_long(conn, until, report.typical_speed_refreshed)
            _device_indexes(conn, report)
            _dead_letters(conn, report)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    return report


async def maintain_every(dsn: str, config: StorageSettings, stop: asyncio.Event) -> None:
    """Run :func:`maintain` now and then every ``config.maintain_seconds`` until ``stop`` is set.

    A failed run is logged and tried again at the next period (every step is idempotent), so a database
    outage delays the rollups but never stops the job.
    """
    while not stop.is_set():
        try:
            started = time.monotonic()
            report = await asyncio.to_thread(maintain, dsn, config)
            log.info("storage maintenance done in %.1f s: %s", time.monotonic() - started, "; ".join(report.lines()))
        except (psycopg.Error, OSError) as exc:
            log.warning("storage maintenance failed, retrying in %.0f s: %s", config.maintain_seconds, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.maintain_seconds)
