"""Incidents: simultaneous events of one metric family in one district or province, handled as one.

A citywide haze is one incident with its member events, not 200 alerts. Every event belongs to
exactly one incident (possibly of one member). At an event's opening, in reading time, with
``window`` = ``incident_window_seconds``:

- **place**: the device's province and district in ``devices`` when it is registered there; for a
  speed test without a registered province, the province of the reading that opened the event;
  otherwise province ``unknown`` (and no district).
- **join**: the event joins the active (not resolved) incident of its family and province that is
  still going on around it: from ``opened_at - window`` on, up to ``last_opened_at + window`` (the
  window slides with each new member) or as long as a member was anomalous within the window before
  it (its last anomalous reading or resolution at or after ``t - window``). So a haze whose stations
  cross the line one by one over hours stays one incident, while an event after the place has been
  calm for a window opens a new one. A province-wide incident is preferred, then one of its own
  district.
- **roll up**: joining a district incident from another district (or from no district) turns it
  into a province incident: a haze over two districts of a province is one provincial incident.
- **open**: without one to join, a new incident opens: district scope when the district is known,
  else province scope.

An incident's severity is the highest of its members'; it resolves by itself when its last member
resolves (``resolved_at`` the latest member's). Incidents raised by a rule (``rule`` not NULL: a slow
province, :mod:`.slow_provinces`) have no members: no event joins them, and the rule resolves them.
Operators acknowledge or resolve an incident with its members (:mod:`urbanpulse.analytics.lifecycle`).

Concurrency: every transaction that writes events or incidents of a metric family first takes that
family's transaction advisory lock (:func:`lock_families`, in a fixed order). Two writers never
hold locks on the same family's rows at once, so they cannot deadlock, and the find-or-create of an
incident cannot race.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from urbanpulse.analytics.publish import Change, enqueue
from urbanpulse.analytics.severity import FAMILIES, FAMILY_LABEL, SEVERITIES, Severity

__all__ = ["SETTLE", "UNKNOWN", "Incidents", "Place", "family_lock", "lock_families", "place_of", "title"]

UNKNOWN = "unknown"
LOCK_CLASS = 0x75726265  # 'urbe'
LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"

Conn = AsyncConnection[Any]


def family_lock(family: str) -> tuple[int, int]:
    """The advisory lock key of a metric family (an unknown family shares the last key)."""
    return LOCK_CLASS, FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


async def lock_families(conn: Conn, families: Iterable[str]) -> None:
    """Take the transaction locks of ``families``, in key order (the same order in every writer)."""
    for key in sorted({family_lock(f) for f in families}):
        await conn.execute(LOCK, key)


@dataclass(frozen=True, slots=True)
class Place:
    province: str
    district: str | None


_DEVICE_PLACE = "SELECT NULLIF(province, ''), NULLIF(district, '') FROM devices WHERE device_id = %s"
_READING_PROVINCE = "SELECT province FROM ispeed_readings WHERE device_id = %s AND time = %s"


async def place_of(conn: Conn, device_id: str, kind: str, time: datetime | None) -> Place:
    """Where an event of ``device_id`` opening at ``time`` happened (see the module docstring)."""
    row = await (await conn.execute(_DEVICE_PLACE, [device_id])).fetchone()
    if row is not None and row[0] is not None:
        return Place(row[0], row[1])
    if kind == "ispeed" and time is not None:
        reading = await (await conn.execute(_READING_PROVINCE, [device_id, time])).fetchone()
        if reading is not None and reading[0]:
            return Place(str(reading[0]), None)
    return Place(UNKNOWN, None)


def title(family: str, scope: str, province: str, district: str | None, members: int, districts: int,
          device_id: str, metric: str) -> str:
    """A one-line description: what, how many, where."""
    label = FAMILY_LABEL.get(family, family)
    where = f"{district}, {province}" if scope == "district" and district else province
    where = "an unknown place" if where == UNKNOWN else where
    if members <= 1:
        return f"{label}: {metric} anomaly at {device_id} in {where}"
    if scope == "province" and districts > 1:
        return f"{label}: {members} events in {districts} districts of {province}"
    return f"{label}: {members} events in {where}"


_FIND = """
SELECT id, scope, district FROM incidents i
WHERE kind = %(kind)s AND province = %(province)s AND status <> 'resolved' AND rule IS NULL
  AND %(t)s >= opened_at - %(window)s
  AND (%(t)s <= last_opened_at + %(window)s
       OR EXISTS (SELECT 1 FROM events e WHERE e.incident_id = i.id
                  AND COALESCE(e.resolved_at, e.last_seen_at) >= %(t)s - %(window)s))
ORDER BY scope = 'province' DESC, district IS NOT DISTINCT FROM %(district)s DESC, last_opened_at DESC, id
LIMIT 1
"""
_CREATE = """
INSERT INTO incidents (scope, province, district, kind, severity, title, members, opened_at, last_opened_at,
                       notified_at)
VALUES (%(scope)s, %(province)s, %(district)s, %(kind)s, %(severity)s, %(title)s, 1, %(t)s, %(t)s, %(t)s)
RETURNING id
"""
_JOIN = """
UPDATE incidents SET last_opened_at = GREATEST(last_opened_at, %(t)s), opened_at = LEAST(opened_at, %(t)s),
    scope = CASE WHEN %(roll_up)s THEN 'province' ELSE scope END,
    district = CASE WHEN %(roll_up)s THEN NULL ELSE district END
WHERE id = %(id)s
"""
_MEMBERS = """
SELECT i.kind, i.scope, i.province, i.district, i.severity, i.last_opened_at, i.notified_at,
       count(e.id), count(DISTINCT e.district), min(e.device_id), min(e.metric),
       max(array_position(ARRAY['info', 'warning', 'critical'], e.severity))
FROM incidents i LEFT JOIN events e ON e.incident_id = i.id
WHERE i.id = %s AND i.rule IS NULL GROUP BY i.id
"""
_REFRESH = "UPDATE incidents SET members = %(members)s, severity = %(severity)s, title = %(title)s WHERE id = %(id)s"
_NOTIFIED = "UPDATE incidents SET notified_at = last_opened_at WHERE id = %s"
# Resolve an incident whose members are all resolved; ``by`` NULL when analytics resolved the last one.
SETTLE = """
UPDATE incidents i SET status = 'resolved', closed_at = now(), resolved_by = %(by)s,
    resolved_at = (SELECT max(resolved_at) FROM events WHERE incident_id = i.id)
WHERE i.id = %(id)s AND i.status <> 'resolved' AND i.rule IS NULL
  AND EXISTS (SELECT 1 FROM events WHERE incident_id = i.id)
  AND NOT EXISTS (SELECT 1 FROM events WHERE incident_id = i.id AND status <> 'resolved')
RETURNING i.id
"""


@dataclass(slots=True)
class _Touched:
    created: bool = False
    significant: bool = False  # scope changed


@dataclass(slots=True)
class Incidents:
    """The incident side of one analytics transaction: :meth:`join` at openings, :meth:`finish` at the end."""

    conn: Conn
    window: timedelta
    update_every: timedelta
    touched: dict[int, _Touched] = field(default_factory=dict)
    opened: int = 0
    outbox: int = 0  # statements queued

    async def join(self, family: str, place: Place, t: datetime, severity: Severity, device_id: str,
                   metric: str) -> int:
        """The incident an event of ``family`` opening at ``t`` in ``place`` belongs to (created if need be)."""
        params = {"kind": family, "province": place.province, "district": place.district, "t": t,
                  "window": self.window}
        row = await (await self.conn.execute(_FIND, params)).fetchone()
        if row is None:
            scope = "district" if place.district else "province"
            params |= {"scope": scope, "severity": severity.value,
                       "title": title(family, scope, place.province, place.district, 1, 1, device_id, metric)}
            created = await (await self.conn.execute(_CREATE, params)).fetchone()
            assert created is not None
            self.touched[int(created[0])] = _Touched(created=True)
            self.opened += 1
            return int(created[0])
        incident_id, scope, district = int(row[0]), row[1], row[2]
        roll_up = scope == "district" and district != place.district
        await self.conn.execute(_JOIN, {"id": incident_id, "t": t, "roll_up": roll_up})
        touched = self.touched.setdefault(incident_id, _Touched())
        touched.significant |= roll_up
        return incident_id

    def touch(self, incident_id: int | None) -> None:
        """A member changed (resolved, severity rose): refresh, settle and maybe publish it at the end."""
        if incident_id is not None:
            self.touched.setdefault(incident_id, _Touched())

    async def finish(self) -> None:
        """Refresh every touched incident (members, severity, title), settle it and queue its changes."""
        for incident_id in sorted(self.touched):
            touched = self.touched[incident_id]
            row = await (await self.conn.execute(_MEMBERS, [incident_id])).fetchone()
            if row is None:  # raised by a rule (a slow province): its rule keeps its title, severity and state
                continue
            kind, scope, province, district, old_severity, last_opened_at, notified_at = row[:7]
            members, districts, device_id, metric, rank = row[7:]
            severity = SEVERITIES[rank - 1] if rank else Severity.INFO
            await self.conn.execute(_REFRESH, {
                "id": incident_id, "members": members, "severity": severity.value,
                "title": title(kind, scope, province, district, members, districts, device_id or "", metric or ""),
            })
            if touched.created:  # queued as it opened, before it may settle: a message carries the state it
                await self._queue(incident_id, "opened")  # is read in (an incident opened and resolved in one
                # chunk -- a backlog, a spool replay -- went out as "opened" with status resolved, not retained)
            settled = await (await self.conn.execute(SETTLE, {"id": incident_id, "by": None})).fetchone()
            if settled is not None:
                await self._queue(incident_id, "resolved")
            elif not touched.created and (touched.significant or severity != old_severity or notified_at is None
                                          or last_opened_at - notified_at >= self.update_every):
                await self.conn.execute(_NOTIFIED, [incident_id])
                await self._queue(incident_id, "updated")
        self.touched.clear()

    async def _queue(self, incident_id: int, change: Change) -> None:
        self.outbox += await enqueue(self.conn, "incident", incident_id, change)
