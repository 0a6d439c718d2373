"""The operator's side of the lifecycle: list, acknowledge and resolve events and incidents.

Events and incidents go ``open -> acknowledged -> resolved``. Analytics opens, updates and resolves
them; an operator acknowledges (``acknowledged_at``, ``acknowledged_by``) or resolves them by hand
(``resolved_by``; ``resolved_at`` and ``closed_at`` are then the wall-clock time). Acknowledged
events still update and still resolve by themselves. ``time_to_acknowledge`` and
``time_to_resolve`` are computed columns (from ``raised_at``, when the row was written).

- Acknowledging an incident acknowledges its open member events too (also members that joined
  after an earlier acknowledgement); resolving an incident resolves its members.
- Resolving the last unresolved member of an incident resolves the incident.
- Resolving an event while its series is still anomalous raises a new event once the series is
  confirmed anomalous again (analytics closes the resolved event in its rules at its next chunk,
  :func:`urbanpulse.analytics.store.close_resolved`): resolving says "handled", not "the sensor is
  fine".

IDs: an event is its number (``42``, or ``E42``), an incident ``I`` and its number (``I7``).
Every operation is one transaction that first takes the metric family's lock (as analytics does,
see :mod:`urbanpulse.analytics.incidents`) and queues its changes in the outbox for MQTT.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from urbanpulse.analytics.incidents import LOCK, SETTLE, family_lock
from urbanpulse.analytics.publish import Change, Subject, outbox_rows
from urbanpulse.analytics.severity import family

__all__ = ["Outcome", "StatusFilter", "Target", "acknowledge", "list_events", "list_incidents", "parse_target",
           "resolve"]

Conn = psycopg.Connection[Any]
_TARGET = re.compile(r"^([EeIi]?)(\d{1,19})$")
_LAST_ID = 2**63 - 1  # ids are bigints


@dataclass(frozen=True, slots=True)
class Target:
    """An event (``incident=False``) or an incident, by id."""

    incident: bool
    id: int

    def __str__(self) -> str:
        return f"I{self.id}" if self.incident else str(self.id)


def parse_target(text: str) -> Target:
    """``42`` / ``E42``: event 42; ``I7``: incident 7."""
    match = _TARGET.match(text.strip())
    if match is None or int(match[2]) > _LAST_ID:
        msg = f"{text!r} is neither an event id (42, E42) nor an incident id (I7)"
        raise ValueError(msg)
    return Target(match[1].upper() == "I", int(match[2]))


@dataclass(slots=True)
class Outcome:
    """What an operation did: ``found`` the target, the ``changes`` made (``"I7 acknowledged"``), a note."""

    target: Target
    found: bool = True
    changes: list[str] = field(default_factory=list)
    note: str | None = None


class StatusFilter(enum.StrEnum):
    ACTIVE = "active"  # open or acknowledged
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ALL = "all"


def _queue(conn: Conn, out: Outcome, subject: Subject, subject_id: int, change: Change) -> None:
    for statement, params in outbox_rows(subject, subject_id, change):
        conn.execute(statement, params)
    out.changes.append(f"{subject} {'I' if subject == 'incident' else ''}{subject_id} {change}")


def _locked(conn: Conn, target: Target) -> str | None:
    """Take the target's family lock; its status (``None`` when there is no such target)."""
    query = "SELECT kind, status FROM incidents WHERE id = %s" if target.incident else \
        "SELECT metric, status FROM events WHERE id = %s"
    row = conn.execute(query, [target.id]).fetchone()
    if row is None:
        return None
    conn.execute(LOCK, family_lock(row[0] if target.incident else family(row[0])))
    again = conn.execute(query, [target.id]).fetchone()  # as it is now that nobody else writes it
    return None if again is None else str(again[1])


_ACK_EVENTS = """
UPDATE events SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(by)s
WHERE {where} AND status = 'open' RETURNING id
"""
_ACK_INCIDENT = """
UPDATE incidents SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(by)s
WHERE id = %(id)s AND status = 'open' RETURNING id
"""
_RESOLVE_EVENTS = """
UPDATE events SET status = 'resolved', resolved_at = now(), closed_at = now(), resolved_by = %(by)s
WHERE {where} AND status <> 'resolved' RETURNING id, incident_id
"""
_RESOLVE_INCIDENT = """
UPDATE incidents SET status = 'resolved', resolved_at = now(), closed_at = now(), resolved_by = %(by)s
WHERE id = %(id)s AND status <> 'resolved' RETURNING id
"""
_BY_ID, _BY_INCIDENT = "id = %(id)s", "incident_id = %(id)s"


def acknowledge(conn: Conn, target: Target, by: str) -> Outcome:
    """Acknowledge an open event, or an incident and its open members."""
    out = Outcome(target)
    params = {"id": target.id, "by": by}
    with conn.transaction():
        status = _locked(conn, target)
        if status is None:
            return Outcome(target, found=False, note="no such event or incident")
        if status == "resolved":
            out.note = "already resolved"
            return out
        if target.incident and conn.execute(_ACK_INCIDENT, params).fetchone() is not None:
            _queue(conn, out, "incident", target.id, "acknowledged")
        where = _BY_INCIDENT if target.incident else _BY_ID
        for (event_id,) in conn.execute(_ACK_EVENTS.format(where=where), params).fetchall():
            _queue(conn, out, "event", event_id, "acknowledged")
    if not out.changes:
        out.note = "already acknowledged"
    return out


def resolve(conn: Conn, target: Target, by: str) -> Outcome:
    """Resolve an event (and its incident when it was the last open member), or an incident and its members."""
    out = Outcome(target)
    params = {"id": target.id, "by": by}
    with conn.transaction():
        status = _locked(conn, target)
        if status is None:
            return Outcome(target, found=False, note="no such event or incident")
        where = _BY_INCIDENT if target.incident else _BY_ID
        incidents: set[int] = {target.id} if target.incident else set()
        for event_id, incident_id in conn.execute(_RESOLVE_EVENTS.format(where=where), params).fetchall():
            _queue(conn, out, "event", event_id, "resolved")
            if incident_id is not None:
                incidents.add(incident_id)
        for incident_id in sorted(incidents):
            query = _RESOLVE_INCIDENT if target.incident else SETTLE
            if conn.execute(query, {"id": incident_id, "by": by}).fetchone() is not None:
                _queue(conn, out, "incident", incident_id, "resolved")
    if not out.changes:
        out.note = "already resolved"
    return out


def _where(status: StatusFilter) -> str:
    return {StatusFilter.ACTIVE: "status <> 'resolved'", StatusFilter.ALL: "true"}.get(status, "status = %(status)s")


_ORDER = "ORDER BY status = 'resolved', array_position(ARRAY['critical', 'warning', 'info'], severity), opened_at DESC"
_LIST_EVENTS = """
SELECT id, status, flapping, severity, device_id, metric, province, district, incident_id, opened_at,
       last_seen_at, resolved_at, peak_value, peak_score, readings, acknowledged_by, resolved_by,
       time_to_acknowledge, time_to_resolve
FROM events WHERE {where} {order} LIMIT %(limit)s
"""
_LIST_INCIDENTS = """
SELECT id, status, severity, scope, province, district, kind, members, title, opened_at, resolved_at,
       acknowledged_by, resolved_by, time_to_acknowledge, time_to_resolve, rule
FROM incidents WHERE {where} {order} LIMIT %(limit)s
"""


def list_events(conn: Conn, status: StatusFilter = StatusFilter.ACTIVE, limit: int = 50) -> list[dict[str, Any]]:
    """Events with ``status``: not resolved first, then worst first, then newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        query = _LIST_EVENTS.format(where=_where(status), order=_ORDER)
        return cur.execute(query, {"status": status.value, "limit": limit}).fetchall()


def list_incidents(conn: Conn, status: StatusFilter = StatusFilter.ACTIVE, limit: int = 50) -> list[dict[str, Any]]:
    """Incidents with ``status``, in the order of :func:`list_events`."""
    with conn.cursor(row_factory=dict_row) as cur:
        query = _LIST_INCIDENTS.format(where=_where(status), order=_ORDER)
        return cur.execute(query, {"status": status.value, "limit": limit}).fetchall()
