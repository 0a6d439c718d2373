"""Stuck sensor: a run of identical readings longer than the series' own habits make plausible.

Every reading either repeats the previous one (within ``tolerance``) or not. The share ``p`` of
repeats is learned per series (a Laplace-smoothed running, then exponentially weighted, count with
a memory of ``memory`` readings); if repeats were independent, a run of ``r`` repeats would have
probability ``p ** r``. Its surprise ``L = -r ln p`` (nats) gives the score ``L / (L + ln 10⁴)``:
0.5 for a run as unlikely as one in ten thousand. A noisy sensor (``p`` near 0) is flagged after a
few identical readings; one that reports in coarse steps (``p`` near 1) needs a long run; a
series that has always been constant is never flagged (it has no habit to break).

The share is learned apart for readings at the series' floor (at or below the lowest reading seen
before), at its ceiling and in between: a count that rests at 0 every night (vehicles at a small
junction, tweets) repeats its floor far more often than its daytime values, and a humidity sensor
sits at 100 % for hours in rain; a run there is judged by the floor's (the ceiling's) own habit,
while a reading stuck in between is judged by how rarely values in between repeat.

While a run is suspect (``min_run`` repeats or more), its repeats are not learned: a sensor stuck
for a day keeps alarming instead of teaching the detector that being stuck is normal.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, jit, jit_inline, prefetch, row, row_ahead
from urbanpulse.analytics.base import LEARN, SCORE, Detector

__all__ = ["BETWEEN", "CEILING", "FLOOR", "FlatLine", "flatline_fields", "flatline_step", "flatline_surprise",
           "value_class"]

_HALF = math.log(1e4)


BETWEEN, FLOOR, CEILING = range(3)  # the classes of a reading, each with its own share of repeats
CLASSES = 3


def flatline_fields(prefix: str = "", bounds: bool = True) -> tuple[Field, ...]:
    """The state of a series: last reading, run, count, and steps and repeats per class; ``bounds``:
    also the lowest and highest reading seen (a detector that keeps them already passes False)."""
    fields = (Field(f"{prefix}last"), Field(f"{prefix}run", dtype="int64"), Field(f"{prefix}count", dtype="int64"),
              Field(f"{prefix}steps", (CLASSES,)), Field(f"{prefix}repeats", (CLASSES,)))
    return (*fields, Field(f"{prefix}lo"), Field(f"{prefix}hi")) if bounds else fields


@jit_inline
def value_class(x: float, lo: float, hi: float, n: int) -> int:
    """``FLOOR`` if ``x`` is at or below ``lo``, the lowest of the ``n`` readings seen before it,
    ``CEILING`` if at or above ``hi``, else (and for a series' first reading) ``BETWEEN``."""
    if n == 0:
        return BETWEEN
    return FLOOR if x <= lo else (CEILING if x >= hi else BETWEEN)


@jit_inline
def flatline_surprise(
    last: float, run: int, n: int, steps: float, repeats: float, x: float, tolerance: float, min_run: int,
    memory: int, warmup: int,
) -> tuple[float, float, int, int, float, float]:
    """Surprise of ``x``'s run, ``-r ln p`` in nats (0.0 while warming up or under ``min_run``
    repeats), and the series' state once it learned ``x``: ``(surprise, last, run, n, steps,
    repeats)``. Scalars in and out, so a kernel loads and stores a series' state once. A non-finite
    ``x`` is not learned. ``exp(-surprise)`` is the run's probability, ``p ** r``."""
    if not math.isfinite(x):
        return 0.0, last, run, n, steps, repeats
    same = n > 0 and abs(x - last) <= tolerance
    r = run + 1 if same else 0
    surprise = 0.0
    if n >= warmup and r >= min_run:
        surprise = -r * math.log((repeats + 1.0) / (steps + 2.0))
    if n > 0 and not (same and r >= min_run):
        keep = 1.0 - 1.0 / memory
        steps = steps * keep + 1.0
        repeats = repeats * keep + (1.0 if same else 0.0)
    return surprise, x, r, n + 1, steps, repeats


@jit_inline
def flatline_step(
    last: float, run: int, n: int, steps: float, repeats: float, x: float, tolerance: float, min_run: int,
    memory: int, warmup: int,
) -> tuple[float, float, int, int, float, float]:
    """Score of ``x`` by the run of repeats it would extend, and the series' state once it learned
    ``x``: ``(score, last, run, n, steps, repeats)``, as :func:`flatline_surprise`; a non-finite ``x``
    scores 0.0."""
    surprise, last, r, n, steps, repeats = flatline_surprise(last, run, n, steps, repeats, x, tolerance, min_run,
                                                             memory, warmup)
    return surprise / (surprise + _HALF), last, r, n, steps, repeats


@jit
def _run(
    series: NDArray[np.int64], values: NDArray[np.float64], last: NDArray[np.float64], run: NDArray[np.int64],
    count: NDArray[np.int64], steps: NDArray[np.float64], repeats: NDArray[np.float64], lo: NDArray[np.float64],
    hi: NDArray[np.float64], tolerance: float, min_run: int, memory: int, warmup: int, mode: int,
) -> NDArray[np.float64]:
    out = np.empty(values.shape[0], np.float64)
    for j in range(values.shape[0]):
        prefetch((last, run, count, steps, repeats, lo, hi), row_ahead(series, j))
        i = row(series, j)
        x = values[j]
        c = value_class(x, lo[i], hi[i], count[i])
        score, la, ru, n, st, re = flatline_step(last[i], run[i], count[i], steps[i, c], repeats[i, c], x,
                                                 tolerance, min_run, memory, warmup)
        out[j] = 0.0 if mode == LEARN else score
        if mode != SCORE and math.isfinite(x):
            last[i], run[i], steps[i, c], repeats[i, c] = la, ru, st, re
            lo[i] = x if count[i] == 0 else min(lo[i], x)
            hi[i] = x if count[i] == 0 else max(hi[i], x)
            count[i] = n
    return out


class FlatLine(Detector):
    """A stuck or flat-lined sensor: more identical readings in a row than its history makes likely.

    Parameters
    ----------
    tolerance
        Readings within this of the previous one count as a repeat, in the series' unit (0: equal).
    min_run
        Repeats in a row before a run is scored at all (a pair of equal readings is never news).
    memory
        Readings over which the share of repeats is learned (exponential forgetting).
    warmup
        Readings learned before the series is scored.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> detector = FlatLine()
    >>> for _ in range(500):
    ...     detector.learn_one(round(rng.gauss(20.0, 0.5), 2))  # a thermometer, 0.01 resolution
    >>> for _ in range(4):
    ...     detector.learn_one(21.37)  # ... then stuck
    >>> round(detector.score_one(21.37), 2)  # the fifth identical reading in a row
    0.66
    >>> detector.score_one(21.5)  # it moves again
    0.0

    References
    ----------
    A. B. Sharma, L. Golubchik and R. Govindan, "Sensor faults: detection methods and prevalence in
    real-world datasets", ACM Transactions on Sensor Networks 6(3), 2010 ("constant" faults).
    """

    def __init__(self, tolerance: float = 0.0, min_run: int = 3, memory: int = 2000, warmup: int = 30) -> None:
        self.tolerance = tolerance
        self.min_run = min_run
        self.memory = memory
        self.warmup = warmup

    @property
    def layout(self) -> tuple[Field, ...]:
        return flatline_fields()

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        s = self.state
        out: NDArray[np.float64] = _run(series, values, s["last"], s["run"], s["count"], s["steps"], s["repeats"],
                                        s["lo"], s["hi"],
                                        float(self.tolerance), int(self.min_run), int(self.memory),
                                        int(self.warmup), mode)
        return out
