"""``arrays``: the grouping every large-state kernel walks (``by_series``, ``ungroup``), and the per-point
kernels' unsigned index (``row``) and prefetch."""

from __future__ import annotations

import numpy as np
import pytest

from urbanpulse.analytics.arrays import AHEAD, by_series, jit, prefetch, row, row_ahead, ungroup


@pytest.mark.parametrize(("points", "size"), [(0, 0), (0, 5), (1, 1), (7, 3), (1000, 1), (5000, 700), (3000, 10_000)])
def test_by_series_is_a_stable_sort_by_series(points: int, size: int) -> None:
    rng = np.random.default_rng(points + size)
    series = rng.integers(0, max(size, 1), points).astype(np.int64)
    times, values = rng.normal(size=points), rng.normal(size=points)
    order, ends, grouped = by_series(series, times, values, size)
    expected = np.argsort(series, kind="stable")
    assert order.tolist() == expected.tolist()
    assert grouped[:, 0].tolist() == times[expected].tolist()
    assert grouped[:, 1].tolist() == values[expected].tolist()
    assert ends.tolist() == np.cumsum(np.bincount(series, minlength=size)).tolist()


def test_walking_the_groups_finds_each_points_series_and_ungroup_restores_the_order() -> None:
    rng = np.random.default_rng(7)
    series = rng.choice(np.array([0, 3, 4, 9]), 500).astype(np.int64)  # series 1, 2, 5-8 have no points
    order, ends, grouped = by_series(series, np.zeros(500), np.arange(500.0), 10)
    found = np.empty(500, np.int64)
    i = 0
    for p in range(order.shape[0]):  # the walk the kernels do
        while p >= ends[i]:
            i += 1
        found[p] = i
    assert found.tolist() == series[order].tolist()
    assert ungroup(order, grouped[:, 1]).tolist() == np.arange(500.0).tolist()
    assert ungroup(order, found.astype(np.float64)).tolist() == series.astype(np.float64).tolist()


@jit
def _gather(series: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The per-point kernels' loop shape: prefetch AHEAD points on, read at the unsigned index."""
    out = np.empty(series.shape[0])
    for j in range(series.shape[0]):
        prefetch((floats, ints), row_ahead(series, j))
        i = row(series, j)
        out[j] = floats[i] + ints[i]
    return out


@pytest.mark.parametrize("points", [0, 1, AHEAD, AHEAD + 1, 5000])
def test_prefetch_and_the_unsigned_index_read_what_plain_indexing_reads(points: int) -> None:
    rng = np.random.default_rng(points)
    series = rng.integers(0, 300, points).astype(np.int64)
    floats, ints = rng.normal(size=300), rng.integers(-9, 9, 300).astype(np.int64)
    assert _gather(series, floats, ints).tolist() == (floats[series] + ints[series]).tolist()
