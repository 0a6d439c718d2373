"""Recurring alarms: an alarm that comes back at the same hour of the day is routine, not news.

A nightly job, a daily peak: once a series has alarmed in an hour of the day (UTC) on each of the
``days`` days before, its alarm in that hour shows as the yellow line's 0.3 instead (ISA-18.2's
recurring alarms, which an operator shelves once they have come back a few times). A held alarm
still counts, so the next day's is held too; a day without one in that hour breaks the streak.
The state is two small arrays a series, one entry per hour of the day (:func:`recurring_fields`).

>>> import numpy as np
>>> day, streak = (np.full((1, 24), f.fill, f.dtype) for f in recurring_fields("r_"))
>>> at = lambda d: (d * 24 + 3) * 3600.0 + 600.0  # 03:10 on day d
>>> [round(unless_recurring(0.7, day, streak, 0, at(d), 2, True), 2) for d in (100, 101, 102, 103)]
[0.7, 0.7, 0.3, 0.3]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, jit_inline
from urbanpulse.analytics.likelihood import YELLOW_TAIL, log_score

__all__ = ["ALARM", "MAX_DAYS", "recurring_fields", "unless_recurring"]

ALARM = 0.5  # the red line: a score this high is an alarm (log_score(RED_TAIL), 0.4999996, shown as 0.5)
MAX_DAYS = 126  # the longest streak asked for: a streak is counted up to 127 (int8)
_NEVER = -(2**31)  # the day of an hour that has not alarmed yet (day 0 is 1970-01-01)


def recurring_fields(prefix: str) -> tuple[Field, ...]:
    """The last day with an alarm in each hour of the day, and the days in a row up to it with one."""
    return (
        Field(f"{prefix}day", (24,), dtype="int32", fill=_NEVER),
        Field(f"{prefix}streak", (24,), dtype="int8"),
    )


@jit_inline
def unless_recurring(
    score: float, r_day: NDArray[np.int32], r_streak: NDArray[np.int8], i: int, t: float, days: int, learn: bool
) -> float:
    """``score``, or the yellow line's 0.3 for an alarm (:data:`ALARM` or more) of series ``i`` at time
    ``t`` that recurs: the series alarmed in this hour of the day (UTC) on each of the ``days`` days
    before (0: never held). Records the alarm if ``learn``, held or not: ``r_day[i, hour]`` is the
    last day with an alarm in that hour, ``r_streak[i, hour]`` the days in a row, up to that one,
    with an alarm in it. A reading from before that day (a late one) is neither held nor recorded."""
    if days <= 0 or score < ALARM or not math.isfinite(t):
        return score
    hours = math.floor(t / 3600.0)
    day, hour = math.floor(hours / 24.0), int(hours % 24)
    last, streak = int(r_day[i, hour]), int(r_streak[i, hour])
    before = streak if last == day - 1 else streak - 1 if last == day else 0  # days in a row before today
    if learn and day > last:
        r_day[i, hour], r_streak[i, hour] = day, min(before + 1, MAX_DAYS + 1)
    return min(score, log_score(YELLOW_TAIL)) if before >= days else score
