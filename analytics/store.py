"""The database edge of analytics: committed batches in, events and checkpoints out.

Reading: every ingest transaction records an ``ingest_batches`` row whose ``xid`` is its
transaction id. ``pg_snapshot_xmin(pg_current_snapshot())`` -- the horizon -- is the oldest
transaction still running, so every batch below it has committed (or never will). A consumer reads
the batches with ``last_horizon <= xid < horizon`` and moves on: a transaction that started early
and commits late holds the horizon back until it ends, so its batch is never skipped.

Writing: a chunk's events and the checkpoint (horizon and detector state) go in one transaction,
so after a crash the consumer resumes exactly where its events stop. The checkpoint update is
fenced on the horizon it was loaded at: a second consumer under the same name fails with
:class:`CheckpointConflictError` instead of raising every event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from urbanpulse.analytics.events import Transition
from urbanpulse.analytics.state import METRIC_KIND, Points, SeriesState, points, scored_metrics
from urbanpulse.contract import Kind

__all__ = ["DETECTOR", "CheckpointConflictError", "Chunk", "load_checkpoint", "plan_chunk", "read_chunk", "save"]

DETECTOR = "ewma"
MAX_TRANSACTIONS = 1000  # ingest transactions (batches) looked at per chunk
MAX_READINGS = 50_000  # a chunk stops at the first transaction boundary past this many readings

Conn = AsyncConnection[Any]


class CheckpointConflictError(RuntimeError):
    """Another consumer moved this checkpoint: two consumers run under one checkpoint name."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Batches to score and the horizon after them: every batch with xid below it is scored."""

    horizon: int
    batch_ids: list[int]
    points: Points
    more: bool  # committed batches above ``horizon`` were left for the next chunk


def plan_chunk(
    rows: Sequence[tuple[int, int, int]], horizon: int, complete: bool, max_readings: int = MAX_READINGS
) -> tuple[list[int], int]:
    """Choose batches ``(id, xid, readings)`` (ordered by xid, whole transactions) and the next horizon.

    ``complete`` says ``rows`` holds every batch below ``horizon``; otherwise it holds every batch of
    its transactions, so the next horizon is one past the last xid. Stops early at the first
    transaction boundary past ``max_readings`` readings.
    """
    ids: list[int] = []
    total = 0
    for j, (batch_id, xid, readings) in enumerate(rows):
        if j and xid != rows[j - 1][1] and total >= max_readings:
            return ids, xid
        ids.append(batch_id)
        total += readings
    if complete or not rows:
        return ids, horizon
    return ids, rows[-1][1] + 1


_CHECKPOINT_LOAD = "SELECT horizon::text::bigint, state FROM analytics_checkpoints WHERE name = %s"
_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_BATCHES = """
SELECT id, xid::text::bigint, readings FROM ingest_batches
WHERE xid IN (SELECT DISTINCT xid FROM ingest_batches
              WHERE xid >= %(since)s::text::xid8 AND xid < %(horizon)s::text::xid8
              ORDER BY xid LIMIT %(limit)s)
ORDER BY xid, id
"""
_CHECKPOINT_SAVE = """
INSERT INTO analytics_checkpoints AS c (name, horizon, state, updated_at)
VALUES (%(name)s, %(horizon)s::text::xid8, %(state)s, now())
ON CONFLICT (name) DO UPDATE SET horizon = EXCLUDED.horizon, state = EXCLUDED.state, updated_at = now()
WHERE c.horizon = %(previous)s::text::xid8
"""
# Every change goes through the one open row of (device, metric, detector): a repeat updates it.
_EVENT_UPSERT = """
INSERT INTO events AS e (device_id, kind, metric, detector, opened_at, last_seen_at, peak_score,
                         last_score, peak_value, readings)
VALUES (%(device_id)s, %(kind)s, %(metric)s, %(detector)s, %(first_at)s, %(last_seen_at)s,
        %(peak_score)s, %(last_score)s, %(peak_value)s, %(readings)s)
ON CONFLICT (device_id, metric, detector) WHERE status <> 'resolved' DO UPDATE SET
    last_seen_at = GREATEST(e.last_seen_at, EXCLUDED.last_seen_at),
    last_score = EXCLUDED.last_score,
    peak_value = CASE WHEN EXCLUDED.peak_score > e.peak_score THEN EXCLUDED.peak_value ELSE e.peak_value END,
    peak_score = GREATEST(e.peak_score, EXCLUDED.peak_score),
    readings = e.readings + EXCLUDED.readings
"""
_EVENT_RESOLVE = """
UPDATE events SET status = 'resolved', resolved_at = %(resolved_at)s, last_score = %(resolving_score)s
WHERE device_id = %(device_id)s AND metric = %(metric)s AND detector = %(detector)s AND status <> 'resolved'
"""


async def load_checkpoint(conn: Conn, name: str) -> tuple[int | None, SeriesState]:
    """The stored horizon (``None`` when there is no checkpoint yet) and state."""
    row = await (await conn.execute(_CHECKPOINT_LOAD, [name])).fetchone()
    if row is None:
        return None, SeriesState()
    horizon, state = row
    return int(horizon), SeriesState.from_bytes(bytes(state)) if state is not None else SeriesState()


def _readings_sql(kind: Kind) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(m) for m in ("device_id", "time", *scored_metrics(kind)))
    return sql.SQL("SELECT {} FROM {} WHERE batch_id = ANY(%s) ORDER BY time, device_id").format(
        columns, sql.Identifier(f"{kind.value}_readings")
    )


async def read_chunk(conn: Conn, since: int, state: SeriesState) -> Chunk | None:
    """The next chunk of committed batches at or above ``since``, or ``None`` when there is none.

    Reads in one repeatable-read snapshot; adds the chunk's new series to ``state``.
    """
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = await (await conn.execute(_HORIZON)).fetchone()
        assert row is not None
        horizon = int(row[0])
        cur = await conn.execute(_BATCHES, {"since": since, "horizon": horizon, "limit": MAX_TRANSACTIONS})
        rows = [(int(i), int(x), int(n)) for i, x, n in await cur.fetchall()]
        if not rows:
            return None
        complete = len({xid for _, xid, _ in rows}) < MAX_TRANSACTIONS
        ids, next_horizon = plan_chunk(rows, horizon, complete)
        parts = []
        for kind in Kind:
            cur = await conn.execute(_readings_sql(kind), [ids])
            parts.append(points(await cur.fetchall(), scored_metrics(kind), state))
    return Chunk(next_horizon, ids, Points.concat(parts), more=next_horizon != horizon)


def _event_params(state: SeriesState, t: Transition) -> dict[str, Any]:
    device_id, metric = state.keys[t.series]
    return {
        "device_id": device_id, "kind": METRIC_KIND[metric].value, "metric": metric, "detector": DETECTOR,
        "first_at": t.first_at, "last_seen_at": t.last_seen_at, "peak_score": t.peak_score,
        "last_score": t.last_score, "peak_value": t.peak_value, "readings": t.readings,
        "resolved_at": t.resolved_at, "resolving_score": t.resolving_score,
    }


async def save(
    conn: Conn, name: str, previous: int | None, horizon: int, state: SeriesState,
    transitions: Sequence[Transition],
) -> None:
    """Write ``transitions`` to ``events`` and the checkpoint, in one transaction."""
    async with conn.transaction():
        cur = await conn.execute(_CHECKPOINT_SAVE, {
            "name": name, "horizon": horizon, "state": state.to_bytes(), "previous": previous,
        })
        if cur.rowcount != 1:
            msg = f"checkpoint {name!r} was moved by another consumer (expected horizon {previous})"
            raise CheckpointConflictError(msg)
        for t in transitions:  # in order: a series may resolve one event and open the next
            params = _event_params(state, t)
            if t.readings:
                await conn.execute(_EVENT_UPSERT, params)
            if t.resolved_at is not None:
                await conn.execute(_EVENT_RESOLVE, params)
