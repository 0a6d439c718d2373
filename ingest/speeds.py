"""Median download speeds from the rollups' counts, which add up where medians do not (ingest migration 022).

Each ``ispeed_1h`` / ``ispeed_1d`` row keeps, besides its own median, how many of its tests were under each of
:data:`POINTS` (``below_5`` .. ``below_300``, Mbit/s). Summed over any rows -- several operators, hours,
days -- they are the pooled distribution's counts at those speeds, exact. :func:`median_sql` reads the median
off them as ``percentile_cont`` defines it, the mean of the two middle tests (one, for an odd count): each is
placed in the step its rank falls in, and within the step as if the step's tests were spread evenly. So each
middle test is in its right step (under 40 exactly when it is), and the estimate is off by at most the steps'
widths (5 Mbit/s up to 100; within a megabit on the simulator's data, ``tests/test_dashboards_trust.py``).
When exactly half of the tests are under 40, the two middle ones straddle the line, and so may the median.

Every row of the two rollups has its counts: the rows from before migration 022 whose readings were past their
retention went to ``ispeed_1h_archive`` / ``ispeed_1d_archive`` with migration 025, which the dashboards do not read.

>>> "sum(below_5) >= " in median_sql()
True
"""

from __future__ import annotations

POINTS: tuple[int, ...] = (*range(5, 101, 5), 120, 150, 200, 300)
"""The speeds (Mbit/s) under which each rollup row counts its tests: the columns ``below_<point>``."""

_TESTS = "sum(tests)"


def _at_rank(rank: str) -> str:
    """SQL of the speed of the test of 1-based ``rank`` (an SQL expression), from the summed counts: in the first
    step whose count reaches it, at ``(rank - count before - 0.5) / tests in the step`` of the step's width; 300
    (the last point) for a test at or above it."""
    branches = []
    lower, under_lower = 0, "0"
    for point in POINTS:
        under = f"sum(below_{point})"
        branches.append(f"WHEN {under} >= {rank} THEN {lower} + {point - lower} * ({rank} - {under_lower} - 0.5)"
                        f" / ({under} - {under_lower})")
        lower, under_lower = point, under
    return f"CASE {' '.join(branches)} ELSE {POINTS[-1]} END"


def median_sql() -> str:
    """SQL of the median download of the rows a query aggregates (``GROUP BY``): the mean of its two middle
    tests read off the summed counts."""
    lower_middle = _at_rank(f"floor(({_TESTS} + 1) / 2.0)")
    upper_middle = _at_rank(f"ceil(({_TESTS} + 1) / 2.0)")
    return f"((({lower_middle}) + ({upper_middle})) / 2)::float8"
