"""``arrays``: the grouping every large-state kernel walks (``by_series``, ``ungroup``), and the per-point
kernels' unsigned index (``row``) and prefetch, and packed state (one row a series)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from urbanpulse.analytics.arrays import AHEAD, Field, SeriesArrays, by_series, jit, prefetch, row, row_ahead, ungroup
from urbanpulse.analytics.cusum import Cusum


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


PACKABLE = (Field("level"), Field("count", fill=1.0), Field("up", fill=-2.5))


@pytest.mark.parametrize("fields", [1, 3, 7, 8, 9, 17])
def test_packed_state_is_one_aligned_row_a_series_and_each_field_a_column_of_it(fields: int) -> None:
    layout = tuple(Field(f"f{k}", fill=float(k)) for k in range(fields))
    state = SeriesArrays(layout, 5, packed=True)
    assert state.rows is not None
    assert state.rows.flags.c_contiguous
    assert state.rows.ctypes.data % 64 == 0  # each row starts a cache line when it is 8 numbers wide
    width = state.rows.shape[1]
    assert width >= fields
    assert width in (1, 2, 4, 8) or width % 8 == 0
    assert width < max(2 * fields, 8) + 1
    assert state[f"f{fields - 1}"].tolist() == [float(fields - 1)] * 5
    state["f0"][3] = 42.0  # a column view: writes land in the rows
    assert state.rows[3, 0] == 42.0


def test_packed_state_grows_keeping_its_series_and_snapshots_like_separate_arrays() -> None:
    packed, separate = SeriesArrays(PACKABLE, 2, packed=True), SeriesArrays(PACKABLE, 2)
    for state in (packed, separate):
        state["level"][1], state["up"][0] = 7.0, 3.0
        state.grow(4)
    assert packed == separate
    assert packed["count"].tolist() == [1.0] * 4
    assert packed["up"].tolist() == [3.0, -2.5, -2.5, -2.5]
    assert packed.rows is not None
    assert packed.rows[1, 0] == 7.0
    assert packed.to_bytes() == separate.to_bytes()  # the same snapshot either way
    again = SeriesArrays.from_bytes(PACKABLE, separate.to_bytes(), packed=True)
    assert again == separate
    assert again.rows is not None
    assert again.rows[1, 0] == 7.0


def test_only_scalar_float64_fields_can_be_packed() -> None:
    with pytest.raises(ValueError, match="only scalar float64"):
        SeriesArrays((Field("level"), Field("count", dtype="int64")), 1, packed=True)
    with pytest.raises(ValueError, match="only scalar float64"):
        SeriesArrays((Field("ring", (3,)),), 1, packed=True)


def test_a_snapshot_with_integer_counts_restores_into_a_packed_detector() -> None:
    """Counts saved as int64 (as Cusum's were before its state was packed) are cast on restore. (A
    snapshot from before the tenth session lacks ``sigma`` and does not restore: ValueError.)"""
    detector = Cusum()
    for x in [10.0, 11.0, 9.0] * 20:
        detector.learn_one(x)
    arrays = {f.name: detector.state[f.name] for f in detector.layout}
    old = {k: (v.astype(np.int64) if k in ("count", "run_up", "run_down") else v) for k, v in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, **old)  # type: ignore[arg-type]
    again = Cusum()
    again.restore(buf.getvalue())
    assert again.state == detector.state
    assert again.state.rows is not None
    assert again.score_one(30.0) == detector.score_one(30.0) > 0.1
