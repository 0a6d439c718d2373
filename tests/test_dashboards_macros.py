"""Grafana PostgreSQL macro and template-variable expansion, table-driven."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from urbanpulse.dashboards.macros import MacroError, auto_interval, expand, format_interval, parse_interval

FROM = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TO = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

Variables = dict[str, str | Sequence[str]]

# (sql, interval, variables, timescaledb, expected)
CASES: list[tuple[str, timedelta, Variables, bool, str]] = [
    ("$__time(t)", MINUTE, {}, False, 't AS "time"'),
    ("$__timeEpoch(t)", MINUTE, {}, False, 'extract(epoch from t) as "time"'),
    ("$__timeFilter(time)", MINUTE, {}, False, "time BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-01T11:00:00Z'"),
    ("$__timeFilter( received_at )", MINUTE, {}, False,
     "received_at BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-01T11:00:00Z'"),
    ("$__timeFrom() .. $__timeTo()", MINUTE, {}, False, "'2026-03-01T10:00:00Z' .. '2026-03-01T11:00:00Z'"),
    ("$__timeGroup(time,'5m')", MINUTE, {}, False, "floor(extract(epoch from time)/300)*300"),
    ("$__timeGroup(time, '5m', NULL)", MINUTE, {}, False, "floor(extract(epoch from time)/300)*300"),
    ("$__timeGroup(time, 5m, previous)", MINUTE, {}, False, "floor(extract(epoch from time)/300)*300"),
    ("$__timeGroup(time,'1h', 0)", MINUTE, {}, False, "floor(extract(epoch from time)/3600)*3600"),
    ("$__timeGroup(time,'500ms')", MINUTE, {}, False, "floor(extract(epoch from time)/0.5)*0.5"),
    ("$__timeGroup(time,'1d')", MINUTE, {}, False, "floor(extract(epoch from time)/86400)*86400"),
    ("$__timeGroup(time,'1h30m')", MINUTE, {}, False, "floor(extract(epoch from time)/5400)*5400"),
    ("$__timeGroupAlias(time,'30s')", MINUTE, {}, False, 'floor(extract(epoch from time)/30)*30 AS "time"'),
    # Grafana < 5.3 compatibility: a comma right after $__timeGroup(...) adds the alias
    ("SELECT $__timeGroup(time,'5m'), avg(x)", MINUTE, {}, False,
     'SELECT floor(extract(epoch from time)/300)*300 AS "time", avg(x)'),
    ("GROUP BY $__timeGroup(time,'5m')", MINUTE, {}, False, "GROUP BY floor(extract(epoch from time)/300)*300"),
    # TimescaleDB: time_bucket with seconds to three decimals
    ("$__timeGroup(time,'5m')", MINUTE, {}, True, "time_bucket('300.000s',time)"),
    ("$__timeGroup(time, '5m', NULL)", MINUTE, {}, True, "time_bucket('300.000s',time)"),
    ("$__timeGroupAlias(time,'1d')", MINUTE, {}, True, "time_bucket('86400.000s',time) AS \"time\""),
    ("$__timeGroupAlias(time, $__interval)", timedelta(seconds=20), {}, True,
     "time_bucket('20.000s',time) AS \"time\""),
    ("$__timeGroup(time,'500ms')", MINUTE, {}, True, "time_bucket('0.500s',time)"),
    # $__interval as the group interval, formatted (and truncated) the way Grafana does
    ("$__timeGroupAlias(time, $__interval)", timedelta(seconds=30), {}, False,
     'floor(extract(epoch from time)/30)*30 AS "time"'),
    ("$__timeGroupAlias(time, $__interval)", timedelta(seconds=90), {}, False,
     'floor(extract(epoch from time)/60)*60 AS "time"'),
    ("$__timeGroupAlias(time, ${__interval})", timedelta(hours=1), {}, False,
     'floor(extract(epoch from time)/3600)*3600 AS "time"'),
    ("$__interval $__interval_ms", timedelta(seconds=30), {}, False, "30s 30000"),
    ("$__interval $__interval_ms", timedelta(hours=2), {}, False, "2h 7200000"),
    ("$__interval $__interval_ms", timedelta(days=1), {}, False, "1d 86400000"),
    ("$__interval $__interval_ms", timedelta(milliseconds=200), {}, False, "200ms 200"),
    ("count(*) * 60000.0 / $__interval_ms", timedelta(minutes=5), {}, False, "count(*) * 60000.0 / 300000"),
    # Unix-epoch columns
    ("$__unixEpochFilter(ts)", MINUTE, {}, False, "ts >= 1772359200 AND ts <= 1772362800"),
    ("$__unixEpochFrom() $__unixEpochTo()", MINUTE, {}, False, "1772359200 1772362800"),
    ("$__unixEpochGroup(ts,'5m')", MINUTE, {}, False, "floor((ts)/300)*300"),
    ("$__unixEpochGroupAlias(ts,'5m')", MINUTE, {}, False, 'floor((ts)/300)*300 AS "time"'),
    ("$__unixEpochNanoFrom()", MINUTE, {}, False, "1772359200000000000"),
    # template variables: single values bare (quotes doubled), multi-value ones quoted
    ("'$province'", MINUTE, {"province": "Ha Noi"}, False, "'Ha Noi'"),
    ("'$name'", MINUTE, {"name": "O'Brien"}, False, "'O''Brien'"),
    ("IN ($province)", MINUTE, {"province": ["Ha Noi", "Da Nang"]}, False, "IN ('Ha Noi','Da Nang')"),
    ("IN ($province)", MINUTE, {"province": ["Ha Noi"]}, False, "IN ('Ha Noi')"),
    ("IN (${province})", MINUTE, {"province": ["Ha Noi", "Da Nang"]}, False, "IN ('Ha Noi','Da Nang')"),
    ("IN ([[kind]])", MINUTE, {"kind": ["air", "traffic"]}, False, "IN ('air','traffic')"),
    ("IN ($name)", MINUTE, {"name": ["O'Brien", "x"]}, False, "IN ('O''Brien','x')"),
    ("${kind:csv}", MINUTE, {"kind": ["air", "traffic"]}, False, "air,traffic"),
    ("${kind:csv}", MINUTE, {"kind": "air"}, False, "air"),
    ("${kind:sqlstring}", MINUTE, {"kind": "air"}, False, "'air'"),
    ("${kind:sqlstring}", MINUTE, {"kind": ["air", "it's"]}, False, "'air','it''s'"),
    ("${kind:raw}", MINUTE, {"kind": ["air", "traffic"]}, False, "air,traffic"),
    ("${kind:pipe}", MINUTE, {"kind": ["air", "traffic"]}, False, "air|traffic"),
    ("${kind:doublequote}", MINUTE, {"kind": ["air", "traffic"]}, False, '"air","traffic"'),
    ("[[kind:csv]]", MINUTE, {"kind": ["air", "traffic"]}, False, "air,traffic"),
    # names match whole words; unknown variables stay as written
    ("$kinds $kind", MINUTE, {"kind": "air"}, False, "$kinds air"),
    ("$other", MINUTE, {"kind": "air"}, False, "$other"),
    ("${kind.path}", MINUTE, {"kind": "air"}, False, "${kind.path}"),
    # a variable inside a macro argument is replaced first
    ("$__timeGroup($col,'5m')", MINUTE, {"col": "received_at"}, False,
     "floor(extract(epoch from received_at)/300)*300"),
]


@pytest.mark.parametrize(("sql", "interval", "variables", "timescaledb", "expected"), CASES)
def test_expand(sql: str, interval: timedelta, variables: Variables, timescaledb: bool, expected: str) -> None:
    got = expand(sql, time_from=FROM, time_to=TO, interval=interval, variables=variables, timescaledb=timescaledb)
    assert got == expected


@pytest.mark.parametrize(
    ("time_from", "time_to", "expected"),
    [
        (datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC), TO,
         "t BETWEEN '2026-03-01T10:00:00.25Z' AND '2026-03-01T11:00:00Z'"),
        (datetime(2026, 3, 1, 17, 0, tzinfo=timezone(timedelta(hours=7))),
         datetime(2026, 3, 1, 11, 0, 0, 1, tzinfo=UTC),
         "t BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-01T11:00:00.000001Z'"),
    ],
)
def test_times_are_rfc3339_utc(time_from: datetime, time_to: datetime, expected: str) -> None:
    assert expand("$__timeFilter(t)", time_from=time_from, time_to=time_to, interval=MINUTE) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__nope(x)", "unknown macro"),
        ("$__timeGroup(time)", "needs time column and interval"),
        ("$__timeGroup(time,'5x')", "error parsing interval"),
        ("$__timeGroup(time,'5m',sometimes)", "error parsing fill value"),
        ("$__timeFilter()", "missing time column"),
        ("${kind:lucene}", "not supported"),
    ],
)
def test_refusals(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, time_from=FROM, time_to=TO, interval=MINUTE, variables={"kind": "air"})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expand("$__timeFilter(t)", time_from=datetime(2026, 1, 1), time_to=TO, interval=MINUTE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("1h", timedelta(hours=1)),
     ("1d", timedelta(days=1)), ("2w", timedelta(days=14)), ("250ms", timedelta(milliseconds=250)),
     ("1h30m", timedelta(minutes=90)), ("1.5h", timedelta(minutes=90))],
)
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(timedelta(seconds=90), "1m"), (timedelta(days=400), "1y"), (timedelta(microseconds=10), "1ms"),
     (timedelta(days=7), "7d"), (timedelta(seconds=59), "59s")],
)
def test_format_interval(interval: timedelta, expected: str) -> None:
    assert format_interval(interval) == expected


@pytest.mark.parametrize(
    ("span", "expected"),
    [(timedelta(hours=1), timedelta(seconds=20)), (timedelta(hours=24), timedelta(minutes=10)),
     (timedelta(days=7), timedelta(hours=1)), (timedelta(minutes=5), timedelta(seconds=2))],
)
def test_auto_interval(span: timedelta, expected: timedelta) -> None:
    assert auto_interval(span, 200) == expected
    assert auto_interval(span, 200, minimum=timedelta(minutes=1)) == max(expected, timedelta(minutes=1))
