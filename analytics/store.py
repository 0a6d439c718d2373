"""The database edge of analytics: committed batches in, events and checkpoints out.

Reading: every ingest transaction records an ``ingest_batches`` row whose ``xid`` is its
transaction id. The horizon (:mod:`urbanpulse.ingest.horizon`) is the oldest transaction of the
snapshot still running that may be an ingest one, or the snapshot's ``xmax`` when there is none, so
every batch below it has committed (or never will). A consumer reads the batches with ``last_horizon <= xid
< horizon`` and moves on: an ingest transaction that started early and commits late holds the horizon
back until it ends, so its batch is never skipped; any other transaction (a TimescaleDB job, a report,
another database's work) does not.

Writing: a chunk's events, their incidents, the outbox rows that publish their changes and the
checkpoint (horizon, detector and event state) go in one transaction, so after a crash the consumer
resumes exactly where its events stop and every committed change is published. The checkpoint update is
fenced on the horizon it was loaded at: a second consumer under the same name fails with
:class:`CheckpointConflictError` instead of raising every event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from urbanpulse.analytics.events import Transition
from urbanpulse.analytics.incidents import Incidents, lock_families, place_of
from urbanpulse.analytics.publish import Change, outbox_rows
from urbanpulse.analytics.severity import Severity, family, severity
from urbanpulse.analytics.state import METRIC_KIND, Points, SeriesState, points, scored_metrics
from urbanpulse.contract import SLOW_DOWNLOAD_MBPS, Kind
from urbanpulse.ingest.horizon import HORIZON_SQL, horizon_of

__all__ = ["DETECTOR", "CheckpointConflictError", "Chunk", "Policy", "Written", "close_resolved", "load_checkpoint",
           "plan_chunk", "read_chunk", "save"]

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
# Every change goes through the one open row of (device, metric, detector): a repeat updates it,
# also when another writer inserted it concurrently (the arbiter is the partial unique index).
_RANKS = "ARRAY['info', 'warning', 'critical']"
_EVENT_CHANGES = f"""
    last_seen_at = GREATEST(e.last_seen_at, EXCLUDED.last_seen_at),
    last_score = EXCLUDED.last_score,
    peak_value = CASE WHEN EXCLUDED.peak_score > e.peak_score THEN EXCLUDED.peak_value ELSE e.peak_value END,
    peak_score = GREATEST(e.peak_score, EXCLUDED.peak_score),
    readings = e.readings + EXCLUDED.readings,
    severity = CASE WHEN array_position({_RANKS}, EXCLUDED.severity) > array_position({_RANKS}, e.severity)
               THEN EXCLUDED.severity ELSE e.severity END,
    flapping = e.flapping OR EXCLUDED.flapping
"""
_EVENT_RETURNING = "RETURNING e.id, {inserted}, e.severity, e.notified_severity, e.notified_at, e.last_seen_at, " \
    "e.incident_id"
_EVENT_UPSERT = f"""
INSERT INTO events AS e (device_id, kind, metric, detector, opened_at, last_seen_at, peak_score,
                         last_score, peak_value, readings, severity, flapping, notified_at, notified_severity)
VALUES (%(device_id)s, %(kind)s, %(metric)s, %(detector)s, %(first_at)s, %(last_seen_at)s,
        %(peak_score)s, %(last_score)s, %(peak_value)s, %(readings)s, %(severity)s, %(flapping)s,
        %(last_seen_at)s, %(severity)s)
ON CONFLICT (device_id, metric, detector) WHERE status <> 'resolved' DO UPDATE SET {_EVENT_CHANGES}
{_EVENT_RETURNING.format(inserted="e.xmax = 0")}
"""
# An event the rules hold open is only ever updated: no row to update means an operator resolved it
# since the chunk began (its readings are dropped, and the next chunk closes it in the rules' state).
_EVENT_UPDATE = f"""
UPDATE events AS e SET {_EVENT_CHANGES}
FROM (SELECT %(last_seen_at)s::timestamptz AS last_seen_at, %(last_score)s::float8 AS last_score,
             %(peak_value)s::float8 AS peak_value, %(peak_score)s::float8 AS peak_score,
             %(readings)s::int AS readings, %(severity)s::text AS severity, %(flapping)s::bool AS flapping) AS excluded
WHERE e.device_id = %(device_id)s AND e.metric = %(metric)s AND e.detector = %(detector)s AND e.status <> 'resolved'
{_EVENT_RETURNING.format(inserted="false")}
"""
_OPEN_EVENTS = "SELECT device_id, metric FROM events WHERE detector = %s AND status <> 'resolved'"
_EVENT_PLACE = "UPDATE events SET province = %s, district = %s, incident_id = %s WHERE id = %s"
_EVENT_NOTIFIED = "UPDATE events SET notified_at = last_seen_at, notified_severity = severity WHERE id = %s"
_EVENT_RESOLVE = """
UPDATE events SET status = 'resolved', resolved_at = %(resolved_at)s, last_score = %(resolving_score)s,
    closed_at = now()
WHERE device_id = %(device_id)s AND metric = %(metric)s AND detector = %(detector)s AND status <> 'resolved'
RETURNING id, incident_id
"""


async def close_resolved(conn: Conn, state: SeriesState) -> int:
    """Close, in ``state``'s event rules, the events an operator resolved: series held open there
    whose event row is resolved. Returns how many. Their next event needs a confirmed candidate, as
    any new one does, instead of taking the next reading above ``resolve_score`` for an update."""
    held_open = state.events.is_open.nonzero()[0].tolist()
    if not held_open:
        return 0
    rows = await (await conn.execute(_OPEN_EVENTS, [DETECTOR])).fetchall()
    still_open = {(device, metric) for device, metric in rows}
    closed = [s for s in held_open if state.keys[s] not in still_open]
    for s in closed:
        state.events.close(s)
    return len(closed)


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
        row = await (await conn.execute(HORIZON_SQL)).fetchone()
        assert row is not None
        horizon = max(horizon_of(row), since)  # see horizon_of
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


@dataclass(frozen=True, slots=True)
class Policy:
    """How event changes are rated, grouped and published (from ``AnalyticsSettings``)."""

    download_line_mbps: float = SLOW_DOWNLOAD_MBPS
    incident_window: timedelta = timedelta(minutes=15)
    update_every: timedelta = timedelta(minutes=5)  # reading time between two 'updated' messages of one event


@dataclass(slots=True)
class Written:
    """What one chunk's transaction wrote."""

    opened: int = 0
    extended: int = 0  # open events that got readings
    updated: int = 0  # ... of which an 'updated' message was queued
    resolved: int = 0
    flapping: int = 0
    incidents_opened: int = 0
    outbox: int = 0  # statements queued for MQTT


def _event_params(state: SeriesState, t: Transition, policy: Policy) -> dict[str, Any]:
    device_id, metric = state.keys[t.series]
    rated = severity(metric, t.peak_value, t.peak_score or 0.0, baseline=float(state.ewma.mean[t.series]),
                     download_line_mbps=policy.download_line_mbps)
    return {
        "device_id": device_id, "kind": METRIC_KIND[metric].value, "metric": metric, "detector": DETECTOR,
        "first_at": t.first_at, "last_seen_at": t.last_seen_at, "peak_score": t.peak_score,
        "last_score": t.last_score, "peak_value": t.peak_value, "readings": t.readings,
        "resolved_at": t.resolved_at, "resolving_score": t.resolving_score, "severity": rated.value,
        "flapping": t.flapping,
    }


async def _queue(conn: Conn, out: Written, subject_id: int, change: Change) -> None:
    for statement, params in outbox_rows("event", subject_id, change):
        await conn.execute(statement, params)
        out.outbox += 1


async def _apply(conn: Conn, t: Transition, p: dict[str, Any], incidents: Incidents, out: Written,
                 policy: Policy) -> None:
    """Write one transition: upsert its readings, place a new event in an incident, resolve; queue the changes."""
    row = None
    if t.readings:
        row = await (await conn.execute(_EVENT_UPSERT if t.opened else _EVENT_UPDATE, p)).fetchone()
    if row is not None:
        event_id, inserted, rated, notified_severity, notified_at, last_seen_at, incident_id = row
        if inserted:
            place = await place_of(conn, p["device_id"], p["kind"], t.first_at)
            assert t.first_at is not None
            incident_id = await incidents.join(family(p["metric"]), place, t.first_at, Severity(rated),
                                               p["device_id"], p["metric"])
            await conn.execute(_EVENT_PLACE, [place.province, place.district, incident_id, event_id])
            await _queue(conn, out, event_id, "opened")
            out.opened += 1
        else:
            out.extended += 1
            if not t.flapping and (
                notified_severity is None or notified_at is None or rated != notified_severity
                or last_seen_at - notified_at >= policy.update_every
            ):
                await conn.execute(_EVENT_NOTIFIED, [event_id])
                await _queue(conn, out, event_id, "updated")
                out.updated += 1
                if rated != notified_severity:
                    incidents.touch(incident_id)
        if t.flapping:
            await conn.execute(_EVENT_NOTIFIED, [event_id])
            await _queue(conn, out, event_id, "flapping")
            out.flapping += 1
    if t.resolved_at is not None:
        row = await (await conn.execute(_EVENT_RESOLVE, p)).fetchone()
        if row is not None:  # None: an operator resolved it already
            await _queue(conn, out, int(row[0]), "resolved")
            incidents.touch(row[1])
            out.resolved += 1


async def save(
    conn: Conn, name: str, previous: int | None, horizon: int, state: SeriesState,
    transitions: Sequence[Transition], policy: Policy | None = None,
) -> Written:
    """Write ``transitions`` to ``events`` (and incidents and the outbox) and the checkpoint, in one transaction."""
    policy = policy or Policy()
    out = Written()
    async with conn.transaction():
        cur = await conn.execute(_CHECKPOINT_SAVE, {
            "name": name, "horizon": horizon, "state": state.to_bytes(), "previous": previous,
        })
        if cur.rowcount != 1:
            msg = f"checkpoint {name!r} was moved by another consumer (expected horizon {previous})"
            raise CheckpointConflictError(msg)
        await lock_families(conn, (family(state.keys[t.series][1]) for t in transitions))
        incidents = Incidents(conn, policy.incident_window, policy.update_every)
        for t in transitions:  # in order: a series may resolve one event and open the next
            await _apply(conn, t, _event_params(state, t, policy), incidents, out, policy)
        await incidents.finish()
        out.incidents_opened, out.outbox = incidents.opened, out.outbox + incidents.outbox
    return out
