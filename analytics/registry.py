"""Every reading-scoring detector by name, each a :class:`~urbanpulse.analytics.base.Detector`.

Names contain no ``_`` or ``.`` (NAB's results layout needs that). Adding a detector adds a row.

>>> sorted(DETECTORS)  # doctest: +NORMALIZE_WHITESPACE
['context', 'cusum', 'cusum-lh', 'ensemble', 'ewma', 'ewma-lh', 'flatline', 'flatline-lh', 'seasonal',
 'seasonal-lh', 'shape', 'shape-lh']
>>> DETECTORS["ewma"]().score_one(1.0)  # nothing learned yet
0.0
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, jit, prefetch, row, row_ahead
from urbanpulse.analytics.base import LEARN, SCORE, Detector
from urbanpulse.analytics.context import ContextNovelty
from urbanpulse.analytics.cusum import Cusum
from urbanpulse.analytics.ensemble import LikelihoodEnsemble
from urbanpulse.analytics.ewma import ewma_fields, ewma_step
from urbanpulse.analytics.flatline import FlatLine
from urbanpulse.analytics.likelihood import Likelihood
from urbanpulse.analytics.seasonal import SeasonalProfile
from urbanpulse.analytics.shape import ShapeNovelty

__all__ = ["BEST", "DETECTORS", "RAW", "EwmaZScore", "create"]


@jit
def _ewma_run(
    series: NDArray[np.int64], values: NDArray[np.float64], min_sigma: float, mean: NDArray[np.float64],
    spread: NDArray[np.float64], count: NDArray[np.int64], alpha: float, warmup: int, clip: float, scale: float,
    mode: int,
) -> NDArray[np.float64]:
    out = np.empty(values.shape[0], np.float64)
    for j in range(values.shape[0]):
        prefetch((mean, spread, count), row_ahead(series, j))
        i = row(series, j)
        score, m, s, n = ewma_step(mean[i], spread[i], count[i], min_sigma, values[j], alpha, warmup, clip, scale)
        out[j] = 0.0 if mode == LEARN else score
        if mode != SCORE:
            mean[i], spread[i], count[i] = m, s, n
    return out


class EwmaZScore(Detector):
    """The streaming service's robust EWMA z-score (:class:`~urbanpulse.analytics.ewma.RobustEwmaZScore`),
    same parameters and compiled code, in the shape every detector here shares.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = EwmaZScore()
    >>> for _ in range(300):
    ...     detector.learn_one(20.0 + rng.gauss(0.0, 1.0))
    >>> round(detector.score_one(160.0), 4)
    0.9996
    """

    def __init__(self, alpha: float = 0.05, warmup: int = 30, clip: float = 3.0, scale: float = 3.0,
                 min_sigma: float = 0.0) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.clip = clip
        self.scale = scale
        self.min_sigma = min_sigma

    @property
    def layout(self) -> tuple[Field, ...]:
        return ewma_fields()

    def _run(self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64],
             mode: int) -> NDArray[np.float64]:
        s = self.state
        out: NDArray[np.float64] = _ewma_run(series, values, float(self.min_sigma), s["mean"], s["spread"],
                                             s["count"], float(self.alpha), int(self.warmup), float(self.clip),
                                             float(self.scale), mode)
        return out


RAW: dict[str, Callable[[], Detector]] = {
    "ewma": EwmaZScore,
    "seasonal": SeasonalProfile,
    "cusum": Cusum,
    "flatline": FlatLine,
    "shape": ShapeNovelty,
}


def _calibrated(make: Callable[[], Detector]) -> Callable[[], Detector]:
    def factory() -> Detector:
        return Likelihood(make())

    return factory


DETECTORS: dict[str, Callable[[], Detector]] = {
    **RAW,
    # Each raw detector calibrated by the anomaly likelihood, as the ensemble calibrates its views.
    **{f"{name}-lh": _calibrated(make) for name, make in RAW.items()},
    # Already a share in [0, 1] per series; through the likelihood it ranks worse than without (see README).
    "context": ContextNovelty,
    "ensemble": LikelihoodEnsemble,
}
BEST = "ensemble"  # the default of the CLI and the NAB bench


def create(name: str) -> Detector:
    """A new detector of that name, with its default parameters; ``KeyError`` lists the names."""
    try:
        return DETECTORS[name]()
    except KeyError:
        msg = f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}"
        raise KeyError(msg) from None
