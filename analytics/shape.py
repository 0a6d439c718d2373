"""Shape novelty: how far the recent stretch of a series is from every stretch it has kept.

The last ``width * step`` readings are summarised as ``width`` segment means (piecewise aggregate
approximation, Keogh et al. 2001). Every ``stride`` readings that vector is kept in a ring of
``bank`` past vectors (float32: the ring is most of the state and of the memory traffic). A
reading is scored by the distance of the current vector to its nearest kept neighbour -- a
streaming version of the distance-based "discord" (Keogh, Lin & Fu 2005; Burnaev & Ishimtsev's
KNN-CAD on NAB) -- relative to the running mean of such distances. The
vectors kept last, which overlap the current stretch, are not compared, so a shape must have
been seen before (not just now) to count as normal.

With ``z = sqrt(d / mean_d)`` the score is ``z² / (z² + scale²)``: 0.5 at ``scale²`` times the
usual squared distance.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, by_series, jit, jit_inline, ungroup, unit_score
from urbanpulse.analytics.base import LEARN, SCORE, Detector

__all__ = ["ShapeNovelty", "shape_fields", "shape_step"]


def shape_fields(prefix: str, width: int, step: int, bank: int) -> tuple[Field, ...]:
    """State: last ``width * step`` readings, kept vectors, their count, readings seen, mean distance.

    The kept vectors are stored segment by segment (``bank[i, segment, slot]``), so the distances to
    all of them are computed side by side, in SIMD lanes.
    """
    return (
        Field(f"{prefix}recent", (width * step,)),
        Field(f"{prefix}bank", (width, bank), dtype="float32"),
        Field(f"{prefix}kept", dtype="int64"),
        Field(f"{prefix}n", dtype="int64"),
        Field(f"{prefix}dist"),
        Field(f"{prefix}dn", dtype="int64"),
    )


@jit
def _stretch(recent: NDArray[np.float64], i: int, k: int, x: float, step: int, vec: NDArray[np.float64]) -> None:
    """Segment means of series ``i``'s last readings and ``x`` (not in the ring yet), oldest first, into ``vec``."""
    size = recent.shape[1]
    width = vec.shape[0]
    pos = (k + 1) % size  # the oldest reading of the stretch
    for s in range(width):
        total = 0.0
        for r in range(step):
            if s == width - 1 and r == step - 1:
                total += x
            else:
                total += recent[i, pos]
                pos = pos + 1 if pos + 1 < size else 0
        vec[s] = total / step


@jit
def _nearest(
    bank: NDArray[np.float32], i: int, vec: NDArray[np.float64], count: int, dist: NDArray[np.float64]
) -> float:
    """The smallest squared distance from ``vec`` to the kept vectors in slots ``0 .. count - 1``.

    ``dist`` is scratch space of the bank's length. Each distance is summed segment after segment,
    in the same order as one vector at a time would, but all slots at once (vectorised).
    """
    width = bank.shape[1]
    for slot in range(count):
        dist[slot] = 0.0
    for s in range(width):
        v = vec[s]
        for slot in range(count):  # indexed, not sliced: a slice a row would cost reference counting
            e = v - bank[i, s, slot]
            dist[slot] += e * e
    best = math.inf
    for slot in range(count):
        best = min(best, dist[slot])
    return best


@jit_inline
def shape_step(
    recent: NDArray[np.float64],
    bank: NDArray[np.float32],
    kept: NDArray[np.int64],
    n: NDArray[np.int64],
    dist: NDArray[np.float64],
    dn: NDArray[np.int64],
    i: int,
    x: float,
    step: int,
    stride: int,
    skip: int,
    memory: int,
    scale: float,
    mode: int,
    vec: NDArray[np.float64],
    dist_scratch: NDArray[np.float64],
) -> float:
    """Score ``x`` as the end of series ``i``'s current stretch, then learn it (per ``mode``).

    ``vec`` (the stretch's width) and ``dist_scratch`` (the bank's length) are scratch space, the
    caller's, so no point allocates.
    """
    if not math.isfinite(x):
        return 0.0
    size = recent.shape[1]
    k = n[i]
    if k + 1 < size:  # not a full stretch yet
        if mode != SCORE:
            recent[i, k % size] = x
            n[i] = k + 1
        return 0.0
    _stretch(recent, i, k, x, step, vec)
    # Slots 0 .. comparable - 1 hold the vectors kept before the ``skip`` newest; once the ring has
    # turned, all of them.
    comparable = min(kept[i] - skip, bank.shape[2])
    best = _nearest(bank, i, vec, comparable, dist_scratch) if comparable > 0 else math.inf
    score = 0.0
    if comparable > 0 and dn[i] > 0:
        score = unit_score(math.sqrt(best / max(dist[i], 1e-300)), scale)
    if mode != SCORE:
        recent[i, k % size] = x
        n[i] = k + 1
        if best < math.inf:
            a = max(1.0 / (dn[i] + 1), 1.0 / memory)
            dist[i] += a * (best - dist[i])
            dn[i] += 1
        if (k + 1 - size) % stride == 0:
            slot = kept[i] % bank.shape[2]
            for seg in range(vec.shape[0]):
                bank[i, seg, slot] = vec[seg]
            kept[i] += 1
    return 0.0 if mode == LEARN else score


@jit
def _run(
    series: NDArray[np.int64],
    times: NDArray[np.float64],
    values: NDArray[np.float64],
    recent: NDArray[np.float64],
    bank: NDArray[np.float32],
    kept: NDArray[np.int64],
    n: NDArray[np.int64],
    dist: NDArray[np.float64],
    dn: NDArray[np.int64],
    step: int,
    stride: int,
    skip: int,
    memory: int,
    scale: float,
    mode: int,
) -> NDArray[np.float64]:
    grouped = np.empty(values.shape[0], np.float64)
    vec = np.empty(bank.shape[1], np.float64)
    scratch = np.empty(bank.shape[2], np.float64)
    order, ends, points = by_series(series, times, values, n.shape[0])  # one series' bank at a time
    i = 0
    for p in range(order.shape[0]):
        while p >= ends[i]:
            i += 1
        grouped[p] = shape_step(
            recent, bank, kept, n, dist, dn, i, points[p, 1], step, stride, skip, memory, scale, mode, vec, scratch
        )
    return ungroup(order, grouped)


class ShapeNovelty(Detector):
    """Distance of the recent stretch of readings to the nearest stretch kept from the past.

    Parameters
    ----------
    width
        Segments of a stretch (the vector's length).
    step
        Readings averaged into one segment: a stretch spans ``width * step`` readings.
    stride
        A stretch is kept every ``stride`` readings: a quarter of the default stretch, so a shape
        seen before is always matched within an eighth of its length.
    bank
        Stretches kept (a ring): the past compared spans about ``bank * stride`` readings, by
        default 512 -- more than a day of 5-minute readings, so yesterday's shapes are known.
    memory
        The mean nearest-neighbour distance is a running mean, then an exponentially weighted one
        with a memory of about this many readings.
    scale
        The score is 0.5 when the distance is ``scale²`` times the usual one.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(3)
    >>> detector = ShapeNovelty()
    >>> wave = [math.sin(2 * math.pi * k / 48) + rng.gauss(0, 0.05) for k in range(2000)]
    >>> for x in wave:
    ...     detector.learn_one(x)
    >>> detector.score_one(math.sin(2 * math.pi * 2000 / 48)) < 0.2  # the wave goes on
    True
    >>> detector.score_one(10.0) > 0.5  # a stretch ending in a jump never seen
    True

    References
    ----------
    E. Keogh, K. Chakrabarti, M. Pazzani and S. Mehrotra, "Dimensionality reduction for fast
    similarity search in large time series databases", Knowledge and Information Systems 3(3),
    2001. E. Keogh, J. Lin and A. Fu, "HOT SAX: efficiently finding the most unusual time series
    subsequence", IEEE ICDM 2005. E. Burnaev and V. Ishimtsev, "Conformalized density- and
    distance-based anomaly detection in time-series data", arXiv:1608.04585, 2016.
    """

    def __init__(
        self, width: int = 8, step: int = 4, stride: int = 8, bank: int = 64, memory: int = 2000, scale: float = 3.0
    ) -> None:
        self.width = width
        self.step = step
        self.stride = stride
        self.bank = bank
        self.memory = memory
        self.scale = scale

    @property
    def layout(self) -> tuple[Field, ...]:
        return shape_fields("", self.width, self.step, self.bank)

    def _run(
        self, series: NDArray[np.int64], times: NDArray[np.float64], values: NDArray[np.float64], mode: int
    ) -> NDArray[np.float64]:
        s = self.state
        skip = -(-self.width * self.step // self.stride)  # kept stretches overlapping the current one
        out: NDArray[np.float64] = _run(
            series,
            times,
            values,
            s["recent"],
            s["bank"],
            s["kept"],
            s["n"],
            s["dist"],
            s["dn"],
            int(self.step),
            int(self.stride),
            skip,
            int(self.memory),
            float(self.scale),
            mode,
        )
        return out
