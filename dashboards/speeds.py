"""Median download speeds from the rollups' counts, which add up where medians do not (ingest migration 022).

Each ``ispeed_1h`` / ``ispeed_1d`` row keeps, besides its own median, how many of its tests were under each of
:data:`POINTS` (``below_5`` .. ``below_300``, Mbit/s). Summed over any rows -- several operators, hours,
days -- they are the pooled distribution's counts at those speeds, exact; :func:`median_sql` reads the median
off them: the step where the count passes half the tests, and within it, linearly. The estimate is always in
the right step (under 40 exactly when more than half of the tests were under 40), and within it off by at
most its width (5 Mbit/s up to 100; under 1 on the simulator's data, ``tests/test_dashboards_trust.py``).

>>> median_sql().startswith("(CASE WHEN sum(below_5) * 2 >= sum(tests) THEN 0 + 5 * (sum(tests) / 2.0 - 0)")
True
"""

from __future__ import annotations

POINTS: tuple[int, ...] = (*range(5, 101, 5), 120, 150, 200, 300)
"""The speeds (Mbit/s) under which each rollup row counts its tests: the columns ``below_<point>``."""


def median_sql() -> str:
    """SQL of the median download of the rows a query aggregates (``GROUP BY``), from their summed counts; a
    median of 300 Mbit/s or more shows as 300."""
    tests = "sum(tests)"
    branches = []
    lower, under_lower = 0, "0"
    for point in POINTS:
        under = f"sum(below_{point})"
        branches.append(f"WHEN {under} * 2 >= {tests} THEN {lower} + {point - lower} * ({tests} / 2.0 - {under_lower})"
                        f" / ({under} - {under_lower})")
        lower, under_lower = point, under
    return f"(CASE {' '.join(branches)} ELSE {POINTS[-1]} END)::float8"
