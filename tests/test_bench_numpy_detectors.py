"""bench/numpy_detectors.py, the numpy baseline of bench/detectors.py, computes what the numba kernels do.

Over a stream with the cases the kernels branch on: new series, warm-up, NaN and infinities, level
shifts (CUSUM's re-baselining) and runs of repeats (the flat-line detector's suspect runs).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from urbanpulse.analytics.registry import create


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "numpy_detectors.py"
    spec = importlib.util.spec_from_file_location("numpy_detectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["numpy_detectors"] = module
    spec.loader.exec_module(module)
    return module


NUMPY = _load().NUMPY


def stream(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    series = rng.integers(0, 40, 8_000).astype(np.int64)
    k = np.arange(series.shape[0])
    values = 20.0 + rng.normal(0.0, 1.0, series.shape[0]) + np.where(series % 4 == 0, 0.0, (k > 4_000) * 8.0)
    values[series % 5 == 1] = np.round(values[series % 5 == 1])  # coarse steps: repeats
    stuck = (series % 7 == 2) & (k > 6_000)
    values[stuck] = 21.0  # stuck sensors
    values[rng.random(series.shape[0]) < 0.01] = np.nan
    values[rng.random(series.shape[0]) < 0.002] = np.inf
    times = 1.7e9 + k * 600.0  # 55 days: the seasonal profile's week slots fill up too
    times[rng.random(series.shape[0]) < 0.002] = np.nan
    return series, times, values


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_numpy_version_equals_the_kernel(name: str) -> None:
    series, times, values = stream(seed=len(name))
    detector = create(name)
    detector.state.grow(40)
    state = {f.name: detector.state[f.name].copy() for f in detector.layout}
    got = NUMPY[name](state, series, times, values, detector)
    expected = detector.score_learn(series, times, values)
    assert (expected > 0.5).any()  # the stream does make it score
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    for f in detector.layout:
        np.testing.assert_allclose(state[f.name], detector.state[f.name], rtol=1e-9)
    if name == "seasonal":
        assert (detector.state["count"][:, :168] >= detector.min_count).any()  # week slots were used
