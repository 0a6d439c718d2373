"""Context novelty: has the recent sequence of coarse levels ever been seen, at any order?

After the contextual anomaly detector CAD-OSE (Smirnov, winner of the 2016 NAB competition):
every reading is discretised into one of ``levels`` coarse levels of the range seen so far (8:
CAD-OSE's three bits of value), and the last ``orders`` levels form contexts of every length from
1 to ``orders`` ending at the reading. Each context seen is remembered in a per-series set (a
bitset of ``bits`` bits indexed by a hash of the context and its length, so its size is fixed and
a collision only ever hides novelty, never invents it). The score is the share of the reading's
contexts never seen before: 0 for a well-worn path, 1 for a level never reached. Shapes of
magnitude (how far), of form (:mod:`.shape`) and of time (:mod:`.seasonal`) are other views; this
one asks only whether the *order* of things is new, which is what a change of habit (another user
typing, a failing machine's new rhythm) looks like.

A series that never repeats its contexts (pure noise) scores high all the time; the anomaly
likelihood (:mod:`.likelihood`) that the ensemble puts over every view turns that into "usual".
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, by_series, jit, ungroup
from urbanpulse.analytics.base import LEARN, SCORE, Detector

__all__ = ["ContextNovelty", "context_fields", "context_step"]

LEVELS, ORDERS, WORDS = 8, 6, 256  # 3 bits a level, contexts up to 6 readings, 256 x 64 bits = 2 kB
_MIX = np.uint64(0x9E3779B97F4A7C15)


def context_fields(prefix: str = "", words: int = WORDS) -> tuple[Field, ...]:
    """Range seen (lo, hi), readings seen, the last levels (packed, 4 bits each), the bitset of contexts."""
    return (Field(f"{prefix}lo"), Field(f"{prefix}hi"), Field(f"{prefix}n", dtype="int64"),
            Field(f"{prefix}recent", dtype="int64"), Field(f"{prefix}seen", (words,), dtype="uint64"))


@jit
def _slot(context: int, order: int, bits: int) -> int:
    h = np.uint64(context * 16 + order) * _MIX
    h ^= h >> np.uint64(29)
    return int(h % np.uint64(bits))


@jit
def context_step(
    lo: NDArray[np.float64], hi: NDArray[np.float64], n: NDArray[np.int64], recent: NDArray[np.int64],
    seen: NDArray[np.uint64], i: int, x: float, levels: int, orders: int, warmup: int, mode: int,
) -> float:
    """Score ``x``'s contexts by the share never seen, then learn them (per ``mode``)."""
    if not math.isfinite(x):
        return 0.0
    k = n[i]
    width = hi[i] - lo[i]
    level = 0
    if k > 0 and width > 0.0:
        level = min(levels - 1, max(0, int((x - lo[i]) / width * levels)))
    # the contexts of orders 1..orders ending at x: its level, then the previous levels before it
    history = recent[i] << 4 | level
    bits = seen.shape[1] * 64
    usable = min(orders, k + 1)
    novel = 0
    for order in range(1, usable + 1):
        context = history & ((1 << (4 * order)) - 1)
        b = _slot(context, order, bits)
        if (seen[i, b >> 6] >> np.uint64(b & 63)) & np.uint64(1) == np.uint64(0):
            novel += 1
    score = novel / usable if k >= warmup else 0.0
    if mode == SCORE:
        return score
    for order in range(1, usable + 1):
        context = history & ((1 << (4 * order)) - 1)
        b = _slot(context, order, bits)
        seen[i, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
    recent[i] = history & ((1 << (4 * (orders - 1))) - 1)
    lo[i] = x if k == 0 else min(lo[i], x)
    hi[i] = x if k == 0 else max(hi[i], x)
    n[i] = k + 1
    return 0.0 if mode == LEARN else score


@jit
def _run(
    series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64], lo: NDArray[np.float64],
    hi: NDArray[np.float64], n: NDArray[np.int64], recent: NDArray[np.int64], seen: NDArray[np.uint64],
    levels: int, orders: int, warmup: int, mode: int,
) -> NDArray[np.float64]:
    grouped = np.empty(values.shape[0], np.float64)
    order, ends, points = by_series(series, times, values, n.shape[0])  # one series' context set at a time
    i = 0
    for p in range(order.shape[0]):
        while p >= ends[i]:
            i += 1
        grouped[p] = context_step(lo, hi, n, recent, seen, i, points[p, 1], levels, orders, warmup, mode)
    return ungroup(order, grouped)


class ContextNovelty(Detector):
    """The share of a reading's level contexts (sequences of coarse levels ending at it) never seen.

    Parameters
    ----------
    levels
        Coarse levels of the range seen so far a reading falls in (8, CAD-OSE's three bits; at most 16).
    orders
        Longest context, in readings (6: CAD-OSE looks back up to 7 values; 15 at most).
    words
        Size of the per-series set of contexts, in 64-bit words (256: 16 384 contexts, 2 kB).
    warmup
        Readings learned before the series is scored.

    Examples
    --------
    >>> detector = ContextNovelty()
    >>> for k in range(600):
    ...     detector.learn_one(float(k % 12))  # a saw tooth
    >>> detector.score_one(0.0)  # after 11, as always
    0.0
    >>> detector.learn_one(5.0)  # 0 was due: 0 to 4 skipped
    >>> round(detector.score_one(6.0), 2)  # 6 and 5, 6 are familiar; 11, 5, 6 and longer are not
    0.67

    References
    ----------
    M. Smirnov, "Contextual Anomaly Detector (CAD OSE)", winner of the NAB competition 2016,
    github.com/smirmik/CAD; A. Lavin and S. Ahmad, "Evaluating real-time anomaly detection
    algorithms -- the Numenta Anomaly Benchmark", IEEE ICMLA 2015.
    """

    def __init__(self, levels: int = LEVELS, orders: int = ORDERS, words: int = WORDS, warmup: int = 30) -> None:
        self.levels = levels
        self.orders = orders
        self.words = words
        self.warmup = warmup

    @property
    def layout(self) -> tuple[Field, ...]:
        return context_fields("", self.words)

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        s = self.state
        out: NDArray[np.float64] = _run(series, times, values, s["lo"], s["hi"], s["n"], s["recent"], s["seen"],
                                        int(self.levels), int(self.orders), int(self.warmup), mode)
        return out
