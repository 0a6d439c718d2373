"""The shape every detector shares: a river-style shell over one ``numba`` kernel for many series.

A detector's kernel takes a stream of points ``(series[j], times[j], values[j])`` -- times in
seconds since the epoch, series as indices into its state arrays -- and a ``mode``:

- ``SCORE_LEARN``: score every point against its series' state *before* learning it, then learn it
  (the production path: one call for every series at once);
- ``SCORE``: score only, the state is not touched (:meth:`Detector.score_one`);
- ``LEARN``: learn only, scores are returned but meaningless (:meth:`Detector.learn_one`).

Scores are in [0, 1], higher is more anomalous; a series scores 0.0 until it has learned enough.
Non-finite values score 0.0 and are not learned.
"""

from __future__ import annotations

import abc
from datetime import UTC, datetime
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, SeriesArrays, index_range

__all__ = ["LEARN", "SCORE", "SCORE_LEARN", "Detector", "seconds"]

SCORE_LEARN, SCORE, LEARN = 0, 1, 2

Floats = NDArray[np.float64]


def seconds(t: float | datetime) -> float:
    """Seconds since the epoch; a naive ``datetime`` is taken as UTC wall-clock time."""
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return float(t)


class Detector(abc.ABC):
    """Base of the detectors: state in :class:`SeriesArrays`, built lazily; parameters are attributes.

    Subclasses define ``layout`` (their state arrays) and ``_run`` (one kernel call); the
    constructor of a subclass only stores its parameters.
    """

    _state: SeriesArrays | None = None
    packed: ClassVar[bool] = False
    """Whether the state is one row a series (:class:`SeriesArrays` ``packed``; scalar float64 fields)."""

    @property
    @abc.abstractmethod
    def layout(self) -> tuple[Field, ...]:
        """The state arrays (they may depend on the parameters)."""

    @property
    def state(self) -> SeriesArrays:
        if self._state is None:
            self._state = SeriesArrays(self.layout, 1, packed=self.packed)
        return self._state

    @abc.abstractmethod
    def _run(self, series: NDArray[np.int64], times: Floats, values: Floats, mode: int) -> Floats:
        """One kernel call over ``self.state`` (already big enough)."""

    def score_learn(
        self, series: NDArray[np.int64], times: Floats, values: Floats, mode: int = SCORE_LEARN
    ) -> Floats:
        """Score (and learn) a stream of points of many series at once; see the module docstring."""
        series = np.ascontiguousarray(series, np.int64)
        if series.shape[0]:
            lo, hi = index_range(series)
            if lo < 0:
                msg = "series indices must be >= 0"
                raise ValueError(msg)
            self.state.grow(hi + 1)
        return self._run(series, np.ascontiguousarray(times, np.float64),
                         np.ascontiguousarray(values, np.float64), mode)

    def _one(self, x: float, t: float | datetime, mode: int) -> float:
        out = self.score_learn(np.zeros(1, np.int64), np.array([seconds(t)]), np.array([float(x)]), mode)
        return float(out[0])

    def learn_one(self, x: float, t: float | datetime = 0.0) -> None:
        """Learn reading ``x`` at time ``t`` (series 0)."""
        self._one(x, t, LEARN)

    def score_one(self, x: float, t: float | datetime = 0.0) -> float:
        """Score reading ``x`` at time ``t`` against what series 0 has learned, without learning it."""
        return self._one(x, t, SCORE)

    def snapshot(self) -> bytes:
        """The state as ``numpy.savez`` bytes."""
        return self.state.to_bytes()

    def restore(self, data: bytes) -> None:
        """Continue from a :meth:`snapshot` (of a detector with the same parameters)."""
        self._state = SeriesArrays.from_bytes(self.layout, data, packed=self.packed)
