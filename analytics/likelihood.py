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
A run ends only once the tail is back above that yellow line (``1e-3``), not as soon as it leaves
the red zone: a window mean that wavers about the red line for a few readings is one run, one alarm
(hysteresis, the deadband of alarm management, ANSI/ISA-18.2; Numenta's rule holds back only
readings right after a red one).

:func:`likelihood_score` is a ``numba`` function over a detector's state arrays (fields
:func:`likelihood_fields`), called by the kernels of the detectors that use it, point by point. It
takes all the views of a series at once: their counts, window positions and learning rates are one,
their window sums run side by side, and their score is the largest of theirs, found with one
``erfc`` and one ``log`` for all. :func:`lone_score` judges one raw score alone (a window of one
reading), for a detector that wants a lone surprise to show (the ensemble, as a warning).

References
----------
S. Ahmad, A. Lavin, S. Purdy and Z. Agha, "Unsupervised real-time anomaly detection for streaming
data", Neurocomputing 262, 134-147, 2017, doi:10.1016/j.neucom.2017.04.070.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, SeriesArrays, jit, jit_inline
from urbanpulse.analytics.base import SCORE, SCORE_LEARN, Detector

__all__ = ["Likelihood", "likelihood_fields", "likelihood_score", "log_score", "lone_score"]

MEAN_FLOOR = 0.03  # the mean and variance of averaged raw scores never count as less than these
VAR_FLOOR = 0.0003
RED_TAIL = 1e-5
YELLOW_TAIL = 1e-3
_LOG_EPS = math.log(1e-10)
_RED_Z = 4.0  # the tail of |z| < 4 is above 3e-5, never in the red zone
_YELLOW_Z = 3.090232306167813  # the tail of |z| = 3.09 is YELLOW_TAIL: a red run goes on while |z| is above


def likelihood_fields(prefix: str, window: int, views: int = 1) -> tuple[Field, ...]:
    """State of ``views`` likelihoods per series: last ``window`` raw scores, count, mean, var, red zone.

    The ring is ``(series, window, views)``, so each reading's raw scores of all views lie together.
    """
    return (
        Field(f"{prefix}ring", (window, views)),
        Field(f"{prefix}n", dtype="int64"),
        Field(f"{prefix}mean", (views,)),
        Field(f"{prefix}var", (views,)),
        Field(f"{prefix}red", (views,), dtype="int8"),
    )


@jit
def log_score(tail: float) -> float:
    """``log(tail + 1e-10) / log(1e-10)``, clipped to [0, 1]."""
    return min(1.0, max(0.0, math.log(tail + 1e-10) / _LOG_EPS))


@jit_inline
def learning_rate(k: int, learning: int, history: int) -> float:
    """The weight of the ``k``-th raw score in the running mean and variance: 0 while learning, then
    ``1 / n`` for the ``n``-th one after (a plain mean), ``1 / history`` from ``n = history`` on. The
    same value as ``max(1 / n, 1 / history)``, but once a series is ``history`` old the division is
    the loop's invariant ``1 / history``, not one a reading."""
    if k < learning:
        return 0.0
    n = k - learning + 1
    return 1.0 / history if n >= history else 1.0 / n


@jit_inline
def moments_step(mean: float, var: float, x: float, rate: float) -> tuple[float, float]:
    """A running mean and variance once they learned ``x`` with weight ``rate`` (exponentially
    weighted; with ``rate = 1 / n`` for the ``n``-th value, the plain mean and variance)."""
    d = x - mean
    return mean + rate * d, (1.0 - rate) * (var + rate * d * d)


@jit
def _tail(z: float) -> float:
    """``P(Z >= z)`` of a standard normal, for ``z >= 0``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@jit_inline
def likelihood_score(
    ring: NDArray[np.float64],
    n: NDArray[np.int64],
    mean: NDArray[np.float64],
    var: NDArray[np.float64],
    red: NDArray[np.int8],
    i: int,
    raw: NDArray[np.float64],
    learning: int,
    estimation: int,
    history: int,
    learn: bool,
    hidden: int = -1,
) -> float:
    """The largest likelihood score of raw scores ``raw[v]`` of series ``i``'s views; learns them if ``learn``.

    ``ring[i]`` holds the views' last raw scores (its length is the averaging window), ``n[i]``
    counts the raw scores seen, ``mean[i, v]``/``var[i, v]`` describe view ``v``'s window means
    seen after the first ``learning`` raw scores, ``red[i, v]`` says it is in a run in the red
    zone (entered red, not yet back in the yellow zone). Scores are 0.0 until
    ``learning + estimation`` raw scores were seen. A view's score is
    :func:`log_score` of its tail, or of the yellow tail when the red-zone rule holds it back; the
    largest is that of the smallest tail shown, so one ``erfc`` and one ``log`` serve all views.
    View ``hidden`` (if any) learns as the others but is not shown.
    """
    w, views = ring.shape[1], ring.shape[2]
    k = n[i]
    slot = k % w  # the oldest raw scores, whose place ``raw`` takes; unused slots hold 0.0
    count = min(k + 1, w)
    scored = k >= learning + estimation
    rate = learning_rate(k, learning, history)
    top, held = 0.0, False  # the largest |z| shown, and whether a view was held back
    for v in range(views):
        total = raw[v] - ring[i, slot, v]
        for back in range(w):
            total += ring[i, back, v]
        avg = total / count
        in_red = run_on = False
        if scored:
            absz = abs((avg - max(mean[i, v], MEAN_FLOOR)) / math.sqrt(max(var[i, v], VAR_FLOOR)))
            in_red = absz >= _RED_Z and _tail(absz) <= RED_TAIL  # the erfc only where it can be red
            run_on = red[i, v] != 0 and absz >= _YELLOW_Z  # a red run not yet back in the yellow zone
            if v == hidden:
                pass
            elif in_red and red[i, v] != 0:
                held = True
            else:
                top = max(top, absz)
        if learn:
            ring[i, slot, v] = raw[v]
            if k >= learning:
                mean[i, v], var[i, v] = moments_step(mean[i, v], var[i, v], avg, rate)
            red[i, v] = 1 if in_red or run_on else 0
    if learn:
        n[i] = k + 1
    if not scored:
        return 0.0
    tail = _tail(top)
    return log_score(min(tail, YELLOW_TAIL) if held else tail)


@jit_inline
def lone_score(
    mean: NDArray[np.float64], var: NDArray[np.float64], i: int, raw: float, k: int, learning: int, estimation: int,
    history: int, learn: bool, cap: float,
) -> float:
    """The likelihood of one raw score of series ``i`` alone (a window of one reading), as its ``k``-th
    (``mean[i]``/``var[i]``: the distribution of its raw scores after the first ``learning``, as in
    :func:`likelihood_score`); learns it if ``learn``.

    One-sided, as a lone raw score lower than usual is no news, and shown only from the yellow line
    (0.3) up to :func:`log_score` of the tail ``cap``: the ``erfc``, the ``log`` and the square root
    run only for the rare readings at or above the yellow line."""
    score = 0.0
    if k >= learning + estimation:
        d = raw - max(mean[i], MEAN_FLOOR)
        v = max(var[i], VAR_FLOOR)
        if d > 0.0 and d * d >= _YELLOW_Z * _YELLOW_Z * v:
            score = log_score(max(_tail(d / math.sqrt(v)), cap))
    if learn and k >= learning:
        mean[i], var[i] = moments_step(mean[i], var[i], raw, learning_rate(k, learning, history))
    return score


@jit
def _run(
    values: NDArray[np.float64],
    raw: NDArray[np.float64],
    series: NDArray[np.int64],
    ring: NDArray[np.float64],
    n: NDArray[np.int64],
    mean: NDArray[np.float64],
    var: NDArray[np.float64],
    red: NDArray[np.int8],
    learning: int,
    estimation: int,
    history: int,
    learn: bool,
) -> NDArray[np.float64]:
    out = np.empty(raw.shape[0], np.float64)
    one = np.empty(1, np.float64)
    for j in range(raw.shape[0]):
        if not math.isfinite(values[j]):  # not scored, not learned
            out[j] = 0.0
            continue
        one[0] = raw[j]
        out[j] = likelihood_score(ring, n, mean, var, red, series[j], one, learning, estimation, history, learn)
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

    def __init__(
        self, detector: Detector, learning: int = 150, estimation: int = 100, history: int = 8640, window: int = 10
    ) -> None:
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
        raw = self.detector
        inner = SeriesArrays.from_arrays(raw.layout, {f.name: both[f"raw.{f.name}"] for f in raw.layout},
                                         packed=raw.packed)
        own = SeriesArrays.from_arrays(self.layout, {f.name: both[f.name] for f in self.layout}, packed=self.packed)
        self.detector._state, self._state = inner, own

    def _run(
        self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64], mode: int
    ) -> NDArray[np.float64]:
        raw = self.detector.score_learn(series, times, values, SCORE if mode == SCORE else SCORE_LEARN)
        s = self.state
        out: NDArray[np.float64] = _run(
            values,
            raw,
            series,
            s["ring"],
            s["n"],
            s["mean"],
            s["var"],
            s["red"],
            int(self.learning),
            int(self.estimation),
            int(self.history),
            mode != SCORE,
        )
        return out
