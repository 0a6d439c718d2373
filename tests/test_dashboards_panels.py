"""Every panel of every dashboard, expanded as Grafana would, runs AS the read-only role on a real database
and returns rows with the columns and types its visualisation needs.

One database per backend for the session (``filled``, conftest.py: native PostgreSQL always, TimescaleDB
when the cluster preloads it): 8 days of the simulator's history for a small fleet in two provinces
(``dashboards.sample``), rollups built by ``maintain()``, events and incidents. For each dashboard, for
the last 1 h, 24 h and 7 d, and for two selections of its template variables -- every value ("All") and
one province, one of its districts, one device, one operator, each taken from the variable's own query
run on the database -- each query is expanded with ``$__interval`` as Grafana picks it (~200 points,
never under the panel's min interval; a panel's relative time override shortens the range) and run after
``SET ROLE urbanpulse_grafana``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from dashboard_db import Columns, Filled, assert_same_rows, every_place_and_device, grafana, rows_of, run

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.macros import auto_interval, expand, parse_interval
from urbanpulse.dashboards.model import Dashboard, Panel
from urbanpulse.dashboards.render import annotation_queries, dashboard_json, panel_queries, variable_queries

pytestmark = pytest.mark.integration

RANGES = (timedelta(hours=1), timedelta(hours=24), timedelta(days=7))
TIMES = {"timestamptz", "timestamp"}
NUMBERS = {"int2", "int4", "int8", "float4", "float8", "numeric"}
TEXTS = {"text", "varchar", "name"}


def selections(conn: psycopg.Connection[Any], board: Dashboard, data: Filled) -> list[dict[str, list[str]]]:
    """"All" for every variable, then the first value of each, each query run with the choices before it."""
    queries = variable_queries(dashboard_json(board))
    span = timedelta(days=7)
    out = []
    for pick_all in (True, False):
        chosen: dict[str, list[str]] = {}
        for variable in board.variables:
            sql = expand(queries[variable.name], time_from=data.sample.end - span, time_to=data.sample.end,
                         interval=auto_interval(span), variables=chosen)
            _, rows = run(conn, sql)
            values = [str(r[0]) for r in rows]
            assert values, f"{board.uid}: variable {variable.name} has no values\n{sql}"
            if variable.name == "device" and variable.single:
                values = [data.sample.event_device]
            chosen[variable.name] = values if pick_all and not variable.single else values[:1]
        out.append(chosen)
    return out


def check_columns(panel: Panel, query_type: str, columns: Columns, label: str) -> None:
    names = [n for n, _ in columns]
    types = dict(columns)
    if query_type == "timeseries":
        assert names[0] == "time", label
        # $__timeGroup is epoch seconds on plain PostgreSQL, a timestamptz with TimescaleDB's time_bucket
        assert types["time"] in TIMES | {"numeric", "float8"}, (label, columns)
        assert types.get("metric") in TEXTS, (label, columns)
        assert any(t in NUMBERS for n, t in columns[1:] if n != "metric"), (label, columns)
    elif query_type == "layer":  # a map's second query: the air stations and their AQI
        assert {"lat", "lon", "aqi"} <= set(names), (label, columns)
    elif panel.type == "table":
        assert tuple(names) == panel.columns, label
    else:
        assert set(panel.columns) <= set(names), (label, columns)
        assert any(t in NUMBERS for t in types.values()), (label, columns)
    if panel.type == "geomap":
        assert types["lat"] == types["lon"] == "float8", (label, columns)
    if panel.type == "bargauge":
        assert types[names[0]] in TEXTS, (label, columns)


def check_times(rows: list[tuple[Any, ...]], lo: datetime, hi: datetime, slack: timedelta, label: str) -> None:
    times = [r[0] if isinstance(r[0], datetime) else datetime.fromtimestamp(float(r[0]), UTC) for r in rows]
    assert times == sorted(times), f"{label}: rows must be ordered by time"
    assert all(lo - slack <= t <= hi for t in times), (label, times[0], times[-1])


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_every_panel_returns_rows(filled: Filled, board: Dashboard) -> None:
    document = dashboard_json(board)
    declared = {p.title: p for p in board.panels}
    end = filled.sample.end
    timescale = filled.backend == "timescaledb"
    checked = 0
    with grafana(filled.dsn) as conn:
        for chosen in selections(conn, board, filled):
            for span, query in itertools.product(RANGES, panel_queries(document)):
                panel = declared[query.panel_title]
                shown = min(span, parse_interval(panel.time_from)) if panel.time_from else span
                floor = parse_interval(panel.min_interval) if panel.min_interval else timedelta(0)
                interval = max(auto_interval(shown, 200), floor)
                lo = end - shown
                sql = expand(query.raw_sql, time_from=lo, time_to=end, interval=interval, variables=chosen,
                             timescaledb=timescale)
                label = f"{board.uid} / {query.panel_title} [{query.ref_id}] / last {span} / {chosen}"
                assert "$" not in sql.replace("$$", ""), f"{label}: unexpanded\n{sql}"
                columns, rows = run(conn, sql)
                assert rows, f"{label}: no rows\n{sql}"
                assert query.format == ("time_series" if panel.type == "timeseries" else "table"), label
                check_columns(panel, panel.type if query.ref_id == "A" else "layer", columns, label)
                if panel.type == "timeseries":
                    check_times(rows, lo, end, interval + floor + timedelta(days=1 if floor >= timedelta(days=1)
                                                                           else 0), label)
                checked += 1
    assert checked == len(RANGES) * 2 * len(panel_queries(document))


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_annotations_show_events(filled: Filled, board: Dashboard) -> None:
    """Events on every dashboard's time axis; narrowed by its variables, only the chosen places' or devices'."""
    annotations = annotation_queries(dashboard_json(board))
    assert set(annotations) == {"Events"}
    end = filled.sample.end
    with grafana(filled.dsn) as conn:
        every, narrowed = selections(conn, board, filled)
        for span in RANGES:
            for chosen in (every, narrowed):
                sql = expand(annotations["Events"], time_from=end - span, time_to=end, interval=auto_interval(span),
                             variables=chosen)
                columns, rows = run(conn, sql)
                assert [n for n, _ in columns] == ["time", "timeend", "text", "tags"], board.uid
                assert columns[0][1] == columns[1][1] == "timestamptz"
                assert rows, (board.uid, span, chosen)
                for _, _, text, tags in rows:
                    place = tags.split(",")[2:]
                    assert "province" not in chosen or place[0] in chosen["province"], (board.uid, tags, chosen)
                    assert "district" not in chosen or place[1] in chosen["district"], (board.uid, tags, chosen)
                    assert "device" not in chosen or text.split(" on ")[1].split(" ")[0] in chosen["device"], text
        if narrowed != every:  # one province, district or device of several: another's events are left out
            shown = [len(run(conn, expand(annotations["Events"], time_from=end - RANGES[-1], time_to=end,
                                          interval=auto_interval(RANGES[-1]), variables=chosen))[1])
                     for chosen in (every, narrowed)]
            assert shown[1] < shown[0], (board.uid, shown)


def test_panels_show_what_they_say(filled: Filled) -> None:
    from urbanpulse.dashboards import events, network, overview, platform  # noqa: PLC0415

    end = filled.sample.end
    span = timedelta(days=7)
    provinces = sorted({d.province.name for d in filled.sample.devices})
    variables = {"province": provinces, "district": sorted({d.district.name for d in filled.sample.devices}),
                 "operator": ["Viettel", "VNPT", "MobiFone", "Vinaphone", "Vietnamobile"], "network": ["4G"]}

    def rows(panel: Panel) -> list[tuple[Any, ...]]:
        sql = expand(panel.sql, time_from=end - span, time_to=end, interval=timedelta(hours=1), variables=variables)
        with grafana(filled.dsn) as conn:
            return run(conn, sql)[1]

    devices = filled.sample.devices
    assert rows(overview.ONLINE)[0] == (len(devices[::2]) - (1 if len(devices) % 2 else 0), len(devices) - 1)
    # per province: one open (critical), one acknowledged, one resolved incident
    assert rows(overview.INCIDENTS)[0] == (2 * len(provinces), len(provinces))
    assert rows(events.STATES)[0] == (len(provinces),) * 3
    ranking = rows(network.RANKING)
    assert [r[1] for r in ranking] == sorted((r[1] for r in ranking), reverse=True)
    assert {r[0] for r in ranking} <= set(provinces)
    storage = rows(platform.STORAGE)
    assert [r[0] for r in storage] == ["air_readings", "ispeed_readings", "traffic_readings"]
    assert all(r[1] > 0 for r in storage)
    assert rows(platform.SIZE)[0][0] > 0
    hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)  # the rollups' hours are UTC hours
    with grafana(filled.dsn) as conn:
        counted = sum(run(conn, f"SELECT count(*) FROM {kind}_readings WHERE time >= '{hour - timedelta(hours=1)}'"
                                f" AND time < '{hour}'")[1][0][0] for kind in ("air", "traffic", "ispeed"))
    assert counted > 0
    assert float(rows(overview.RATE)[0][0]) == pytest.approx(counted / 60)


SPANS = (timedelta(days=7), timedelta(days=7, hours=5, minutes=37))  # whole hours and not


def test_station_aqi_regroups_hours_for_long_ranges(filled: Filled) -> None:
    """The per-station AQI panel's branches: hourly rows as they are, or their maximum per interval -- from
    air_aqi_3h and the edge hours at multiples of 3 hours -- the same as regrouping the hourly rows."""
    from urbanpulse.dashboards import air  # noqa: PLC0415

    epoch = datetime(2000, 1, 3, tzinfo=UTC)
    for span in SPANS:
        hourly = rows_of(filled, air.AQI_STATION.sql, span, timedelta(hours=1))
        assert len({r[0] for r in hourly}) > 3
        for width in (timedelta(hours=2), timedelta(hours=3), timedelta(hours=6), timedelta(days=1)):
            regrouped: dict[tuple[float, str], int] = {}
            for time, device, aqi in hourly:
                moment = datetime.fromtimestamp(time, UTC)
                key = ((moment - (moment - epoch) % width).timestamp(), device)
                regrouped[key] = max(regrouped.get(key, aqi), aqi)
            expected = sorted((t, d, a) for (t, d), a in regrouped.items())
            assert rows_of(filled, air.AQI_STATION.sql, span, width) == expected, (span, width)


def test_segment_speed_branches_agree(filled: Filled) -> None:
    """At the rollups' own intervals the segment panel returns their rows as stored, at multiples of 3 hours
    traffic_device_3h's whole buckets and the edge hours: the same as regrouping the 15-minute or hourly rows."""
    from urbanpulse.dashboards import traffic  # noqa: PLC0415
    from urbanpulse.dashboards.common import edge_hours, overlapping, whole_buckets  # noqa: PLC0415

    sql = traffic.SEGMENT_SPEED.sql
    regroup = sql.replace(f"NOT {traffic.AS_STORED}", "true").replace(traffic.AS_STORED, "false")
    for branch in (traffic.THREE_HOURLY, traffic.STORED_3H):
        regroup = regroup.replace(f"NOT {branch}", "true").replace(branch, "false")
    for span, interval in ((timedelta(hours=6), timedelta(minutes=15)), (timedelta(days=7), timedelta(hours=1))):
        assert_same_rows(rows_of(filled, sql, span, interval), rows_of(filled, regroup, span, interval))
    hours_only = sql.replace(whole_buckets("bucket", "3 hours"), "false").replace(
        edge_hours("bucket", "3 hours"), overlapping("bucket", "1 hour"))
    for span in SPANS:
        for interval in (timedelta(hours=3), timedelta(hours=6), timedelta(days=1)):
            assert_same_rows(rows_of(filled, sql, span, interval), rows_of(filled, regroup, span, interval))
            assert_same_rows(rows_of(filled, sql, span, interval), rows_of(filled, hours_only, span, interval))


def test_district_panels_equal_the_detectors_hours(filled: Filled) -> None:
    """From an hour on, the district panels read traffic_district_1h: the same as traffic_1h_district, computed
    from the detector-hours (the registry's places, congestion against the typical speeds) at query time."""
    from urbanpulse.dashboards import traffic  # noqa: PLC0415

    reference = ("SELECT floor(extract(epoch from bucket)/3600)*3600 AS time, district, vehicles, speed_kmh,"
                 " occupancy_pct, congestion_index FROM traffic_1h_district"
                 " WHERE bucket > $__timeFrom()::timestamptz - interval '1 hour' AND bucket < $__timeTo()"
                 " AND district <> 'unknown' ORDER BY 1, 2")
    expected = rows_of(filled, reference, SPANS[1], timedelta(hours=1))
    for column, panel in enumerate((traffic.VOLUME, traffic.SPEED_PANEL, traffic.OCCUPANCY, traffic.CONGESTION)):
        got = rows_of(filled, panel.sql, SPANS[1], timedelta(hours=1))
        want = [(r[0], r[1], r[2 + column]) for r in expected if r[2 + column] is not None]
        assert_same_rows([(float(t), m, v) for t, m, v in got], [(float(t), m, v) for t, m, v in want])


def test_driving_pollutant_from_three_hours_equals_the_hours(filled: Filled) -> None:
    """Over a day the pollutant panel counts air_aqi_3h's whole buckets and the edge hours: the same counts."""
    from urbanpulse.dashboards import air  # noqa: PLC0415
    from urbanpulse.dashboards.common import edge_hours, overlapping, whole_buckets  # noqa: PLC0415

    hourly = air.DRIVER.sql.replace(whole_buckets("bucket", "3 hours"), "false").replace(
        edge_hours("bucket", "3 hours"), overlapping("bucket", "1 hour"))
    for span in SPANS:
        got, expected = (sorted(rows_of(filled, sql, span, timedelta(hours=1))) for sql in (air.DRIVER.sql, hourly))
        assert got == expected
        assert sum(n for _, n in got) > 100


def test_typical_week_and_hot_spots_branches_agree(filled: Filled) -> None:
    """Today against the typical week from the district sums (every detector chosen) equals the detectors' own
    rows; the hot spots from whole days and edge hours equal them from every hour of the range."""
    from urbanpulse.dashboards import traffic  # noqa: PLC0415
    from urbanpulse.dashboards.common import edge_hours, overlapping, whole_buckets  # noqa: PLC0415

    week = traffic.TYPICAL_WEEK.sql
    per_detector = week.replace(traffic.ALL_CHOSEN, "false")
    assert rows_of(filled, f"SELECT {traffic.ALL_CHOSEN}", SPANS[0], timedelta(hours=1)) == [(True,)]  # else
    # both sides would be the per-detector branch
    for span in SPANS:
        for interval in (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3)):
            assert_same_rows(rows_of(filled, week, span, interval), rows_of(filled, per_detector, span, interval))
    hot = traffic.HOT_SPOTS.sql
    hourly = hot.replace(whole_buckets("bucket", "1 day"), "false").replace(
        edge_hours("bucket", "1 day"), overlapping("bucket", "1 hour"))
    for span in (*SPANS, timedelta(days=2, hours=3)):
        got, expected = (rows_of(filled, sql, span, timedelta(hours=1)) for sql in (hot, hourly))
        assert_same_rows(got, expected, keys=3)


def test_role_reads_no_secrets(filled: Filled) -> None:
    with grafana(filled.dsn) as conn:
        for statement in ("SELECT secret_hash FROM devices", "SELECT payload FROM dead_letters",
                          "SELECT * FROM event_outbox", "SELECT * FROM storage_config"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]
        columns, _ = run(conn, "SELECT * FROM grafana_dead_letters LIMIT 1")
        assert "payload" not in dict(columns)
        columns, _ = run(conn, "SELECT * FROM grafana_devices LIMIT 1")
        assert "secret_hash" not in dict(columns)


def test_ingest_rate_counts_every_stored_reading(filled: Filled) -> None:
    """The platform's ingest rate (from the district and speed-test rollups) against the raw readings per hour:
    a whole hour's count over its 60 minutes, the hour in progress over its minutes gone by (``now()``), so the
    rate does not fall at the start of every hour."""
    from urbanpulse.dashboards import platform  # noqa: PLC0415

    counted = " UNION ALL ".join(
        f"SELECT floor(extract(epoch from time) / 3600) * 3600 AS t, '{kind}' AS kind FROM {kind}_readings"
        " WHERE time >= date_trunc('hour', $__timeFrom()::timestamptz) AND time < $__timeTo()"
        for kind in ("air", "traffic", "ispeed"))
    elapsed = "greatest(least(extract(epoch from now()) - t, 3600), 60)"
    reference = f"SELECT t, kind, count(*) * 60.0 / {elapsed} FROM ({counted}) AS r GROUP BY 1, 2 ORDER BY 1, 2"
    end = filled.sample.end
    with psycopg.connect(filled.dsn) as conn:  # one transaction: one now() for both queries
        conn.execute("SET LOCAL ROLE urbanpulse_grafana")
        got, expected = (run(conn, expand(sql, time_from=end - SPANS[0], time_to=end, interval=timedelta(hours=1),
                                          variables=every_place_and_device(filled)))[1]
                         for sql in (platform.INGEST.sql, reference))
        now = conn.execute("SELECT extract(epoch from now())").fetchone()
    assert_same_rows([(float(t), k, float(n)) for t, k, n in got], [(float(t), k, float(n)) for t, k, n in expected])
    assert now is not None
    in_progress = [float(n) for t, _, n in got if float(now[0]) - float(t) < 3600]
    whole = [float(n) for t, _, n in got if float(now[0]) - float(t) >= 3600 and float(t) < end.timestamp() - 3600]
    # the sample's readings run to its end, a few minutes ago: the hour in progress is not a fraction of the others
    if in_progress and end.timestamp() % 3600 >= 600:
        assert min(in_progress) > 0.5 * min(whole), (in_progress, whole)


def test_devices_without_a_place_are_in_all(filled: Filled) -> None:
    """A device registered without province or district (a roaming speed tester, a station not yet placed) is
    offered as 'unknown' by the Province and District variables, so "All" keeps it in the fleet's panels."""
    from urbanpulse.dashboards import overview  # noqa: PLC0415

    board = next(b for b in panels.DASHBOARDS if b.uid == "urbanpulse-city")
    queries = variable_queries(dashboard_json(board))
    end = filled.sample.end
    with psycopg.connect(filled.dsn) as conn:  # one transaction, rolled back: the module's data stays as it is
        conn.execute("INSERT INTO devices (device_id, kind, secret_hash, online) VALUES"
                     " ('air-unplaced', 'air', '$7$101$c2FsdA==$aGFzaA==', true)")
        conn.execute("SET LOCAL ROLE urbanpulse_grafana")
        chosen: dict[str, list[str]] = {}
        for variable in board.variables:
            sql = expand(queries[variable.name], time_from=end - timedelta(days=7), time_to=end,
                         interval=timedelta(hours=1), variables=chosen)
            chosen[variable.name] = [str(r[0]) for r in run(conn, sql)[1]]
        assert "unknown" in chosen["province"]
        assert "unknown" in chosen["district"]
        fleet = run(conn, expand(overview.DEVICES.sql, time_from=end - timedelta(days=7), time_to=end,
                                 interval=timedelta(hours=1), variables=chosen))[1]
        assert ("air-unplaced", "air", "unknown", "unknown", "online") in {r[:5] for r in fleet}
        online = run(conn, expand(overview.ONLINE.sql, time_from=end - timedelta(days=7), time_to=end,
                                  interval=timedelta(hours=1), variables=chosen))[1]
        assert online[0][0] == 1 + sum(1 for r in fleet if r[4] == "online" and r[0] != "air-unplaced")
        conn.rollback()
