"""Slow provinces: a province whose 4G speed tests have a median download under the line is one incident.

Operations centres call a province slow when its crowd-sourced 4G speed tests' median download is under the
national line (40 Mbit/s: ``URBANPULSE_STORAGE__ISPEED_SLOW_MBPS``, fixed when the database is created). No
single test says so, and no anomaly detector sees it: a province that has always been slow never departs
from its own baseline. So this is a rule on each province's tests of the last ``hours`` of reading time (of
the ``networks`` given, 4G by default: 5G tests would lift a 4G median over the line), checked every
``every`` of reading time. The tests are read from ``ispeed_readings`` by their time key, so the window is
exact, the median is ``percentile_cont``'s and nothing waits for a rollup's refresh.

- **slow** when more than half of at least ``min_tests`` tests were under the line (their median is);
- **recovered** when at most ``recovered_share`` of them were; in between, or with fewer tests, nothing
  changes (hysteresis: a median wavering about the line is one spell, not an incident an hour);
- **no tests** in the window ends a spell too: nothing can be said of a province nobody tests any more;
- **severity**: critical once more than half were under half the line, back to warning once at most
  ``recovered_share`` were (the same deadband), else warning. :mod:`.severity` rates one test alike.

A province turning slow opens an incident of the ``network`` family at province scope, ``rule =
'slow_download'``, titled with its median and counts. While it stays slow each check refreshes title and
severity (while it is in the deadband they keep the figures last published), each change
published as "updated": a change of severity at once, new figures at most every ``update_every`` of reading
time (the row and the retained message change together, so what a subscriber holds is what the database
says). Recovering (or no tests) resolves it. It has no member events and none joins it (an acute
congestion in a slow province is an incident of its own, :mod:`.incidents`). An operator
may acknowledge or resolve it like any incident (``urbanpulse events``); resolved by hand, it is not
raised again until the province has recovered and turned slow anew. Turning the rule off
(``slow_province_hours = 0``) resolves its open incidents at the service's next step (:func:`retire`): nothing
would ever resolve them otherwise.

>>> verdict(tests=120, below_line=70, min_tests=30, recovered_share=0.45)
<Verdict.SLOW: 'slow'>
>>> verdict(tests=120, below_line=58, min_tests=30, recovered_share=0.45)  # 48 %: the deadband
<Verdict.UNSURE: 'unsure'>
>>> verdict(tests=12, below_line=12, min_tests=30, recovered_share=0.45)  # too few tests to say
<Verdict.UNSURE: 'unsure'>
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from urbanpulse.analytics.incidents import lock_families
from urbanpulse.analytics.publish import Change, enqueue
from urbanpulse.analytics.severity import Severity
from urbanpulse.contract import LINE_NETWORK, SLOW_DOWNLOAD_MBPS

__all__ = ["RULE", "Checked", "ProvinceSpeed", "SlowRule", "Verdict", "check", "rating", "speeds", "title",
           "verdict"]

RULE = "slow_download"
FAMILY = "network"


class Verdict(enum.StrEnum):
    SLOW = "slow"
    RECOVERED = "recovered"
    UNSURE = "unsure"  # too few tests, or between the two levels: the province stays as it was
    NO_TESTS = "no_tests"  # none in the window: a slow spell ends


@dataclass(frozen=True, slots=True)
class SlowRule:
    """The rule's settings (``AnalyticsSettings.slow_province_*``, ``publish_update_seconds``)."""

    hours: int = 24
    min_tests: int = 30
    recovered_share: float = 0.45
    every: timedelta = timedelta(minutes=1)
    networks: tuple[str, ...] = (LINE_NETWORK,)
    update_every: timedelta = timedelta(minutes=5)


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
    if tests == 0:
        return Verdict.NO_TESTS
    if tests < min_tests:
        return Verdict.UNSURE
    if 2 * below_line > tests:
        return Verdict.SLOW
    return Verdict.RECOVERED if below_line <= recovered_share * tests else Verdict.UNSURE


def rating(speed: ProvinceSpeed, was: Severity | None = None, recovered_share: float = 0.45) -> Severity:
    """Critical once the median is under half the line, until at most ``recovered_share`` of the tests are."""
    if 2 * speed.below_half_line > speed.tests:
        return Severity.CRITICAL
    if was is Severity.CRITICAL and speed.below_half_line > recovered_share * speed.tests:
        return Severity.CRITICAL
    return Severity.WARNING


def title(speed: ProvinceSpeed, line_mbps: float, hours: int, networks: Sequence[str] = (LINE_NETWORK,)) -> str:
    """``Mobile network: Ha Giang slow, median 4G download 31.4 Mbit/s under the 40 Mbit/s line (...)``."""
    share = speed.below_line / speed.tests if speed.tests else 0.0
    return (f"Mobile network: {speed.province} slow, median {'/'.join(networks)} download {speed.median_mbps:.1f} "
            f"Mbit/s under the {line_mbps:g} Mbit/s line ({speed.below_line} of {speed.tests} tests under it, "
            f"{share:.0%}, last {hours} h)")


@dataclass(slots=True)
class Checked:
    """What one check did."""

    provinces: int = 0  # judged (with tests in the window, or slow before)
    opened: int = 0
    updated: int = 0  # "updated" messages queued
    resolved: int = 0
    outbox: int = 0


_LINE = "SELECT storage_setting('ispeed_slow_mbps')::float8"
_LATEST = "SELECT max(checked_at) FROM slow_provinces"
_RETIRE = """
UPDATE slow_provinces
SET slow = false, changed_at = greatest(changed_at, %(t)s), checked_at = greatest(checked_at, %(t)s)
WHERE slow
RETURNING incident_id
"""
_RESOLVE_RETIRED = """
UPDATE incidents SET status = 'resolved', resolved_at = %(t)s, closed_at = now(), title = title || ' (rule turned off)'
WHERE id = ANY(%(ids)s) AND status <> 'resolved'
RETURNING id
"""
_SPEEDS = """
SELECT province, count(*), count(*) FILTER (WHERE download_mbps < %(line)s),
       count(*) FILTER (WHERE download_mbps < %(line)s / 2), percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps)
FROM ispeed_readings
WHERE time > %(t)s - %(hours)s AND time <= %(t)s AND network = ANY(%(networks)s) AND btrim(province) <> ''
GROUP BY province ORDER BY province
"""
_STATE = """
SELECT p.province, p.slow, i.id, i.status, i.severity, i.title, i.notified_at
FROM slow_provinces p LEFT JOIN incidents i ON i.id = p.incident_id
"""
_OPEN = """
INSERT INTO incidents (scope, province, kind, severity, title, members, opened_at, last_opened_at, notified_at, rule)
VALUES ('province', %(province)s, 'network', %(severity)s, %(title)s, 0, %(t)s, %(t)s, %(t)s, 'slow_download')
RETURNING id
"""
_REFRESH = """
UPDATE incidents SET severity = %(severity)s, title = %(title)s, notified_at = %(notified)s WHERE id = %(id)s
"""
_RESOLVE = """
UPDATE incidents SET status = 'resolved', resolved_at = %(t)s, closed_at = now(), title = %(title)s
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


async def line_of(conn: AsyncConnection[Any]) -> float:
    """The line the database was created with (the rollups and dashboards count against it too)."""
    row = await (await conn.execute(_LINE)).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else SLOW_DOWNLOAD_MBPS


async def speeds(conn: AsyncConnection[Any], t: datetime, rule: SlowRule, line_mbps: float) -> list[ProvinceSpeed]:
    """Each province's tests of ``rule.networks`` in the ``rule.hours`` up to reading time ``t``."""
    params = {"t": t, "hours": timedelta(hours=rule.hours), "line": line_mbps, "networks": list(rule.networks)}
    rows = await (await conn.execute(_SPEEDS, params)).fetchall()
    return [ProvinceSpeed(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]


async def check(conn: AsyncConnection[Any], t: datetime, rule: SlowRule) -> Checked:
    """Judge every province with tests in the window at reading time ``t`` (and every slow one); open, refresh
    or resolve their incidents; remember each verdict. The tests are read first; the writes are one
    transaction under the ``network`` family's lock."""
    done = Checked()
    line_mbps = await line_of(conn)
    measured = {s.province: s for s in await speeds(conn, t, rule, line_mbps)}
    async with conn.transaction():
        await lock_families(conn, [FAMILY])
        latest = (await (await conn.execute(_LATEST)).fetchone() or (None,))[0]
        if latest is not None and t < latest:  # older readings (a spool replayed after a restart): judged already
            return done
        state = {r[0]: r[1:] for r in await (await conn.execute(_STATE)).fetchall()}
        slow_before = sorted(p for p, s in state.items() if s[0] and p not in measured)
        for province in sorted(measured) + slow_before:
            speed = measured.get(province, ProvinceSpeed(province, 0, 0, 0, 0.0))
            done.provinces += 1
            changes = await _judge(conn, speed, state.get(province), t, rule, line_mbps, done)
            for changed_id, change in changes:
                done.outbox += await enqueue(conn, "incident", changed_id, change)
    return done


async def retire(conn: AsyncConnection[Any], t: datetime) -> Checked:
    """The rule is off: resolve its open incidents at reading time ``t`` (titled "... (rule turned off)") and
    forget which provinces were slow, so that turning it on again judges them afresh."""
    done = Checked()
    async with conn.transaction():
        await lock_families(conn, [FAMILY])
        ended = [r[0] for r in await (await conn.execute(_RETIRE, {"t": t})).fetchall() if r[0] is not None]
        done.provinces = len(ended)
        for (incident_id,) in await (await conn.execute(_RESOLVE_RETIRED, {"t": t, "ids": ended})).fetchall():
            done.resolved += 1
            done.outbox += await enqueue(conn, "incident", int(incident_id), "resolved")
    return done


async def _judge(conn: AsyncConnection[Any], speed: ProvinceSpeed, before: tuple[Any, ...] | None, t: datetime,
                 rule: SlowRule, line_mbps: float, done: Checked) -> list[tuple[int, Change]]:
    """One province's verdict and what it does to its incident and state row."""
    was_slow, incident_id, status, old_severity, old_title, notified_at = before or (False, None, None, None, None,
                                                                                    None)
    active = incident_id is not None and status != "resolved"
    judged = verdict(speed.tests, speed.below_line, rule.min_tests, rule.recovered_share)
    was = Severity(old_severity) if old_severity and was_slow and active else None  # not a past spell's
    severity = rating(speed, was, rule.recovered_share)
    named = title(speed, line_mbps, rule.hours, rule.networks)
    params = {"province": speed.province, "t": t, "severity": severity.value, "title": named}
    slow = was_slow
    changes: list[tuple[int, Change]] = []
    if judged is Verdict.SLOW and not was_slow:
        row = await (await conn.execute(_OPEN, params)).fetchone()
        assert row is not None
        incident_id, slow = int(row[0]), True
        changes.append((incident_id, "opened"))
        done.opened += 1
    elif judged in (Verdict.RECOVERED, Verdict.NO_TESTS) and was_slow:
        slow = False
        ended = old_title if judged is Verdict.RECOVERED else (
            f"Mobile network: {speed.province}, slow until no {'/'.join(rule.networks)} speed tests in the last "
            f"{rule.hours} h")
        if active and await (await conn.execute(_RESOLVE, {"id": incident_id, "t": t, "title": ended})).fetchone():
            changes.append((incident_id, "resolved"))
            done.resolved += 1
    elif judged is Verdict.SLOW and active and (  # still slow, new figures (the deadband keeps the last slow ones)
            severity is not was
            or (named != old_title and (notified_at is None or t - notified_at >= rule.update_every))):
        # What the row holds is what was last published (the retained message): refreshed together.
        await conn.execute(_REFRESH, params | {"id": incident_id, "notified": t})
        changes.append((incident_id, "updated"))
        done.updated += 1
    await conn.execute(_REMEMBER, {"province": speed.province, "slow": slow, "t": t, "incident": incident_id,
                                   "tests": speed.tests, "below": speed.below_line})
    return changes

