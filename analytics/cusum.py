"""Change-point detection for level shifts: a two-sided CUSUM on robustly standardised readings.

Page's cumulative sum: with ``z = (x - level) / sigma`` against a slow baseline, ``up = max(0,
up + z - drift)`` and ``down = max(0, down - z - drift)`` accumulate evidence of a shift of more
than ``drift`` sigmas; noise keeps them near 0, a lasting shift makes one grow linearly. The
score is ``c² / (c² + threshold²)`` of the larger sum ``c``: 0.5 when it reaches ``threshold``
(with the textbook ``drift = 0.5``, ``threshold = 5``: a 1-sigma shift is found after about 10
readings, and noise alone crosses it about once in 900 readings). Past ``2 * threshold`` the
change is taken as real: the baseline jumps to the new level Page's estimate gives (``level +
sigma * (drift + c / run)``, ``run`` the readings since the sum was last 0), and the sums restart.

The baseline is an EWMA of the level and of the absolute deviation (``sigma = spread *
sqrt(pi/2)``), with deviations Huber-clipped to ``clip`` sigmas, so a shift moves it slowly and
the sums see it whole. ``z`` is clipped to ``clip`` sigmas in the sums too (a robust CUSUM), so a
single spike adds at most ``clip - drift`` and is not mistaken for a shift.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, jit, jit_inline, prefetch, row, row_ahead, unit_score
from urbanpulse.analytics.base import LEARN, SCORE, Detector
from urbanpulse.analytics.ewma import sigma_of

__all__ = ["Cusum", "cusum_fields", "cusum_step"]



def cusum_fields(prefix: str = "") -> tuple[Field, ...]:
    """The state of a series, in the columns of its row (:data:`LEVEL` ...): counts as float64, exact
    up to 2**53, so that the eight numbers share one cache line (``Cusum.packed``). ``sigma`` is the
    one the next reading is standardised by, worked out from ``level`` and ``spread`` when they were
    learned: the division at the head of a step then waits on two loads, not on the floors."""
    names = ("level", "spread", "count", "up", "down", "run_up", "run_down", "sigma")
    return tuple(Field(f"{prefix}{name}") for name in names)


LEVEL, SPREAD, COUNT, UP, DOWN, RUN_UP, RUN_DOWN, SIGMA = range(8)


@jit_inline
def cusum_step(
    level: float, spread: float, n: float, up: float, down: float, run_up: float, run_down: float, sigma: float,
    x: float, alpha: float, warmup: int, drift: float, threshold: float, clip: float, min_sigma: float,
) -> tuple[float, float, float, float, float, float, float, float, float]:
    """Evidence of a shift at ``x`` against one series' state, and that state once it learned ``x``:
    ``(sum, level, spread, n, up, down, run_up, run_down, sigma)``; the score is ``unit_score(sum,
    threshold)``.

    Scalars in and out: the kernel loads a series' state once and stores it once (a step that took
    the arrays themselves ran at a quarter of the speed). The sum, not the score: the kernel turns
    the sums into scores in a loop of their own, which vectorises, and the division leaves its
    per-point loop."""
    if not math.isfinite(x):
        return 0.0, level, spread, n, up, down, run_up, run_down, sigma
    z = (x - level) / sigma if n > 0 else 0.0
    z = min(max(z, -clip), clip)  # one outlier adds at most clip - drift
    new_up = max(0.0, up + z - drift)
    new_down = max(0.0, down - z - drift)
    evidence = max(new_up, new_down) if n >= warmup else 0.0
    if n == 0:
        return 0.0, x, 0.0, 1.0, up, down, run_up, run_down, sigma_of(x, 0.0, min_sigma)
    if n < warmup:
        new_up = new_down = 0.0
    run_up = run_up + 1.0 if new_up > 0.0 else 0.0
    run_down = run_down + 1.0 if new_down > 0.0 else 0.0
    if new_up > 2.0 * threshold or new_down > 2.0 * threshold:
        if new_up >= new_down:
            level += sigma * (drift + new_up / max(run_up, 1.0))
        else:
            level -= sigma * (drift + new_down / max(run_down, 1.0))
        new_up = new_down = run_up = run_down = 0.0
    else:
        a = alpha if n * alpha >= 1.0 else max(alpha, 1.0 / (n + 1))  # no division once n >= 1 / alpha
        d = x - level
        if n >= warmup:
            d = min(max(d, -clip * sigma), clip * sigma)
        level += a * d
        spread += a * (abs(d) - spread)
    return evidence, level, spread, n + 1.0, new_up, new_down, run_up, run_down, sigma_of(level, spread, min_sigma)


@jit
def _run(
    series: NDArray[np.int64], values: NDArray[np.float64], rows: NDArray[np.float64], alpha: float, warmup: int,
    drift: float, threshold: float, clip: float, min_sigma: float, mode: int,
) -> NDArray[np.float64]:
    out = np.empty(values.shape[0], np.float64)
    for j in range(values.shape[0]):
        prefetch((rows,), row_ahead(series, j))
        i = row(series, j)
        c, lv, sp, n, u, d, ru, rd, sg = cusum_step(
            rows[i, LEVEL], rows[i, SPREAD], rows[i, COUNT], rows[i, UP], rows[i, DOWN], rows[i, RUN_UP],
            rows[i, RUN_DOWN], rows[i, SIGMA], values[j], alpha, warmup, drift, threshold, clip, min_sigma)
        out[j] = 0.0 if mode == LEARN else c
        if mode != SCORE:
            rows[i, LEVEL], rows[i, SPREAD], rows[i, COUNT], rows[i, UP] = lv, sp, n, u
            rows[i, DOWN], rows[i, RUN_UP], rows[i, RUN_DOWN], rows[i, SIGMA] = d, ru, rd, sg
    for j in range(out.shape[0]):
        out[j] = unit_score(out[j], threshold)
    return out


class Cusum(Detector):
    """Two-sided CUSUM of robust z-scores: finds lasting level shifts, re-baselines after one.

    Parameters
    ----------
    alpha
        Smoothing factor of the baseline (memory about ``1 / alpha`` readings); slow on purpose,
        so a shift is accumulated before it is absorbed.
    warmup
        Readings learned before the sums run and the series is scored.
    drift
        Shifts smaller than this many sigmas are not accumulated (half the shift to detect).
    threshold
        The sum at which the score is 0.5; at twice it the change is accepted.
    clip
        Deviations beyond ``clip`` sigmas are learned as ``clip`` sigmas.
    min_sigma
        The smallest sigma, in the series' unit (its resolution).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = Cusum()
    >>> scores = []
    >>> for k in range(600):
    ...     x = rng.gauss(10.0, 1.0) + (2.0 if k >= 400 else 0.0)  # up 2 sigmas at 400
    ...     scores.append(detector.score_one(x))
    ...     detector.learn_one(x)
    >>> max(scores[100:400]) < 0.5  # noise: no alarm
    True
    >>> next(k for k, s in enumerate(scores) if s >= 0.5) - 400 < 10  # the shift: found within 10 readings
    True
    >>> scores[-1] < 0.5  # and accepted as the new level
    True

    References
    ----------
    E. S. Page, "Continuous inspection schemes", Biometrika 41(1/2), 100-115, 1954.
    D. C. Montgomery, Introduction to Statistical Quality Control, 6th ed., Wiley, 2009, ch. 9.
    """

    def __init__(self, alpha: float = 0.01, warmup: int = 30, drift: float = 0.5, threshold: float = 5.0,
                 clip: float = 3.0, min_sigma: float = 0.0) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.drift = drift
        self.threshold = threshold
        self.clip = clip
        self.min_sigma = min_sigma

    packed = True

    @property
    def layout(self) -> tuple[Field, ...]:
        return cusum_fields()

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        rows = self.state.rows
        assert rows is not None  # packed
        out: NDArray[np.float64] = _run(series, values, rows, float(self.alpha), int(self.warmup), float(self.drift),
                                        float(self.threshold), float(self.clip), float(self.min_sigma), mode)
        return out
