"""Slow provinces: a province whose speed tests' median download is under the line is one incident while it is."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import AsyncConnection
from test_events_support import START, analyse, batches, outbox, query, settings_for, write

from urbanpulse.analytics.incidents import Incidents, Place
from urbanpulse.analytics.lifecycle import Target, resolve
from urbanpulse.analytics.service import slow_rule
from urbanpulse.analytics.severity import Severity
from urbanpulse.analytics.slow_provinces import (
    Checked,
    ProvinceSpeed,
    SlowRule,
    Verdict,
    check,
    rating,
    retire,
    title,
    verdict,
)
from urbanpulse.contract import Kind
from urbanpulse.sim.city import fleet

RULE = SlowRule(hours=24, min_tests=30, recovered_share=0.45)


@pytest.mark.parametrize(("tests", "below", "expected"), [
    (40, 21, Verdict.SLOW),  # more than half under the line: the median is
    (40, 20, Verdict.UNSURE),  # exactly half: the two middle tests straddle the line
    (40, 19, Verdict.UNSURE),  # 47.5 %: between the two levels, nothing changes
    (40, 18, Verdict.RECOVERED),  # 45 %
    (29, 29, Verdict.UNSURE),  # too few tests to judge a province by
    (0, 0, Verdict.NO_TESTS),  # nobody tests it any more: a slow spell ends
])
def test_verdict_has_a_deadband_and_a_floor_of_tests(tests: int, below: int, expected: Verdict) -> None:
    assert verdict(tests, below, min_tests=30, recovered_share=0.45) is expected


def test_severity_is_critical_under_half_the_line_with_the_same_deadband() -> None:
    def rated(under_half: int, was: Severity | None = None) -> Severity:
        return rating(ProvinceSpeed("P", 100, 80, under_half, 18.0), was, 0.45)

    assert [rated(51), rated(50), rated(48)] == [Severity.CRITICAL, Severity.WARNING, Severity.WARNING]
    assert [rated(48, Severity.CRITICAL), rated(45, Severity.CRITICAL)] == [Severity.CRITICAL, Severity.WARNING]
    assert title(ProvinceSpeed("Ha Giang", 120, 90, 10, 31.42), 40.0, 24) == (
        "Mobile network: Ha Giang slow, median 4G download 31.4 Mbit/s under the 40 Mbit/s line "
        "(90 of 120 tests under it, 75%, last 24 h)")


def speed_tests(dsn: str, province: str, at: datetime, speeds: list[float], network: str = "4G") -> None:
    """Speed tests of ``province`` one second apart from ``at``, with these downloads."""
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            "INSERT INTO ispeed_readings (device_id, time, seq, download_mbps, upload_mbps, latency_ms, jitter_ms,"
            " packet_loss_pct, operator, network, rsrp_dbm, lat, lon, province, received_at, batch_id)"
            " VALUES (%s, %s, %s, %s, 10, 20, 2, 0, 'Viettel', %s, -90, 21, 105, %s, %s, 1)",
            [(f"phone-{network}-{province}", at + timedelta(seconds=k), k, mbps, network, province, at)
             for k, mbps in enumerate(speeds)])


async def checked(dsn: str, t: datetime) -> Checked:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await check(conn, t, RULE)


def slow_incidents(dsn: str) -> list[dict[str, object]]:
    return query(dsn, "SELECT * FROM incidents WHERE rule = 'slow_download' ORDER BY id")


def slow_at_start(dsn: str, province: str, mbps: float) -> dict[str, object]:
    """``province`` slow from ``START`` (40 tests at ``mbps``, checked a minute on): its incident."""
    speed_tests(dsn, province, START, [mbps] * 40)
    asyncio.run(checked(dsn, START + timedelta(minutes=1)))
    (incident,) = slow_incidents(dsn)
    return incident


def changes(dsn: str) -> list[str | None]:
    return [change for _, change in outbox(dsn)]


@pytest.mark.integration
def test_a_slow_province_is_one_incident_until_it_recovers(database: str) -> None:
    t0 = START
    speed_tests(database, "Ha Giang", t0, [25.0] * 30 + [60.0] * 10)  # 75 % under 40
    speed_tests(database, "Ha Giang", t0, [150.0] * 45, network="5G")  # not counted: they would lift the median
    speed_tests(database, "Ha Noi", t0, [60.0] * 40)
    done = asyncio.run(checked(database, t0 + timedelta(minutes=5)))
    assert (done.provinces, done.opened, done.updated, done.resolved) == (2, 1, 0, 0)

    (incident,) = slow_incidents(database)
    assert (incident["scope"], incident["province"], incident["district"], incident["kind"]) == (
        "province", "Ha Giang", None, "network")
    assert (incident["status"], incident["severity"], incident["members"]) == ("open", "warning", 0)
    assert incident["title"] == ("Mobile network: Ha Giang slow, median 4G download 25.0 Mbit/s under the 40 Mbit/s"
                                 " line (30 of 40 tests under it, 75%, last 24 h)")
    (message,) = query(database, "SELECT topic, retain, payload FROM event_outbox")
    assert message["topic"] == f"urbanpulse/v1/ops/incidents/{incident['id']}"
    assert message["retain"]
    assert message["payload"]["change"] == "opened"
    assert message["payload"]["incident"]["rule"] == "slow_download"
    assert message["payload"]["incident"]["event_ids"] == []

    # Checked again, still slow and no worse: the same incident, nothing published.
    assert asyncio.run(checked(database, t0 + timedelta(minutes=10))).opened == 0
    assert len(slow_incidents(database)) == 1
    assert changes(database) == ["opened"]

    # New figures, same severity: published (title with them) at most every 5 minutes of reading time.
    speed_tests(database, "Ha Giang", t0 + timedelta(minutes=20), [25.0] * 10)
    assert asyncio.run(checked(database, t0 + timedelta(minutes=21))).updated == 1  # 16 min after the last
    assert "(40 of 50 tests under it, 80%" in str(slow_incidents(database)[0]["title"])
    speed_tests(database, "Ha Giang", t0 + timedelta(minutes=22), [25.0] * 2)
    assert asyncio.run(checked(database, t0 + timedelta(minutes=23))) == Checked(provinces=2)  # 2 min: held
    assert "(40 of 50 tests under it, 80%" in str(slow_incidents(database)[0]["title"])  # the row is what was sent
    assert asyncio.run(checked(database, t0 + timedelta(minutes=26))).updated == 1
    assert "(42 of 52 tests under it, 81%" in str(slow_incidents(database)[0]["title"])
    assert changes(database) == ["opened", "updated", "updated"]

    # Most tests of the next hour under 20 Mbit/s: critical, published at once.
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=1), [10.0] * 60)
    assert asyncio.run(checked(database, t0 + timedelta(hours=1, minutes=1))).updated == 1
    (incident,) = slow_incidents(database)
    assert incident["severity"] == "critical"
    assert "median 4G download 10.0 Mbit/s" in str(incident["title"])
    assert "(102 of 112 tests under it, 91%" in str(incident["title"])
    assert changes(database)[3:] == ["updated"]

    # Fast tests: 102 of 212 under the line (48 %), in the deadband: still slow, its figures those of its last
    # slow verdict (the median is 60 now: "slow, median 60" would contradict itself), nothing published.
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=2), [80.0] * 100)
    asyncio.run(checked(database, t0 + timedelta(hours=2, minutes=5)))
    assert slow_incidents(database) == [incident]
    assert len(changes(database)) == 4

    # 102 of 232 (44 %): recovered, resolved at the check's reading time, under the title it had.
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=3), [80.0] * 20)
    t_recovered = t0 + timedelta(hours=3, minutes=5)
    assert asyncio.run(checked(database, t_recovered)).resolved == 1
    (resolved,) = slow_incidents(database)
    assert (resolved["status"], resolved["resolved_at"], resolved["resolved_by"]) == ("resolved", t_recovered, None)
    assert resolved["title"] == incident["title"]
    assert changes(database)[4:] == ["resolved", None]  # and the retained message cleared
    (state,) = query(database, "SELECT * FROM slow_provinces WHERE province = 'Ha Giang'")
    assert (state["slow"], state["changed_at"], state["tests"], state["below_line"]) == (False, t_recovered, 232, 102)

    # A check at an older reading time (a spool replayed after a restart) changes nothing.
    assert asyncio.run(checked(database, t0 + timedelta(minutes=30))) == Checked()

    # Slow again: a new incident, not the old one reopened.
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=4), [15.0] * 300)
    assert asyncio.run(checked(database, t0 + timedelta(hours=4, minutes=5))).opened == 1
    assert [i["status"] for i in slow_incidents(database)] == ["resolved", "open"]
    assert not query(database, "SELECT 1 FROM incidents WHERE province = 'Ha Noi'")


@pytest.mark.integration
def test_a_new_spell_is_rated_afresh_not_by_the_last_ones_severity(database: str) -> None:
    t0 = START
    speed_tests(database, "Ha Giang", t0, [10.0] * 40)  # critical
    asyncio.run(checked(database, t0 + timedelta(minutes=1)))
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=1), [90.0] * 100)  # recovered
    asyncio.run(checked(database, t0 + timedelta(hours=1, minutes=5)))
    speed_tests(database, "Ha Giang", t0 + timedelta(hours=30), [10.0] * 47 + [30.0] * 53)  # 47 % under 20
    assert asyncio.run(checked(database, t0 + timedelta(hours=30, minutes=5))).opened == 1
    assert [(i["status"], i["severity"]) for i in slow_incidents(database)] == [
        ("resolved", "critical"), ("open", "warning")]


@pytest.mark.integration
def test_a_slow_province_nobody_tests_any_more_is_resolved(database: str) -> None:
    t0 = START
    speed_tests(database, "Ha Giang", t0, [25.0] * 40)
    speed_tests(database, "Ha Noi", t0, [60.0] * 40)
    asyncio.run(checked(database, t0 + timedelta(minutes=1)))
    speed_tests(database, "Ha Noi", t0 + timedelta(hours=30), [60.0] * 40)  # only Ha Noi reports, a day on
    done = asyncio.run(checked(database, t0 + timedelta(hours=30)))
    assert (done.provinces, done.resolved) == (2, 1)
    (incident,) = slow_incidents(database)
    assert incident["status"] == "resolved"
    assert incident["title"] == "Mobile network: Ha Giang, slow until no 4G speed tests in the last 24 h"
    assert query(database, "SELECT slow, tests FROM slow_provinces WHERE province = 'Ha Giang'") == [
        {"slow": False, "tests": 0}]


@pytest.mark.integration
def test_resolved_by_an_operator_it_waits_for_the_province_to_recover(database: str) -> None:
    t0 = START
    incident = slow_at_start(database, "Dien Bien", 30.0)
    with psycopg.connect(database, autocommit=True) as conn:
        outcome = resolve(conn, Target(incident=True, id=int(str(incident["id"]))), "operator-7")
    assert outcome.changes
    speed_tests(database, "Dien Bien", t0 + timedelta(hours=1), [30.0] * 40)
    assert asyncio.run(checked(database, t0 + timedelta(hours=1, minutes=1))) == Checked(provinces=1)  # not again
    assert [(i["status"], i["resolved_by"]) for i in slow_incidents(database)] == [("resolved", "operator-7")]

    speed_tests(database, "Dien Bien", t0 + timedelta(hours=2), [90.0] * 200)  # recovered ...
    asyncio.run(checked(database, t0 + timedelta(hours=2, minutes=5)))
    assert query(database, "SELECT slow FROM slow_provinces") == [{"slow": False}]
    assert len(slow_incidents(database)) == 1
    speed_tests(database, "Dien Bien", t0 + timedelta(hours=27), [30.0] * 40)  # ... and slow anew, a day later
    assert asyncio.run(checked(database, t0 + timedelta(hours=27, minutes=1))).opened == 1
    assert [i["status"] for i in slow_incidents(database)] == ["resolved", "open"]


@pytest.mark.integration
def test_no_event_joins_a_slow_province_and_no_member_resolves_it(database: str) -> None:
    """An acute congestion in a slow province is news of its own: its events open their own incident."""
    t0 = START
    slow = slow_at_start(database, "Ha Giang", 25.0)

    async def congestion() -> int:
        async with await AsyncConnection.connect(database, autocommit=True) as conn, conn.transaction():
            incidents = Incidents(conn, window=timedelta(minutes=15), update_every=timedelta(minutes=5))
            joined = await incidents.join("network", Place("Ha Giang", None), t0 + timedelta(minutes=1),
                                          Severity.WARNING, "phone-9", "download_mbps")
            incidents.touch(int(str(slow["id"])))  # its rule's: members, title and severity are not the events'
            await incidents.finish()
            return joined

    joined = asyncio.run(congestion())
    assert joined != slow["id"]
    assert [i["status"] for i in query(database, "SELECT status FROM incidents ORDER BY id")] == ["open", "open"]
    assert slow_incidents(database) == [slow]  # untouched
    assert changes(database) == ["opened", "opened"]  # its own, and the congestion's


@pytest.mark.integration
def test_analytics_raises_the_slow_provinces_of_the_simulated_city(database: str) -> None:
    """Through the whole path: the simulator's phones in Ha Giang (31 Mbit/s on average before signal and
    operator, its tests' median about 23) and in Ha Noi (62: about 46), gateway parser, writer, analytics."""
    phones = [d for d in fleet(40, seed=5, kinds=(Kind.ISPEED,)) if d.province.name in {"Ha Giang", "Ha Noi"}]
    assert {d.province.name for d in phones} == {"Ha Giang", "Ha Noi"}
    asyncio.run(write(database, batches(phones, 12)))
    analytics = asyncio.run(analyse(settings_for(database)))

    assert (analytics.stats.slow_provinces_opened, analytics.stats.slow_provinces_updated) == (1, 0)
    (incident,) = slow_incidents(database)
    assert (incident["province"], incident["status"]) == ("Ha Giang", "open")
    ha_noi = query(database, "SELECT tests, below_line, slow FROM slow_provinces WHERE province = 'Ha Noi'")
    assert ha_noi
    assert not ha_noi[0]["slow"]
    assert ha_noi[0]["tests"] >= 30
    assert slow_rule(settings_for(database, slow_province_hours=0)) is None  # the rule turned off
    # Turned off, the service resolves the incident the rule left open at its next step: nothing else would.
    asyncio.run(write(database, batches(phones, 14)[12:]))  # two minutes more
    off = asyncio.run(analyse(settings_for(database, slow_province_hours=0)))
    assert (off.stats.slow_provinces_opened, off.stats.slow_provinces_resolved) == (0, 1)
    (incident,) = slow_incidents(database)
    assert incident["status"] == "resolved"
    assert str(incident["title"]).endswith("(rule turned off)")
    assert changes(database)[-2:] == ["resolved", None]  # and the retained message cleared
    assert query(database, "SELECT count(*) AS slow FROM slow_provinces WHERE slow") == [{"slow": 0}]


@pytest.mark.integration
def test_retiring_the_rule_resolves_only_its_open_incidents(database: str) -> None:
    """Off, the rule resolves its open incidents once (titled so) and forgets the slow provinces; an incident an
    operator resolved stays as the operator left it; on again, a province still slow is a new incident."""
    t0 = START
    kept = slow_at_start(database, "Ha Giang", 25.0)
    speed_tests(database, "Dien Bien", t0, [30.0] * 40)
    asyncio.run(checked(database, t0 + timedelta(minutes=2)))
    by_hand = next(i for i in slow_incidents(database) if i["province"] == "Dien Bien")
    with psycopg.connect(database, autocommit=True) as conn:
        resolve(conn, Target(incident=True, id=int(str(by_hand["id"]))), "operator-7")

    async def off(t: datetime) -> Checked:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            return await retire(conn, t)

    done = asyncio.run(off(t0 + timedelta(minutes=3)))
    assert (done.provinces, done.resolved, done.outbox) == (2, 1, 2)  # the message, the retained one cleared
    got = {i["province"]: (i["status"], i["resolved_by"], i["title"]) for i in slow_incidents(database)}
    assert got["Ha Giang"] == ("resolved", None, f"{kept['title']} (rule turned off)")
    assert got["Dien Bien"][:2] == ("resolved", "operator-7")
    assert asyncio.run(off(t0 + timedelta(minutes=4))) == Checked()  # once
    assert asyncio.run(checked(database, t0 + timedelta(minutes=5))).opened == 2  # on again: both still slow
