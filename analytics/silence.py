"""Device silence: no reading for ``k`` of a series' expected intervals.

A silent device sends nothing to score, so silence is found by time, not by reading: every
reading moves the series' last-seen time and its expected interval -- a geometric running mean
(then exponentially weighted, ``alpha``) of the gaps between readings, so one long outage or a
burst hardly moves it -- and at any moment :func:`overdue` says how many expected intervals each
series has been quiet. A series needs ``min_readings`` readings before it can be overdue (it has no
rhythm yet).

>>> import numpy as np
>>> watch = SilenceWatch()
>>> series = np.array([0, 1] * 10)
>>> times = np.repeat(np.arange(10) * 60.0, 2)  # two devices, one reading a minute
>>> watch.observe(series[:-1], times[:-1])  # device 1 misses its last one
>>> watch.silent(now=9 * 60.0 + 150, k=3).tolist()  # 150 s after the last minute mark
[False, True]
>>> watch.overdue(now=9 * 60.0 + 150).round(6).tolist()
[2.5, 3.5]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, SeriesArrays, jit

__all__ = ["LAYOUT", "SilenceWatch", "observe", "overdue"]

LAYOUT = (Field("last", fill=-math.inf), Field("interval"), Field("count", dtype="int64"))


@jit
def observe(
    series: NDArray[np.int64], times: NDArray[np.float64], last: NDArray[np.float64],
    interval: NDArray[np.float64], count: NDArray[np.int64], alpha: float,
) -> None:
    """Learn readings ``(series[j], times[j])``: last-seen times and expected intervals, in place."""
    for j in range(series.shape[0]):
        i, t = series[j], times[j]
        if not math.isfinite(t):
            continue
        if count[i] > 0:
            gap = t - last[i]
            if gap <= 0.0:  # a repeated or late timestamp says nothing about the rhythm
                last[i] = max(last[i], t)
                continue
            n = count[i]  # gaps seen so far, plus one
            a = max(alpha, 1.0 / n)
            interval[i] = gap if n == 1 else math.exp((1.0 - a) * math.log(interval[i]) + a * math.log(gap))
        last[i] = t
        count[i] += 1


@jit
def overdue(
    last: NDArray[np.float64], interval: NDArray[np.float64], count: NDArray[np.int64], now: float,
    min_readings: int,
) -> NDArray[np.float64]:
    """Expected intervals since each series' last reading at ``now``; 0.0 for series without a rhythm."""
    out = np.zeros(last.shape[0], np.float64)
    for i in range(last.shape[0]):
        if count[i] >= min_readings and interval[i] > 0.0:
            out[i] = max(0.0, (now - last[i]) / interval[i])
    return out


class SilenceWatch:
    """Last-seen times and expected intervals of many series.

    Parameters
    ----------
    alpha
        Smoothing factor of the expected interval, in log space (memory about ``1 / alpha`` gaps).
    min_readings
        Readings a series needs before it can be overdue.
    """

    def __init__(self, alpha: float = 0.05, min_readings: int = 3) -> None:
        self.alpha = alpha
        self.min_readings = min_readings
        self._state: SeriesArrays | None = None

    @property
    def state(self) -> SeriesArrays:
        if self._state is None:
            self._state = SeriesArrays(LAYOUT, 0)
        return self._state

    def observe(self, series: NDArray[np.int64], times: NDArray[np.float64]) -> None:
        series = np.ascontiguousarray(series, np.int64)
        if series.shape[0]:
            self.state.grow(int(series.max()) + 1)
        s = self.state
        observe(series, np.ascontiguousarray(times, np.float64), s["last"], s["interval"], s["count"],
                float(self.alpha))

    def overdue(self, now: float) -> NDArray[np.float64]:
        s = self.state
        out: NDArray[np.float64] = overdue(s["last"], s["interval"], s["count"], float(now), int(self.min_readings))
        return out

    def silent(self, now: float, k: float = 3.0) -> NDArray[np.bool_]:
        """Which series have sent nothing for more than ``k`` expected intervals at ``now``."""
        out: NDArray[np.bool_] = self.overdue(now) > k
        return out
