"""One suite for every registered detector: state round trips, bounded memory, kernel == per-point
path (compiled and in plain Python), scoring before learning, and detection on labelled data."""

from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from urbanpulse.analytics.base import Detector
from urbanpulse.analytics.registry import DETECTORS, RAW

NAMES = sorted(DETECTORS)
STEP = 300.0  # 5-minute readings
T0 = 1_700_000_000.0

# The kind of anomaly each detector is for. The likelihood turns a detector towards lasting changes:
# a spike among many is, by design, not unlikely for it.
TARGET = {"ewma": "spike", "seasonal": "spike", "cusum": "shift", "flatline": "stuck", "shape": "spike",
          "ewma-lh": "spike", "seasonal-lh": "shift", "cusum-lh": "shift", "flatline-lh": "stuck",
          "shape-lh": "spread", "context": "spike", "ensemble": "spike"}


def make(name: str) -> Detector:
    return DETECTORS[name]()


def stream(n: int, seed: int, cycle: float = 5.0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A daily cycle with noise (sigma 0.5) at 5-minute steps, rounded to 0.01 like a real sensor."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    values = 20 + cycle * np.sin(2 * np.pi * k / 288) + rng.normal(0, 0.5, n)
    return (T0 + k * STEP).astype(np.float64), np.round(values, 2).astype(np.float64)


def labelled(seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, NDArray[np.bool_]]]:
    """4000 readings with spikes, a level shift, a stuck stretch and a spread change, labelled by kind."""
    times, values = stream(4000, seed, cycle=1.0)
    rng = np.random.default_rng(seed + 1)
    labels = {kind: np.zeros(4000, np.bool_) for kind in ("spike", "shift", "stuck", "spread")}
    spikes = rng.choice(np.arange(1200, 2000), 20, replace=False)
    values[spikes] += rng.choice([-1, 1], 20) * rng.uniform(4, 6, 20)  # 8 to 12 sigmas
    labels["spike"][spikes] = True
    values[2200:2400] += 3.0  # 6 sigmas up, for good
    values[2400:] += 3.0
    labels["shift"][2200:2205] = True  # the onset: a change is news once
    values[2800:2880] = values[2799]  # stuck for 80 readings
    labels["stuck"][2803:2880] = True
    values[3300:3500] += rng.normal(0, 2.0, 200)  # four times the noise
    labels["spread"][3300:3500] = True
    return times, values, labels


def roc_auc(scores: NDArray[np.float64], positive: NDArray[np.bool_]) -> float:
    """Mann-Whitney: the chance a positive outscores a negative (ties count half)."""
    pos, neg = np.sort(scores[positive]), np.sort(scores[~positive])
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def interleaved(n_series: int, length: int, seed: int) -> tuple[NDArray[np.int64], NDArray[np.float64],
                                                                  NDArray[np.float64]]:
    """Several series' streams shuffled together (each keeps its own order), with a few spikes."""
    rng = np.random.default_rng(seed)
    per = [stream(length, seed + s) for s in range(n_series)]
    for _, v in per:
        v[rng.choice(np.arange(50, length), 3, replace=False)] *= 3
    order = rng.permutation(np.repeat(np.arange(n_series), length))
    cursor = np.zeros(n_series, np.int64)
    times, values = np.empty(order.shape[0]), np.empty(order.shape[0])
    for j, s in enumerate(order.tolist()):
        times[j], values[j] = per[s][0][cursor[s]], per[s][1][cursor[s]]
        cursor[s] += 1
    return order.astype(np.int64), times, values


def one_by_one(detectors: list[Detector], series: NDArray[np.int64], times: NDArray[np.float64],
               values: NDArray[np.float64]) -> NDArray[np.float64]:
    out = []
    for s, t, x in zip(series.tolist(), times.tolist(), values.tolist(), strict=True):
        out.append(detectors[s].score_one(x, t))
        detectors[s].learn_one(x, t)
    return np.array(out)


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def test_every_detector_has_a_target_kind() -> None:
    assert set(TARGET) == set(DETECTORS)
    assert set(RAW) < set(TARGET)


def test_constructor_only_stores_parameters(name: str) -> None:
    detector = make(name)
    params = set(inspect.signature(type(detector)).parameters)
    assert set(vars(detector)) == params
    assert detector._state is None


def test_scores_zero_before_learning_and_score_one_does_not_learn(name: str) -> None:
    detector = make(name)
    assert detector.score_one(123.0, T0) == 0.0
    times, values = stream(600, seed=1)
    for t, x in zip(times.tolist(), values.tolist(), strict=True):
        detector.learn_one(x, t)
    before = detector.snapshot()
    for x in (values[-1], 1e6, -1e6):
        assert 0.0 <= detector.score_one(float(x), times[-1] + STEP) <= 1.0
    assert detector.snapshot() == before


def test_kernel_equals_the_per_point_path_for_interleaved_series(name: str) -> None:
    series, times, values = interleaved(n_series=3, length=700, seed=2)
    kernel = make(name).score_learn(series, times, values)
    np.testing.assert_array_equal(kernel, one_by_one([make(name) for _ in range(3)], series, times, values))
    assert np.all((kernel >= 0.0) & (kernel <= 1.0))


def test_snapshot_restore_round_trip(name: str) -> None:
    series, times, values = interleaved(n_series=2, length=700, seed=3)
    live = make(name)
    live.score_learn(series[:800], times[:800], values[:800])
    restored = make(name)
    restored.restore(live.snapshot())
    rest = slice(800, None)
    np.testing.assert_array_equal(live.score_learn(series[rest], times[rest], values[rest]),
                                  restored.score_learn(series[rest], times[rest], values[rest]))
    twin = pickle.loads(pickle.dumps(live))  # noqa: S301 - our own bytes
    assert twin.snapshot() == live.snapshot()


def test_memory_is_bounded(name: str) -> None:
    detector = make(name)
    times, values = stream(20_000, seed=4)
    detector.score_learn(np.zeros(500, np.int64), times[:500], values[:500])
    size = len(detector.snapshot())
    detector.score_learn(np.zeros(19_500, np.int64), times[500:], values[500:])
    assert len(detector.snapshot()) == size
    assert len(detector.state) == 1


def test_non_finite_values_score_zero_and_are_not_learned(name: str) -> None:
    detector = make(name)
    times, values = stream(400, seed=5)
    detector.score_learn(np.zeros(400, np.int64), times, values)
    before = detector.snapshot()
    out = detector.score_learn(np.zeros(2, np.int64), times[-2:] + 400 * STEP, np.array([np.nan, np.inf]))
    assert out.tolist() == [0.0, 0.0]
    assert detector.snapshot() == before


def test_roc_auc_on_labelled_data(name: str) -> None:
    times, values, labels = labelled()
    scores = make(name).score_learn(np.zeros(values.shape[0], np.int64), times, values)
    kind = TARGET[name]
    others = np.logical_or.reduce([v for k, v in labels.items() if k != kind])
    scored = np.arange(values.shape[0]) >= 1000  # after every warm-up
    keep = scored & ~others  # the target kind against normal readings
    auc = roc_auc(scores[keep], labels[kind][keep])
    # The likelihood ranks by how unusual a stretch of raw scores is, not a reading: it gives up some
    # point-wise ranking for scores comparable across series.
    assert auc > (0.7 if name.endswith("-lh") else 0.8), (name, kind, auc)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(NAMES), st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=300))
def test_scores_are_in_the_unit_interval_for_any_input(name: str, xs: list[float]) -> None:
    n = len(xs)
    times = (T0 + np.arange(n) * STEP).astype(np.float64)
    scores = make(name).score_learn(np.zeros(n, np.int64), times, np.array(xs))
    assert np.all((scores >= 0.0) & (scores <= 1.0))


# The per-point path in plain Python: the same code with numba switched off, in a child process.
_PLAIN = """
import json, sys
import numpy as np
from urbanpulse.analytics.registry import DETECTORS
out = {}
for name in json.loads(sys.argv[1]):
    detector = DETECTORS[name]()
    k = np.arange(400)
    values = np.round(20 + 5 * np.sin(2 * np.pi * k / 288) + np.random.default_rng(9).normal(0, 0.5, 400), 2)
    values[[330, 360]] += 6.0
    values[370:380] = values[369]
    scores = []
    for t, x in zip((1.7e9 + 300.0 * k).tolist(), values.tolist()):
        scores.append(detector.score_one(x, t))
        detector.learn_one(x, t)
    out[name] = scores
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def plain_python() -> dict[str, list[float]]:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run([sys.executable, "-c", _PLAIN, json.dumps(NAMES)], env=env, capture_output=True,
                          text=True, check=True, timeout=300)
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


def test_compiled_kernel_equals_plain_python(name: str, plain_python: dict[str, list[float]]) -> None:
    k = np.arange(400)
    values = np.round(20 + 5 * np.sin(2 * np.pi * k / 288) + np.random.default_rng(9).normal(0, 0.5, 400), 2)
    values[[330, 360]] += 6.0
    values[370:380] = values[369]
    kernel = make(name).score_learn(np.zeros(400, np.int64), (1.7e9 + 300.0 * k).astype(np.float64), values)
    np.testing.assert_allclose(kernel, plain_python[name], rtol=1e-9, atol=1e-12)
    assert kernel[300:].max() > 0.0  # the comparison covers scored readings, not only warm-up zeros


def test_restore_refuses_a_foreign_snapshot() -> None:
    ewma, seasonal = make("ewma"), make("seasonal")
    ewma.learn_one(1.0)
    with pytest.raises(ValueError, match="snapshot holds"):
        seasonal.restore(ewma.snapshot())


def test_the_ewma_shell_matches_the_service_detector() -> None:
    from urbanpulse.analytics.ewma import RobustEwmaZScore  # noqa: PLC0415

    _, values = stream(500, seed=6)
    ours, theirs = make("ewma"), RobustEwmaZScore()
    for x in values.tolist():
        assert ours.score_one(x) == theirs.score_one(x)
        ours.learn_one(x)
        theirs.learn_one(x)




def test_negative_series_index_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        make("ewma").score_learn(np.array([-1]), np.array([0.0]), np.array([1.0]))


def test_empty_batches_and_datetimes() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    for name in NAMES:
        detector = make(name)
        empty = detector.score_learn(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        assert empty.shape == (0,)
    naive, aware = make("seasonal"), make("seasonal")
    for day in range(1, 8):
        naive.learn_one(10.0, datetime(2024, 1, day, 9))  # naive datetimes are UTC
        aware.learn_one(10.0, datetime(2024, 1, day, 9, tzinfo=UTC))
    assert naive.snapshot() == aware.snapshot()


def test_the_yellow_line_in_z_is_the_yellow_tail() -> None:
    """The likelihood's hysteresis ends a red run below ``_YELLOW_Z``, written as a number: it must stay
    the z whose one-sided tail is ``YELLOW_TAIL`` (as ``_RED_Z`` must stay below the red one's)."""
    from urbanpulse.analytics import likelihood  # noqa: PLC0415

    assert likelihood._tail(likelihood._YELLOW_Z) == pytest.approx(likelihood.YELLOW_TAIL, rel=1e-9)
    assert likelihood._tail(likelihood._RED_Z) > likelihood.RED_TAIL
