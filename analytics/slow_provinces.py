"""Slow provinces: a province whose 4G speed tests have a median download under the line is one incident.

Operations centres call a province slow when its crowd-sourced speed tests' median download is under the
national line (40 Mbit/s: ``URBANPULSE_STORAGE__ISPEED_SLOW_MBPS``, fixed when the database is created). No
single test says so, and no anomaly detector sees it: a province that has always been slow never departs
from its own baseline. So this is a rule on the province's tests of the last ``hours`` (the rollup
``ispeed_1h``, all operators, reading time), checked every ``every`` of reading time:

- **slow** when more than half of at least ``min_tests`` tests were under the line (their median is);
- **recovered** when at most ``recovered_share`` of them were; in between, or with fewer tests, nothing
  changes (hysteresis: a median wavering about the line is one spell, not an incident an hour);
- **severity**: critical when more than half were under half the line (the rollups count tests under fixed
  speeds, :data:`~urbanpulse.ingest.speeds.POINTS`: the largest at or under half the line), else warning.
  The same rule :mod:`.severity` applies to one test.

A province turning slow opens an incident of the ``network`` family at province scope, ``rule =
'slow_download'``, titled with its median (read off the counts, :func:`~urbanpulse.ingest.speeds.median_sql`)
and counts; a check while it stays slow refreshes the title and severity (an "updated" message when the
severity changes); recovering resolves it. It has no member events and none joins it (an acute congestion in
a slow province is an incident of its own, :mod:`.incidents`). An operator may acknowledge or resolve it
like any incident (``urbanpulse events``); resolved by hand, it is not raised again until the province has
recovered and turned slow anew. Every change is published on MQTT like any incident's.

>>> verdict(tests=120, below_line=70, min_tests=30, recovered_share=0.45)
<Verdict.SLOW: 'slow'>
>>> verdict(tests=120, below_line=58, min_tests=30, recovered_share=0.45)  # 48 %: the deadband
<Verdict.UNSURE: 'unsure'>
>>> verdict(tests=12, below_line=12, min_tests=30, recovered_share=0.45)  # too few tests to say
<Verdict.UNSURE: 'unsure'>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from urbanpulse.analytics.incidents import lock_families
from urbanpulse.analytics.publish import Change, outbox_rows
from urbanpulse.analytics.severity import Severity
from urbanpulse.ingest.speeds import POINTS, median_sql

__all__ = ["RULE", "Checked", "ProvinceSpeed", "SlowRule", "Verdict", "check", "half_line_point", "rating",
           "title", "verdict"]

RULE = "slow_download"
FAMILY = "network"


class Verdict(enum.StrEnum):
    SLOW = "slow"
    RECOVERED = "recovered"
    UNSURE = "unsure"  # too few tests, or between the two levels: the province stays as it was


@dataclass(frozen=True, slots=True)
class SlowRule:
    """The rule's settings (``AnalyticsSettings.slow_province_*``)."""

    hours: int = 24
    min_tests: int = 30
    recovered_share: float = 0.45
    every: timedelta = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ProvinceSpeed:
    """A province's speed tests in the window."""

    province: str
    tests: int
    below_line: int
    below_half_line: int
    median_mbps: float


def verdict(tests: int, below_line: int, min_tests: int, recovered_share: float) -> Verdict:
    """Slow, recovered or neither, from the tests in the window and how many were under the line."""
    if tests < max(min_tests, 1):
        return Verdict.UNSURE
    if 2 * below_line > tests:
        return Verdict.SLOW
    return Verdict.RECOVERED if below_line <= recovered_share * tests else Verdict.UNSURE


def rating(speed: ProvinceSpeed) -> Severity:
    """Critical when the median is under half the line, else warning."""
    return Severity.CRITICAL if 2 * speed.below_half_line > speed.tests else Severity.WARNING


def title(speed: ProvinceSpeed, line_mbps: float, hours: int) -> str:
    """``Mobile network: Ha Giang slow, median download 31.4 Mbit/s under the 40 Mbit/s line (...)``."""
    share = speed.below_line / speed.tests if speed.tests else 0.0
    return (f"Mobile network: {speed.province} slow, median download {speed.median_mbps:.1f} Mbit/s under the "
            f"{line_mbps:g} Mbit/s line ({speed.below_line} of {speed.tests} tests under it, {share:.0%}, "
            f"last {hours} h)")


def half_line_point(line_mbps: float) -> int:
    """The rollups' counting speed used for "under half the line": the largest at or under it."""
    return max((p for p in POINTS if p <= line_mbps / 2), default=POINTS[0])


@dataclass(slots=True)
class Checked:
    """What one check did."""

    provinces: int = 0  # judged (with tests in the window)
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    outbox: int = 0


_LINE = "SELECT storage_setting('ispeed_slow_mbps')::float8"
_LATEST = "SELECT max(checked_at) FROM slow_provinces"
_SPEEDS = """
SELECT province, sum(tests)::bigint, sum(tests_below_line)::bigint, sum(below_{half})::bigint, {median}
FROM ispeed_1h
WHERE bucket > %(t)s - %(hours)s AND bucket <= %(t)s AND province IS NOT NULL AND province <> ''
GROUP BY province HAVING sum(tests) > 0
ORDER BY province
"""
_STATE = """
SELECT p.province, p.slow, i.id, i.status, i.severity
FROM slow_provinces p LEFT JOIN incidents i ON i.id = p.incident_id
"""
_OPEN = """
INSERT INTO incidents (scope, province, kind, severity, title, members, opened_at, last_opened_at, notified_at, rule)
VALUES ('province', %(province)s, 'network', %(severity)s, %(title)s, 0, %(t)s, %(t)s, %(t)s, 'slow_download')
RETURNING id
"""
_REFRESH = """
UPDATE incidents SET severity = %(severity)s, title = %(title)s, notified_at = COALESCE(%(notified)s, notified_at)
WHERE id = %(id)s
"""
_RESOLVE = """
UPDATE incidents SET status = 'resolved', resolved_at = %(t)s, closed_at = now()
WHERE id = %(id)s AND status <> 'resolved'
RETURNING id
"""
_REMEMBER = """
INSERT INTO slow_provinces (province, slow, changed_at, incident_id, tests, below_line, checked_at)
VALUES (%(province)s, %(slow)s, %(t)s, %(incident)s, %(tests)s, %(below)s, %(t)s)
ON CONFLICT (province) DO UPDATE SET
    changed_at = CASE WHEN slow_provinces.slow <> EXCLUDED.slow THEN EXCLUDED.changed_at
                      ELSE slow_provinces.changed_at END,
    slow = EXCLUDED.slow, incident_id = COALESCE(EXCLUDED.incident_id, slow_provinces.incident_id),
    tests = EXCLUDED.tests, below_line = EXCLUDED.below_line, checked_at = EXCLUDED.checked_at
"""


async def speeds(conn: AsyncConnection[Any], t: datetime, hours: int, line_mbps: float) -> list[ProvinceSpeed]:
    """Each province's tests in the ``hours`` up to reading time ``t`` (the hour buckets that began after
    ``t - hours``, up to the one ``t`` falls in)."""
    query = _SPEEDS.format(half=half_line_point(line_mbps), median=median_sql())
    rows = await (await conn.execute(query, {"t": t, "hours": timedelta(hours=hours)})).fetchall()
    return [ProvinceSpeed(str(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0), float(r[4] or 0.0)) for r in rows]


async def check(conn: AsyncConnection[Any], t: datetime, rule: SlowRule) -> Checked:
    """Judge every province with tests in the window at reading time ``t``; open, refresh or resolve their
    incidents; remember each verdict. One transaction, under the ``network`` family's lock."""
    done = Checked()
    async with conn.transaction():
        await lock_families(conn, [FAMILY])
        latest = (await (await conn.execute(_LATEST)).fetchone() or (None,))[0]
        if latest is not None and t < latest:  # older readings (a spool replayed after a restart): judged already
            return done
        line = (await (await conn.execute(_LINE)).fetchone() or (None,))[0]
        line_mbps = float(line) if line is not None else 40.0
        state = {r[0]: r[1:] for r in await (await conn.execute(_STATE)).fetchall()}
        for speed in await speeds(conn, t, rule.hours, line_mbps):
            done.provinces += 1
            judged = verdict(speed.tests, speed.below_line, rule.min_tests, rule.recovered_share)
            was_slow, incident_id, status, old_severity = state.get(speed.province, (False, None, None, None))
            active = incident_id is not None and status != "resolved"
            slow = was_slow
            changes: list[tuple[int, Change]] = []
            severity = rating(speed)
            params = {"province": speed.province, "t": t, "severity": severity.value,
                      "title": title(speed, line_mbps, rule.hours)}
            if judged is Verdict.SLOW and not was_slow:
                row = await (await conn.execute(_OPEN, params)).fetchone()
                assert row is not None
                incident_id, slow = int(row[0]), True
                changes.append((incident_id, "opened"))
                done.opened += 1
            elif judged is Verdict.RECOVERED and was_slow:
                slow = False
                if active and await (await conn.execute(_RESOLVE, {"id": incident_id, "t": t})).fetchone():
                    changes.append((incident_id, "resolved"))
                    done.resolved += 1
            elif was_slow and active:  # still slow (or unsure): its figures move
                changed = severity.value != old_severity
                await conn.execute(_REFRESH, params | {"id": incident_id, "notified": t if changed else None})
                if changed:
                    changes.append((incident_id, "updated"))
                    done.updated += 1
            await conn.execute(_REMEMBER, {"province": speed.province, "slow": slow, "t": t,
                                           "incident": incident_id, "tests": speed.tests, "below": speed.below_line})
            for changed_id, change in changes:
                done.outbox += await _queue(conn, changed_id, change)
    return done


async def _queue(conn: AsyncConnection[Any], incident_id: int, change: Change) -> int:
    statements = outbox_rows("incident", incident_id, change)
    for statement, params in statements:
        await conn.execute(statement, params)
    return len(statements)
