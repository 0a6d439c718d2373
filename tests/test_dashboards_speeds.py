"""The median read off the rollups' counts (``ingest/speeds.py``) against ``percentile_cont`` of the tests
themselves, on PostgreSQL: small and even groups, ties, values on the steps' points, above the last point,
rows split as the hourly rollup splits them, and history without counts."""

from __future__ import annotations

import random

import psycopg
import pytest

from urbanpulse.ingest.speeds import POINTS, median_sql

pytestmark = pytest.mark.integration

CASES = {
    1: [34.0, 100.0],  # an even pair far apart: the mean of the two, not the point between them
    2: [10.0, 20.0, 60.0, 70.0],  # true median 40: not under the line
    3: [39.0] * 6 + [200.0] * 3,
    4: [400.0],  # above the last point
    5: [40.0, 40.0, 40.0],  # on a point: not under it
    6: [39.9, 40.0],
    7: [12.5],
}


def _step_width(value: float) -> float:
    lower = 0
    for point in POINTS:
        if value < point:
            return point - lower
        lower = point
    return 0.0


def _rows(samples: dict[int, list[float]], rnd: random.Random) -> str:
    """SQL rows as the rollup holds them: each group's tests split into a few rows of counts."""
    counts = ", ".join(f"count(*) FILTER (WHERE v < {p}) AS below_{p}" for p in POINTS)
    values = []
    for group, sample in samples.items():
        for v in sample:
            values.append(f"({group}, {rnd.randrange(3)}, {v})")
    return (f"SELECT g, count(*) AS tests, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS download_median,"
            f" {counts} FROM (VALUES {', '.join(values)}) AS t(g, part, v) GROUP BY g, part")


def test_the_median_of_the_counts_against_the_tests(database: str) -> None:
    rnd = random.Random(7)
    samples = dict(CASES)
    for group in range(100, 160):  # speed tests: right-skewed, groups of 1 to 40
        samples[group] = [round(rnd.lognormvariate(3.6, 0.6), 1) for _ in range(rnd.randint(1, 40))]
    with psycopg.connect(database) as conn:
        got = dict(conn.execute(f"SELECT g, {median_sql()} FROM ({_rows(samples, rnd)}) AS r GROUP BY g").fetchall())
        true = dict(conn.execute(
            "SELECT g, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM (VALUES "
            + ", ".join(f"({g}, {v})" for g, s in samples.items() for v in s) + ") AS t(g, v) GROUP BY g").fetchall())
    for group, sample in samples.items():
        ordered = sorted(sample)
        lower, upper = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
        slack = (_step_width(lower) + _step_width(upper)) / 2 + 1e-9  # each middle test within its step
        if upper >= POINTS[-1]:
            assert got[group] <= true[group], group  # shown as 300, at most
            continue
        assert abs(got[group] - true[group]) <= slack, (group, got[group], true[group], sample)
        if (lower < 40) == (upper < 40):  # both middle tests on one side of the line: so is the median
            assert (got[group] < 40) == (true[group] < 40), (group, got[group], true[group])
    assert got[1] == pytest.approx((32.5 + 110.0) / 2)
    assert got[2] >= 40  # 10, 20, 60, 70: the median is 40, not under the line
    assert got[3] < 40
    assert got[5] >= 40
