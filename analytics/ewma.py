"""Robust EWMA z-score: a streaming anomaly detector for many series at once.

The hot path is :func:`score_learn`, a ``numba`` kernel that scores a stream of ``(series, value)``
points against each series' baseline and then learns them. :class:`RobustEwmaZScore` is the
one-series, river-style shell over the same compiled code, so both give identical numbers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, jit, jit_inline, prefetch, row, row_ahead, unit_score

__all__ = [
    "MAD_TO_SIGMA",
    "SLOW_ALPHA",
    "SLOW_CLIP",
    "EwmaState",
    "RobustEwmaZScore",
    "ewma_fields",
    "ewma_step",
    "score_learn",
    "sigma_of",
]

# E|X - mu| = sigma * sqrt(2 / pi) for a normal X: the mean absolute deviation times this is sigma.
MAD_TO_SIGMA = math.sqrt(math.pi / 2)
# The slow view (the streaming service's second baseline; the ensemble's step view takes its
# parameters): a memory of about 100 readings and a tighter Huber clip, so a shift that builds up
# over an hour (a haze easing in) is not absorbed before it is seen.
SLOW_ALPHA = 0.01
SLOW_CLIP = 2.0
# The spread never counts as less than this share of the level, so a constant series has a finite z.
_REL_FLOOR = 1e-9


def ewma_fields(prefix: str = "") -> tuple[Field, Field, Field]:
    """A baseline's state as detector fields: level, spread, readings learned."""
    return Field(f"{prefix}mean"), Field(f"{prefix}spread"), Field(f"{prefix}count", dtype="int64")


@jit_inline
def sigma_of(level: float, spread: float, floor: float) -> float:
    """The sigma of a baseline (level, mean absolute deviation): the spread's, floored at ``floor`` and at a
    relative 1e-9 of the level. The EWMA, seasonal and CUSUM detectors standardise by it."""
    return max(spread * MAD_TO_SIGMA, floor, _REL_FLOOR * (1.0 + abs(level)))


@jit_inline
def ewma_step(
    mean: float, spread: float, n: int, floor: float, x: float, alpha: float, warmup: int, clip: float,
    scale: float,
) -> tuple[float, float, float, int]:
    """Score of ``x`` against one series' ``(mean, spread, n)``, and that state once it learned ``x``.

    The score is 0.0 while warming up or for a non-finite ``x`` (which is not learned); once warmed
    up, the deviation is learned Huber-clipped. One pass over locals: the kernels load a series'
    state once and store it once (twice as fast as reading and writing the arrays at each use).
    """
    if not math.isfinite(x):
        return 0.0, mean, spread, n
    d = x - mean
    score = 0.0
    if n >= warmup and n > 0:  # the common case first
        sigma = sigma_of(mean, spread, floor)
        score = unit_score(d, scale * sigma)  # z² / (z² + scale²) with z = d / sigma, in one division
        limit = clip * sigma
        d = min(max(d, -limit), limit)
    elif n == 0:
        return 0.0, x, 0.0, 1
    # A running mean while young (1/(n+1) > alpha), so the baseline does not start from the first reading;
    # no division once n * alpha >= 1 (then 1/(n+1) < alpha: the same value).
    a = alpha if n * alpha >= 1.0 else max(alpha, 1.0 / (n + 1))
    return score, mean + a * d, spread + a * (abs(d) - spread), n + 1


@jit
def score_learn(
    series: NDArray[np.int64], values: NDArray[np.float64], min_sigma: NDArray[np.float64],
    mean: NDArray[np.float64], spread: NDArray[np.float64], count: NDArray[np.int64], alpha: float,
    warmup: int, clip: float, scale: float,
) -> NDArray[np.float64]:
    """Score every point against its series' state *before* learning it, then learn it.

    ``series[j]`` indexes ``min_sigma`` (configuration) and the state arrays ``mean``, ``spread``
    and ``count``, which are updated in place. Points are taken in order, so a series' later points
    are scored against a baseline that has learned its earlier ones.
    """
    out = np.empty(values.shape[0], dtype=np.float64)
    for j in range(values.shape[0]):
        prefetch((mean, spread, count, min_sigma), row_ahead(series, j))
        i = row(series, j)
        out[j], mean[i], spread[i], count[i] = ewma_step(
            mean[i], spread[i], count[i], min_sigma[i], values[j], alpha, warmup, clip, scale
        )
    return out


@dataclass(slots=True)
class EwmaState:
    """The baselines of ``len(self)`` series: level, spread (EWMA of |deviation|), readings learned.

    Three numbers per series, whatever the length of the stream: memory grows only with new series.
    """

    mean: NDArray[np.float64]
    spread: NDArray[np.float64]
    count: NDArray[np.int64]

    @classmethod
    def empty(cls, size: int = 0) -> EwmaState:
        return cls(np.zeros(size, np.float64), np.zeros(size, np.float64), np.zeros(size, np.int64))

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def grow(self, size: int) -> None:
        """Make room for series ``0 .. size - 1``; new series start empty."""
        extra = size - len(self)
        if extra > 0:
            self.mean = np.concatenate([self.mean, np.zeros(extra, np.float64)])
            self.spread = np.concatenate([self.spread, np.zeros(extra, np.float64)])
            self.count = np.concatenate([self.count, np.zeros(extra, np.int64)])

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> EwmaState:
        """From a mapping (or ``.npz`` file) holding ``mean``, ``spread`` and ``count``."""
        return cls(
            np.array(arrays["mean"], dtype=np.float64),
            np.array(arrays["spread"], dtype=np.float64),
            np.array(arrays["count"], dtype=np.int64),
        )

    def to_bytes(self) -> bytes:
        """A snapshot: ``numpy.savez`` of the three arrays (no pickle)."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, spread=self.spread, count=self.count)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EwmaState:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls.from_arrays(arrays)


class RobustEwmaZScore:
    """Robust EWMA z-score of one series.

    The baseline is an exponentially weighted moving average of the level (Hunter 1986) and of the
    absolute deviation from it ("spread"), a robust scale estimate: ``sigma = spread * sqrt(pi/2)``
    for normal noise, but never below ``min_sigma``. Once warmed up, a reading's deviation is
    clipped to ``clip`` sigmas before it is learned -- Huber's psi function (Huber 1964) -- so a
    spike barely moves the baseline, while a lasting level shift is absorbed: the clipped updates
    grow the spread by up to ``1 + alpha * (clip * sqrt(pi/2) - 1)`` per reading until it fits.

    A reading is scored against the baseline before it is learned: with ``z = |x - mean| / sigma``,
    ``score = z² / (z² + scale²)``, in [0, 1): 0.5 at ``z = scale``, 0.8 at ``z = 2 * scale`` and
    0.4 at ``z ≈ 0.82 * scale``.

    Parameters
    ----------
    alpha
        Smoothing factor of the baseline, 0 < alpha <= 1; the baseline's memory is about
        ``1 / alpha`` readings. While fewer than ``1 / alpha`` readings were learned, the plain
        running mean is used instead.
    warmup
        Readings the series must have learned before it is scored; until then every score is 0.0.
    clip
        Deviations beyond ``clip`` sigmas are learned as ``clip`` sigmas (after the warmup).
    scale
        The z at which the score is 0.5.
    min_sigma
        Sigma never counts as less than this, in the series' unit: its resolution. Without it a
        series that sat at one value (a gas reading at 0 all night) alarms on any change at all.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = RobustEwmaZScore(alpha=0.05, warmup=30)
    >>> detector.score_one(20.0)  # nothing learned yet
    0.0
    >>> for _ in range(300):
    ...     detector.learn_one(20.0 + rng.gauss(0.0, 1.0))
    >>> round(detector.score_one(21.0), 2)  # one sigma off: normal
    0.1
    >>> round(detector.score_one(160.0), 4)  # an 8x spike
    0.9996
    >>> detector.learn_one(160.0)  # learned as a 3-sigma deviation: the level moves 0.15, not 7
    >>> round(float(detector.state.mean[0]), 2)
    20.15

    References
    ----------
    J. S. Hunter, "The exponentially weighted moving average", Journal of Quality Technology 18(4),
    203-210, 1986. P. J. Huber, "Robust estimation of a location parameter", The Annals of
    Mathematical Statistics 35(1), 73-101, 1964.
    """

    def __init__(
        self, alpha: float = 0.05, warmup: int = 30, clip: float = 3.0, scale: float = 3.0, min_sigma: float = 0.0
    ) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.clip = clip
        self.scale = scale
        self.min_sigma = min_sigma
        self._state: EwmaState | None = None

    @property
    def state(self) -> EwmaState:
        if self._state is None:
            self._state = EwmaState.empty(1)
        return self._state

    def _advance(self, x: float) -> tuple[float, float, float, int]:
        s = self.state
        return ewma_step(float(s.mean[0]), float(s.spread[0]), int(s.count[0]), float(self.min_sigma), float(x),
                     float(self.alpha), int(self.warmup), float(self.clip), float(self.scale))

    def learn_one(self, x: float) -> None:
        s = self.state
        _, s.mean[0], s.spread[0], s.count[0] = self._advance(x)

    def score_one(self, x: float) -> float:
        return self._advance(x)[0]
