"""Seasonal baseline: a reading against the same hour of the week (or of the day) in the past.

Each series keeps a robust profile: for each of the 168 hours of the week and each of the 24
hours of the day, an exponentially weighted level and absolute deviation ("spread") of the
readings that fell in it (Holt-Winters-style seasonal indices, Winters 1960, kept per slot rather
than smoothed across slots). A reading is scored against its hour-of-week slot once that slot has
seen ``min_count`` readings, before that against its hour-of-day slot, before that not at all.
Deviations are Huber-clipped to ``clip`` sigmas before they are learned (Huber 1964), as in the
EWMA detector, so one outlier hardly moves a slot.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, by_series, jit, jit_inline, ungroup, unit_score, unsigned
from urbanpulse.analytics.base import LEARN, SCORE, Detector
from urbanpulse.analytics.ewma import sigma_of

__all__ = ["SLOTS", "SeasonalProfile", "seasonal_fields", "seasonal_step", "slots_of"]

WEEK, DAY = 168, 24
SLOTS = WEEK + DAY  # week slots 0..167 (Monday 00:00 is 0), then day slots 168..191


def seasonal_fields(prefix: str = "") -> tuple[Field, ...]:
    return (Field(f"{prefix}level", (SLOTS,)), Field(f"{prefix}spread", (SLOTS,)),
            Field(f"{prefix}count", (SLOTS,), dtype="int64"))


@jit
def slots_of(t: float) -> tuple[int, int]:
    """The hour-of-week slot (Monday 00:00-01:00 is 0) and hour-of-day slot (168 + hour) of ``t``."""
    hours = math.floor(t / 3600.0)
    hour = int(hours % 24)
    weekday = int((math.floor(hours / 24.0) + 3) % 7)  # 1970-01-01 was a Thursday
    return weekday * 24 + hour, WEEK + hour


@jit_inline
def _learn_slot(
    level: float, spread: float, n: int, x: float, sigma: float, alpha: float, min_count: int, clip: float
) -> tuple[float, float, int]:
    """A slot's ``(level, spread, n)`` once it learned ``x`` (``sigma``: the slot's before it learns)."""
    if n == 0:
        return x, 0.0, 1
    a = alpha if n * alpha >= 1.0 else max(alpha, 1.0 / (n + 1))  # no division once n >= 1 / alpha
    d = x - level
    if n >= min_count:
        d = min(max(d, -clip * sigma), clip * sigma)
    return level + a * d, spread + a * (abs(d) - spread), n + 1


@jit_inline
def seasonal_step(
    week_level: float, week_spread: float, week_n: int, day_level: float, day_spread: float, day_n: int,
    x: float, alpha: float, min_count: int, clip: float, scale: float, min_sigma: float,
) -> tuple[float, float, float, int, float, float, int]:
    """Score of ``x`` against its hour-of-week slot (else its hour-of-day slot), and both slots once
    they learned it: ``(score, week_level, week_spread, week_n, day_level, day_spread, day_n)``.

    Scalars in and out: a kernel loads the two slots once and stores them once (a step that took
    the arrays themselves was several times slower). A non-finite ``x`` scores 0.0, learned by neither.
    """
    if not math.isfinite(x):
        return 0.0, week_level, week_spread, week_n, day_level, day_spread, day_n
    week_sigma = sigma_of(week_level, week_spread, min_sigma)  # each slot's, once for scoring and learning
    day_sigma = sigma_of(day_level, day_spread, min_sigma)
    score = 0.0
    if week_n >= min_count:
        score = unit_score(x - week_level, scale * week_sigma)  # (z / scale)² / (1 + (z / scale)²), one division
    elif day_n >= min_count:
        score = unit_score(x - day_level, scale * day_sigma)
    week_level, week_spread, week_n = _learn_slot(week_level, week_spread, week_n, x, week_sigma, alpha,
                                                  min_count, clip)
    day_level, day_spread, day_n = _learn_slot(day_level, day_spread, day_n, x, day_sigma, alpha, min_count, clip)
    return score, week_level, week_spread, week_n, day_level, day_spread, day_n


@jit
def _run(
    series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
    level: NDArray[np.float64], spread: NDArray[np.float64], count: NDArray[np.int64], alpha: float,
    min_count: int, clip: float, scale: float, min_sigma: float, mode: int,
) -> NDArray[np.float64]:
    order, ends, points = by_series(series, times, values, level.shape[0])  # one series' profile at a time
    grouped = np.empty(values.shape[0], np.float64)
    i = 0
    for p in range(order.shape[0]):
        while p >= ends[i]:
            i += 1
        t = points[p, 0]
        if not math.isfinite(t):
            grouped[p] = 0.0
            continue
        week, day = slots_of(t)
        r, w, d = unsigned(i), unsigned(week), unsigned(day)  # no wrap-around of negative indices to compute
        score, wl, ws, wn, dl, ds, dn = seasonal_step(level[r, w], spread[r, w], count[r, w], level[r, d],
                                                      spread[r, d], count[r, d], points[p, 1], alpha, min_count,
                                                      clip, scale, min_sigma)
        grouped[p] = 0.0 if mode == LEARN else score
        if mode != SCORE:
            level[r, w], spread[r, w], count[r, w], level[r, d], spread[r, d], count[r, d] = wl, ws, wn, dl, ds, dn
    return ungroup(order, grouped)


class SeasonalProfile(Detector):
    """Robust z-score of a reading against its hour-of-week (else hour-of-day) profile.

    With ``z = (x - level) / sigma`` for the reading's slot (``sigma = spread * sqrt(pi/2)``, never
    below ``min_sigma``), the score is ``z² / (z² + scale²)``: 0.5 at ``z = scale``.

    Parameters
    ----------
    alpha
        Smoothing factor of each slot: its memory is about ``1 / alpha`` visits (a running mean
        before that). A day slot of 5-minute data is visited 12 times a day, a week slot 12 times a
        week: the default 0.1 remembers about a day of the day profile and ten weeks of the week one.
    min_count
        Readings a slot must have learned before it is used.
    clip
        Deviations beyond ``clip`` sigmas are learned as ``clip`` sigmas.
    scale
        The z at which the score is 0.5.
    min_sigma
        The smallest sigma, in the series' unit (its resolution).

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(1)
    >>> detector = SeasonalProfile()
    >>> hour = 3600.0
    >>> for k in range(24 * 21):  # three weeks, hourly: busy days, quiet nights
    ...     t = k * hour
    ...     detector.learn_one(100 + 50 * math.sin(2 * math.pi * k / 24) + rng.gauss(0, 2), t)
    >>> t = 24 * 21 * hour + 6 * hour  # 06:00, the daily peak
    >>> detector.score_one(150.0, t) < 0.3  # peak traffic at peak time: normal
    True
    >>> detector.score_one(50.0, t) > 0.9  # the night's level at peak time: anomalous
    True

    References
    ----------
    P. R. Winters, "Forecasting sales by exponentially weighted moving averages", Management
    Science 6(3), 324-342, 1960. P. J. Huber, "Robust estimation of a location parameter",
    The Annals of Mathematical Statistics 35(1), 73-101, 1964.
    """

    @property
    def layout(self) -> tuple[Field, ...]:
        return seasonal_fields()

    def __init__(self, alpha: float = 0.1, min_count: int = 3, clip: float = 3.0, scale: float = 3.0,
                 min_sigma: float = 0.0) -> None:
        self.alpha = alpha
        self.min_count = min_count
        self.clip = clip
        self.scale = scale
        self.min_sigma = min_sigma

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        s = self.state
        out: NDArray[np.float64] = _run(series, times, values, s["level"], s["spread"], s["count"],
                                        float(self.alpha), int(self.min_count), float(self.clip),
                                        float(self.scale), float(self.min_sigma), mode)
        return out
