"""Detector algorithms in plain numpy, vectorised across series: the numpy baseline of bench/detectors.py.

A stream of ``(series, value)`` points is cut into rounds: round ``k`` holds the ``k``-th point of every
series that has one, so a round touches each series at most once and is one set of array operations
over all of them (series share no state, so the per-series order is all that matters). Each function
takes the state arrays of a warmed ``urbanpulse.analytics`` detector (updated in place) and returns
the scores of ``mode = SCORE_LEARN``; bench/detectors.py checks they equal the numba kernel's before
it times anything. Finding the rounds is part of the timed work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.ewma import _REL_FLOOR, MAD_TO_SIGMA
from urbanpulse.analytics.flatline import _HALF, BETWEEN, CEILING, FLOOR

Floats = NDArray[np.float64]
State = dict[str, NDArray[Any]]


def rounds(series: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Positions of the stream by round: the k-th round holds each series' k-th point."""
    by_series = np.argsort(series, kind="stable")
    counts = np.bincount(series)
    rank = np.empty(series.shape[0], np.int64)
    rank[by_series] = np.arange(series.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    by_round = np.argsort(rank, kind="stable")
    return np.split(by_round, np.cumsum(np.bincount(rank))[:-1])


def _unit_score(z: Floats, scale: float) -> Floats:
    zz = z * z
    with np.errstate(invalid="ignore"):  # inf / inf where zz is infinite: replaced by 1.0
        return np.where(zz < 1e300, zz / (zz + scale * scale), 1.0)


def _sigma(level: Floats, spread: Floats, min_sigma: float) -> Floats:
    return np.maximum(np.maximum(spread * MAD_TO_SIGMA, min_sigma), _REL_FLOOR * (1.0 + np.abs(level)))


def ewma(s: State, series: NDArray[np.int64], times: Floats, values: Floats, p: Any) -> Floats:
    """``EwmaZScore``: robust EWMA z-score (analytics/ewma.py)."""
    out = np.zeros(values.shape[0])
    for pos in rounds(series):
        i, x = series[pos], values[pos]
        mean, spread, n = s["mean"][i], s["spread"][i], s["count"][i]
        ok = np.isfinite(x)
        sigma = _sigma(mean, spread, p.min_sigma)
        score = _unit_score(np.abs(x - mean) / sigma, p.scale)
        out[pos] = np.where((n < p.warmup) | (n == 0) | ~ok, 0.0, score)
        a = np.maximum(p.alpha, 1.0 / (n + 1))
        d = x - mean
        limit = p.clip * sigma
        d = np.where(n >= p.warmup, np.minimum(np.maximum(d, -limit), limit), d)
        first = n == 0
        s["mean"][i] = np.where(ok, np.where(first, x, mean + a * d), mean)
        s["spread"][i] = np.where(ok, np.where(first, 0.0, spread + a * (np.abs(d) - spread)), spread)
        s["count"][i] = np.where(ok, n + 1, n)
    return out


def seasonal(s: State, series: NDArray[np.int64], times: Floats, values: Floats, p: Any) -> Floats:
    """``SeasonalProfile``: robust z-score against the hour-of-week, else hour-of-day slot (analytics/seasonal.py)."""
    out = np.zeros(values.shape[0])
    level, spread, count = s["level"], s["spread"], s["count"]
    for pos in rounds(series):
        i, x, t = series[pos], values[pos], times[pos]
        ok = np.isfinite(x) & np.isfinite(t)
        hours = np.floor(np.where(ok, t, 0.0) / 3600.0)
        hour = (hours % 24).astype(np.int64)
        week = ((np.floor(hours / 24.0) + 3) % 7).astype(np.int64) * 24 + hour
        day = 168 + hour
        slot = np.where(count[i, week] >= p.min_count, week, day)
        z = (x - level[i, slot]) / _sigma(level[i, slot], spread[i, slot], p.min_sigma)
        out[pos] = np.where(ok & (count[i, slot] >= p.min_count), _unit_score(z, p.scale), 0.0)
        for k in (week, day):
            lv, sp, n = level[i, k], spread[i, k], count[i, k]
            a = np.maximum(p.alpha, 1.0 / (n + 1))
            d = x - lv
            limit = p.clip * _sigma(lv, sp, p.min_sigma)
            d = np.where(n >= p.min_count, np.minimum(np.maximum(d, -limit), limit), d)
            first = n == 0
            level[i, k] = np.where(ok, np.where(first, x, lv + a * d), lv)
            spread[i, k] = np.where(ok, np.where(first, 0.0, sp + a * (np.abs(d) - sp)), sp)
            count[i, k] = np.where(ok, n + 1, n)
    return out


def cusum(s: State, series: NDArray[np.int64], times: Floats, values: Floats, p: Any) -> Floats:
    """``Cusum``: two-sided CUSUM of robust z-scores with re-baselining (analytics/cusum.py)."""
    out = np.zeros(values.shape[0])
    for pos in rounds(series):
        i, x = series[pos], values[pos]
        level, spread, n = s["level"][i], s["spread"][i], s["count"][i]
        up, down, run_up, run_down = s["up"][i], s["down"][i], s["run_up"][i], s["run_down"][i]
        ok, first, young = np.isfinite(x), n == 0, n < p.warmup
        sigma = _sigma(level, spread, p.min_sigma)
        z = np.clip(np.where(first, 0.0, (x - level) / sigma), -p.clip, p.clip)
        new_up = np.maximum(0.0, up + z - p.drift)
        new_down = np.maximum(0.0, down - z - p.drift)
        score = np.where(young, 0.0, _unit_score(np.maximum(new_up, new_down), p.threshold))
        out[pos] = np.where(ok & ~first, score, 0.0)
        new_up = np.where(young, 0.0, new_up)
        new_down = np.where(young, 0.0, new_down)
        new_run_up = np.where(new_up > 0.0, run_up + 1, 0)
        new_run_down = np.where(new_down > 0.0, run_down + 1, 0)
        jump = (new_up > 2.0 * p.threshold) | (new_down > 2.0 * p.threshold)
        jumped = np.where(new_up >= new_down, level + sigma * (p.drift + new_up / np.maximum(new_run_up, 1)),
                          level - sigma * (p.drift + new_down / np.maximum(new_run_down, 1)))
        a = np.maximum(p.alpha, 1.0 / (n + 1))
        d = x - level
        d = np.where(young, d, np.clip(d, -p.clip * sigma, p.clip * sigma))
        learn = ok & ~first
        s["level"][i] = np.where(learn, np.where(jump, jumped, level + a * d), np.where(ok & first, x, level))
        s["spread"][i] = np.where(learn & ~jump, spread + a * (np.abs(d) - spread), np.where(ok & first, 0.0, spread))
        s["up"][i] = np.where(learn, np.where(jump, 0.0, new_up), up)
        s["down"][i] = np.where(learn, np.where(jump, 0.0, new_down), down)
        s["run_up"][i] = np.where(learn, np.where(jump, 0, new_run_up), run_up)
        s["run_down"][i] = np.where(learn, np.where(jump, 0, new_run_down), run_down)
        s["count"][i] = np.where(ok, n + 1, n)
        s["sigma"][i] = np.where(ok, _sigma(s["level"][i], s["spread"][i], p.min_sigma), s["sigma"][i])
    return out


def flatline(s: State, series: NDArray[np.int64], times: Floats, values: Floats, p: Any) -> Floats:
    """``FlatLine``: a run of repeats less likely than the series' habits allow (analytics/flatline.py)."""
    out = np.zeros(values.shape[0])
    keep = 1.0 - 1.0 / p.memory
    for pos in rounds(series):
        i, x = series[pos], values[pos]
        last, run, n, lo, hi = s["last"][i], s["run"][i], s["count"][i], s["lo"][i], s["hi"][i]
        c = np.where(n == 0, BETWEEN, np.where(x <= lo, FLOOR, np.where(x >= hi, CEILING, BETWEEN)))
        steps, repeats = s["steps"][i, c], s["repeats"][i, c]
        ok = np.isfinite(x)
        same = (n > 0) & (np.abs(x - last) <= p.tolerance)
        r = np.where(same, run + 1, 0)
        surprise = -r * np.log((repeats + 1.0) / (steps + 2.0))
        scored = ok & (n >= p.warmup) & (r >= p.min_run)
        out[pos] = np.where(scored, surprise / (surprise + _HALF), 0.0)
        learn = ok & (n > 0) & ~(same & (r >= p.min_run))
        s["steps"][i, c] = np.where(learn, steps * keep + 1.0, steps)
        s["repeats"][i, c] = np.where(learn, repeats * keep + same, repeats)
        s["last"][i] = np.where(ok, x, last)
        s["run"][i] = np.where(ok, r, run)
        s["lo"][i] = np.where(ok, np.where(n == 0, x, np.minimum(lo, x)), lo)
        s["hi"][i] = np.where(ok, np.where(n == 0, x, np.maximum(hi, x)), hi)
        s["count"][i] = np.where(ok, n + 1, n)
    return out


NUMPY: dict[str, Callable[[State, NDArray[np.int64], Floats, Floats, Any], Floats]] = {
    "ewma": ewma,
    "seasonal": seasonal,
    "cusum": cusum,
    "flatline": flatline,
}
