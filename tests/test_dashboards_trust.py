"""What an operator reads off the dashboards is true: medians are the tests' own, days are local days, an hour
after the range is not in it, a district's tiles and event marks are the district's, the briefing's hours are
local hours. Each case was wrong once (an operator's review of the dashboards, 2026-12-01)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dashboard_db import Filled, every_place_and_device, grafana, run

from urbanpulse.dashboards import charts, network, overview
from urbanpulse.dashboards.macros import expand
from urbanpulse.dashboards.report import Briefing, Table

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # StorageSettings.day_timezone's default, the sample's


def test_a_province_under_the_line_shows_under_it(filled: Filled) -> None:
    """A province whose tests are mostly just under the line, with a few fast ones in alternate hours: its hourly
    medians (one or two tests an hour) average 92.7 Mbit/s, the median of its tests is 39. The ranking shows it
    under the line (from the rollups' counts) and the tile counts it. Its 5G tests, at 300 Mbit/s, would lift a
    median of every test over the line: the 4G panels and the tile leave them out."""
    end = filled.sample.end
    hours = [end + timedelta(hours=h, minutes=30) for h in range(6)]  # after the rollups' watermark: real-time part
    tests = [(t, 39.0) for t in hours] + [(t + timedelta(minutes=1), 200.0) for t in hours[::2]]
    fast_5g = [(t + timedelta(minutes=2), 300.0) for t in hours]
    chosen = {"province": ["Skewed"], "operator": ["Viettel"], "network": ["4G"]}
    with psycopg.connect(filled.dsn) as conn:  # rolled back: the session's data stays as it is
        for k, (t, mbps, radio) in enumerate([(t, m, "4G") for t, m in tests] + [(t, m, "5G") for t, m in fast_5g]):
            conn.execute(
                "INSERT INTO ispeed_readings (device_id, time, seq, download_mbps, upload_mbps, latency_ms, jitter_ms,"
                " packet_loss_pct, operator, network, rsrp_dbm, lat, lon, province, received_at, batch_id)"
                " VALUES ('phone-skewed', %s, %s, %s, 10, 30, 2, 0, 'Viettel', %s, -90, 16.0, 108.2, 'Skewed',"
                " %s, 1)", [t, k, mbps, radio, t])
        conn.execute("SET LOCAL ROLE urbanpulse_grafana")

        def rows(sql: str, interval: timedelta) -> list[tuple[Any, ...]]:
            expanded = expand(sql, time_from=end, time_to=end + timedelta(hours=7), interval=interval,
                              variables=chosen)
            return run(conn, expanded)[1]

        assert statistics.median(m for _, m in tests) == 39.0
        assert statistics.median(m for _, m in tests + fast_5g) == 200.0  # every network's tests: over the line
        [(province, shown)] = rows(network.RANKING.sql, timedelta(hours=1))
        assert province == "Skewed"
        assert 35 <= shown < network.SLOW_MBPS  # its 5 Mbit/s step, under the line
        assert rows(overview.SLOW.sql, timedelta(hours=1)) == [(1,)]
        for time, metric, value in rows(network.BY_PROVINCE.sql, timedelta(hours=2)):
            start = datetime.fromtimestamp(float(time), UTC)
            mine = sorted(m for t, m in tests if start <= t < start + timedelta(hours=2))
            lower, upper = mine[(len(mine) - 1) // 2], mine[len(mine) // 2]  # the median's bounds (an even count)
            assert metric == "Skewed"
            assert lower - 5 <= value <= upper + 5, (value, mine)
            assert (value < network.SLOW_MBPS) == (2 * sum(m < network.SLOW_MBPS for m in mine) > len(mine))
        [(_, pooled)] = rows(network.RANKING.sql.replace("$network", "'4G', '5G'"), timedelta(hours=1))
        assert pooled > network.SLOW_MBPS  # so the network filter is what keeps it under
        conn.rollback()


def test_medians_from_the_counts_are_the_tests_own(filled: Filled) -> None:
    """Over the simulator's week of speed tests, the ranking's medians against the tests' own (``percentile_cont``
    over the readings) of the chosen networks: within a megabit."""
    end = filled.sample.end
    span = timedelta(days=7)
    for radios in (["4G"], ["5G"], ["4G", "5G"]):
        variables = {**every_place_and_device(filled), "network": radios,
                     "operator": ["Viettel", "VNPT", "MobiFone", "Vinaphone", "Vietnamobile"]}
        with grafana(filled.dsn) as conn:
            ranking = run(conn, expand(network.RANKING.sql, time_from=end - span, time_to=end,
                                       interval=timedelta(hours=1), variables=variables))[1]
            first_hour = (end - span).replace(minute=0, second=0, microsecond=0)
            exact = dict(run(conn, "SELECT province, percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps)"
                                   f" FROM ispeed_readings WHERE time >= '{first_hour}' AND time < '{end}'"
                                   f" AND network IN ({', '.join(repr(r) for r in radios)}) GROUP BY 1")[1])
        assert len(ranking) == len(exact) >= 2, radios
        for province, shown in ranking:
            assert shown == pytest.approx(exact[province], abs=1.0), (radios, province, shown, exact[province])


def test_daily_trend_is_per_local_day(filled: Filled) -> None:
    """Each point of the daily trend is at its local day's midnight (the daily rollup's bucket), not at the UTC
    midnight before it."""
    end = filled.sample.end
    variables = {**every_place_and_device(filled), "operator": ["Viettel", "VNPT", "MobiFone", "Vinaphone",
                                                                 "Vietnamobile"]}
    with grafana(filled.dsn) as conn:
        got = run(conn, expand(network.TREND.sql, time_from=end - timedelta(days=3), time_to=end,
                               interval=timedelta(days=1), variables=variables))[1]
    assert len(got) >= 6
    for day, _, _ in got:
        local = day.astimezone(ZONE)
        assert (local.hour, local.minute) == (0, 0), day
        assert local.date() >= (end - timedelta(days=3)).astimezone(ZONE).date()


def test_recent_hours_end_with_the_range(filled: Filled) -> None:
    """A range ending on the hour (yesterday's local midnight, say) shows the hours before it, never the one after."""
    end = filled.sample.end.replace(minute=0) - timedelta(hours=5)
    with grafana(filled.dsn) as conn:
        hours = run(conn, expand(overview.MAP.layers[0], time_from=end - timedelta(days=1), time_to=end,
                                 interval=timedelta(hours=1), variables=every_place_and_device(filled)))[1]
    assert hours
    assert max(row[-1] for row in hours) == end - timedelta(hours=1)


def test_open_incidents_of_the_chosen_districts(filled: Filled) -> None:
    """The tile counts the chosen districts' incidents and those of their whole province, not the province's other
    districts'."""
    end = filled.sample.end
    every = every_place_and_device(filled)
    counts = {}
    with grafana(filled.dsn) as conn:
        for district in every["district"]:
            chosen = {**every, "district": [district]}
            counts[district] = run(conn, expand(overview.INCIDENTS.sql, time_from=end - timedelta(days=7), time_to=end,
                                                interval=timedelta(hours=1), variables=chosen))[1][0][0]
        unresolved = run(conn, "SELECT district, count(*) FROM grafana_incidents WHERE status <> 'resolved'"
                               " GROUP BY district")[1]
    assert counts == {d: dict(unresolved).get(d, 0) for d in every["district"]}
    assert len(set(counts.values())) > 1  # the sample's incidents are in some districts only


def test_briefing_timeline_reads_local_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event opened at 04:00 UTC on a Ha Noi day is drawn at 11:00 on an axis of the whole local day, and only
    the severities that have bars are in the legend, in their own colours."""
    drawn: list[Any] = []
    monkeypatch.setattr(charts, "_save", lambda fig, path: drawn.append(fig) or path.name)
    empty = Table((), [])
    day = datetime(2026, 11, 29, tzinfo=ZONE).date()
    opened = datetime(2026, 11, 29, 4, tzinfo=UTC)
    briefing = Briefing(day, "Asia/Ho_Chi_Minh", empty, empty, empty, empty,
                        Table(("time", "severity", "events"), [(opened, "warning", 1)]), empty)
    charts._timeline(briefing, tmp_path)
    axes = drawn[0].axes[0]
    lo, hi = (charts.mdates.num2date(x, tz=ZONE) for x in axes.get_xlim())
    assert (lo, hi) == (datetime(2026, 11, 29, tzinfo=ZONE), datetime(2026, 11, 30, tzinfo=ZONE))
    [bar] = axes.patches
    assert axes.xaxis.get_major_formatter().format_data(bar.get_x()) == "11:00"
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["warning"]


def test_a_phones_event_without_a_district_is_on_its_province(filled: Filled) -> None:
    """A speed tester's event has a province and no district: on the city overview narrowed to a district it is
    the whole province's, as a province-wide incident is (it vanished even with District on "All")."""
    from urbanpulse.dashboards.render import annotation_queries, dashboard_json  # noqa: PLC0415

    end = filled.sample.end
    province = filled.sample.devices[0].province.name
    district = filled.sample.devices[0].district.name
    sql = annotation_queries(dashboard_json(overview.CITY))["Events"]
    with psycopg.connect(filled.dsn) as conn:  # rolled back
        conn.execute("INSERT INTO events (device_id, kind, metric, detector, status, severity, opened_at,"
                     " last_seen_at, peak_score, last_score, peak_value, readings, province, district, raised_at)"
                     " VALUES ('phone-roaming', 'ispeed', 'download_mbps', 'ewma', 'open', 'critical', %s, %s, 0.9,"
                     " 0.9, 3.0, 4, %s, NULL, %s)", [end - timedelta(hours=1), end, province, end])
        conn.execute("SET LOCAL ROLE urbanpulse_grafana")
        rows = run(conn, expand(sql, time_from=end - timedelta(hours=3), time_to=end, interval=timedelta(minutes=1),
                                variables={"province": [province], "district": [district]}))[1]
        conn.rollback()
    assert any("phone-roaming" in text for _, _, text, _ in rows)
