"""Anomaly likelihood: raw anomaly scores of any detector turned into calibrated, comparable scores.

Numenta's post-processing (Ahmad, Lavin, Purdy & Agha 2017), with bounded state: the mean of the
last ``window`` raw scores is compared with the distribution of such means in the series' past.
That distribution is a Gaussian whose mean and variance are running (then exponentially weighted,
memory ``history`` points) estimates over the means seen after the first ``learning`` points, so
a detector that is often wrong about a series (raw scores high all the time) stops alarming, while
one that is usually right alarms on the first unusual run of surprises. With
``tail = P(|Z| >= |z|) / 2`` (a lower-than-usual mean is an anomaly too, as in Numenta's code), the
score is ``log(tail + 1e-10) / log(1e-10)``: 0.5 at ``tail = 1e-5``, 1.0 at ``tail = 0``.

Only the first point of a run in the "red zone" (``tail <= 1e-5``) keeps its score; the following
ones get the score of ``tail = 1e-3`` (0.3), so a lasting anomaly raises one alarm, not hundreds.

These are ``numba`` functions over a detector's state arrays (fields :data:`LAYOUT_FIELDS` with a
prefix), called by the kernels of the detectors that use them, point by point.

References
----------
S. Ahmad, A. Lavin, S. Purdy and Z. Agha, "Unsupervised real-time anomaly detection for streaming
data", Neurocomputing 262, 134-147, 2017, doi:10.1016/j.neucom.2017.04.070.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, SeriesArrays, jit
from urbanpulse.analytics.base import SCORE, SCORE_LEARN, Detector

__all__ = ["Likelihood", "likelihood_fields", "likelihood_score", "log_score"]

MEAN_FLOOR = 0.03  # the mean and variance of averaged raw scores never count as less than these
VAR_FLOOR = 0.0003
RED_TAIL = 1e-5
YELLOW_TAIL = 1e-3
_LOG_EPS = math.log(1e-10)


def likelihood_fields(prefix: str, window: int, views: int = 1) -> tuple[Field, ...]:
    """State of ``views`` likelihoods per series: last ``window`` raw scores, count, mean, var, last tail.

    Arrays are ``(series, views, ...)``; :func:`likelihood_score` takes the series and the view.
    """
    return (
        Field(f"{prefix}ring", (views, window)), Field(f"{prefix}n", (views,), dtype="int64"),
        Field(f"{prefix}mean", (views,)), Field(f"{prefix}var", (views,)), Field(f"{prefix}tail", (views,), fill=1.0),
    )


@jit
def log_score(tail: float) -> float:
    """``log(tail + 1e-10) / log(1e-10)``, clipped to [0, 1]."""
    return min(1.0, max(0.0, math.log(tail + 1e-10) / _LOG_EPS))


@jit
def likelihood_score(
    ring: NDArray[np.float64], n: NDArray[np.int64], mean: NDArray[np.float64], var: NDArray[np.float64],
    last_tail: NDArray[np.float64], i: int, v: int, raw: float, learning: int, estimation: int, history: int,
    learn: bool,
) -> float:
    """Score raw score ``raw`` of view ``v`` of series ``i``, and learn it if ``learn``; 0.0 until warmed up.

    ``ring[i, v]`` holds the last raw scores (its length is the averaging window), ``n[i, v]``
    counts the raw scores seen, ``mean[i, v]``/``var[i, v]`` describe the window means seen after
    the first ``learning`` raw scores, ``last_tail[i, v]`` is the previous tail probability (for the
    red-zone filter). The score needs ``learning + estimation`` raw scores first.
    """
    w = ring.shape[2]
    k = n[i, v]
    slot = k % w  # the oldest raw score, whose place ``raw`` takes; unused slots hold 0.0
    total = raw - ring[i, v, slot]
    for back in range(w):
        total += ring[i, v, back]
    avg = total / min(k + 1, w)
    score = 0.0
    tail = 1.0
    if k >= learning + estimation:
        sd = math.sqrt(max(var[i, v], VAR_FLOOR))
        z = (avg - max(mean[i, v], MEAN_FLOOR)) / sd
        tail = 0.5 * math.erfc(abs(z) / math.sqrt(2.0))
        shown = YELLOW_TAIL if (tail <= RED_TAIL and last_tail[i, v] <= RED_TAIL) else tail
        score = log_score(shown)
    if learn:
        ring[i, v, slot] = raw
        if k >= learning:
            a = max(1.0 / (k - learning + 1), 1.0 / history)
            d = avg - mean[i, v]
            mean[i, v] += a * d
            var[i, v] = (1.0 - a) * (var[i, v] + a * d * d)
        last_tail[i, v] = tail
        n[i, v] = k + 1
    return score


@jit
def _run(
    series: NDArray[np.int64], values: NDArray[np.float64], raw: NDArray[np.float64], ring: NDArray[np.float64],
    n: NDArray[np.int64], mean: NDArray[np.float64], var: NDArray[np.float64], last_tail: NDArray[np.float64],
    learning: int,
    estimation: int, history: int, learn: bool,
) -> NDArray[np.float64]:
    out = np.empty(raw.shape[0], np.float64)
    for j in range(raw.shape[0]):
        if not math.isfinite(values[j]):  # not scored, not learned
            out[j] = 0.0
            continue
        out[j] = likelihood_score(ring, n, mean, var, last_tail, series[j], 0, raw[j], learning, estimation, history,
                                  learn)
    return out


class Likelihood(Detector):
    """Another detector's raw scores, post-processed into anomaly likelihoods.

    Parameters
    ----------
    detector
        The raw detector (its state is part of this one's snapshot).
    learning, estimation, history, window
        As for :class:`~urbanpulse.analytics.ensemble.LikelihoodEnsemble`.

    Examples
    --------
    >>> import random
    >>> from urbanpulse.analytics.registry import EwmaZScore
    >>> rng = random.Random(4)
    >>> detector = Likelihood(EwmaZScore())
    >>> scores = []
    >>> for k in range(1500):
    ...     x = rng.gauss(0.0, 1.0) + (6.0 if k >= 1200 else 0.0)  # a jump of 6 sigmas at 1200
    ...     scores.append(detector.score_one(x))
    ...     detector.learn_one(x)
    >>> max(scores[:1200]) < 0.5 < max(scores[1200:1210])
    True
    """

    def __init__(self, detector: Detector, learning: int = 150, estimation: int = 100, history: int = 8640,
                 window: int = 10) -> None:
        self.detector = detector
        self.learning = learning
        self.estimation = estimation
        self.history = history
        self.window = window

    @property
    def layout(self) -> tuple[Field, ...]:
        return likelihood_fields("", self.window)

    def _both(self) -> tuple[Field, ...]:
        inner = tuple(Field(f"raw.{f.name}", f.shape, f.dtype, f.fill) for f in self.detector.layout)
        return inner + self.layout

    def snapshot(self) -> bytes:
        """Both states, the raw detector's fields prefixed ``raw.``."""
        both = SeriesArrays(self._both())
        both.arrays = {**{f"raw.{k}": v for k, v in self.detector.state.arrays.items()}, **self.state.arrays}
        return both.to_bytes()

    def restore(self, data: bytes) -> None:
        both = SeriesArrays.from_bytes(self._both(), data)
        inner, own = SeriesArrays(self.detector.layout), SeriesArrays(self.layout)
        inner.arrays = {f.name: both[f"raw.{f.name}"] for f in self.detector.layout}
        own.arrays = {f.name: both[f.name] for f in self.layout}
        self.detector._state, self._state = inner, own

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        raw = self.detector.score_learn(series, times, values, SCORE if mode == SCORE else SCORE_LEARN)
        s = self.state
        out: NDArray[np.float64] = _run(series, values, raw, s["ring"], s["n"], s["mean"], s["var"], s["tail"],
                                        int(self.learning), int(self.estimation), int(self.history), mode != SCORE)
        return out
