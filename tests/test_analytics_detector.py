"""The robust EWMA z-score detector: kernel and one-series shell agree, state round-trips, it detects."""

from __future__ import annotations

import doctest
import math
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from urbanpulse.analytics import ewma
from urbanpulse.analytics.ewma import MAD_TO_SIGMA, EwmaState, RobustEwmaZScore, score_learn
from urbanpulse.settings import AnalyticsSettings

DEFAULTS = AnalyticsSettings()
ALPHA, WARMUP, CLIP, SCALE = 0.05, 30, 3.0, 3.0


MIN_SIGMAS = [0.2, 0.0, 0.0, 0.0, 0.0]  # series 0 (level 1, noise ~0.12) lives on its floor


def run_kernel(series: NDArray[np.int64], values: NDArray[np.float64], state: EwmaState,
               min_sigma: list[float] | None = None) -> NDArray[np.float64]:
    floors = np.array(min_sigma or [0.0] * len(state), np.float64)
    out: NDArray[np.float64] = score_learn(series, values, floors, state.mean, state.spread, state.count,
                                           ALPHA, WARMUP, CLIP, SCALE)
    return out


def reference(xs: list[float], min_sigma: float = 0.0) -> list[float]:
    """The detector written out in plain Python, independently of the kernel."""
    mean = spread = 0.0
    n = 0
    out = []
    for x in xs:
        sigma = max(spread * math.sqrt(math.pi / 2), min_sigma, 1e-9 * (1 + abs(mean)))
        z = abs(x - mean) / sigma
        out.append(0.0 if n < WARMUP else z * z / (z * z + SCALE * SCALE))
        if n == 0:
            mean, n = x, 1
            continue
        a = max(ALPHA, 1 / (n + 1))
        d = x - mean
        if n >= WARMUP:
            d = min(max(d, -CLIP * sigma), CLIP * sigma)
        mean += a * d
        spread += a * (abs(d) - spread)
        n += 1
    return out


def noisy(n: int, seed: int, level: float = 50.0, noise: float = 0.12) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, noise) for _ in range(n)]


def interleaved(seed: int, n_series: int = 5, length: int = 200) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rng = random.Random(seed)
    streams = {s: noisy(length, seed + s, level=10.0 ** s) for s in range(n_series)}
    for stream in streams.values():  # a few spikes, so the clipped path is exercised
        for i in rng.sample(range(WARMUP, length), 3):
            stream[i] *= 8
    order = [s for s in streams for _ in range(length)]
    rng.shuffle(order)
    cursor = dict.fromkeys(streams, 0)
    series, values = [], []
    for s in order:
        series.append(s)
        values.append(streams[s][cursor[s]])
        cursor[s] += 1
    return np.array(series, np.int64), np.array(values, np.float64)


def test_kernel_equals_the_per_point_path_for_interleaved_series() -> None:
    series, values = interleaved(seed=1)
    kernel = run_kernel(series, values, EwmaState.empty(5), MIN_SIGMAS)
    detectors = [RobustEwmaZScore(ALPHA, WARMUP, CLIP, SCALE, min_sigma=m) for m in MIN_SIGMAS]
    one_by_one = []
    for s, x in zip(series.tolist(), values.tolist(), strict=True):
        one_by_one.append(detectors[s].score_one(x))
        detectors[s].learn_one(x)
    np.testing.assert_array_equal(kernel, np.array(one_by_one))
    assert kernel.max() > 0.99  # the spikes were scored, not only the warmup zeros


def test_kernel_matches_the_plain_python_reference() -> None:
    series, values = interleaved(seed=2, n_series=3)
    kernel = run_kernel(series, values, EwmaState.empty(3), MIN_SIGMAS[:3])
    for s in range(3):
        mask = series == s
        expected = reference(values[mask].tolist(), MIN_SIGMAS[s])
        np.testing.assert_allclose(kernel[mask], expected, rtol=1e-12, atol=1e-15)


def test_snapshot_restore_gives_identical_scores() -> None:
    series, values = interleaved(seed=3)
    live = EwmaState.empty(5)
    run_kernel(series[:400], values[:400], live)
    restored = EwmaState.from_bytes(live.to_bytes())
    np.testing.assert_array_equal(run_kernel(series[400:], values[400:], live),
                                  run_kernel(series[400:], values[400:], restored))


def test_detector_pickles_and_keeps_scoring_identically() -> None:
    detector = RobustEwmaZScore()
    xs = noisy(300, seed=4)
    for x in xs[:100]:
        detector.learn_one(x)
    twin = pickle.loads(pickle.dumps(detector))  # noqa: S301 - our own bytes
    for x in xs[100:]:
        assert detector.score_one(x) == twin.score_one(x)
        detector.learn_one(x)
        twin.learn_one(x)


def test_state_grows_for_new_series_and_keeps_the_old() -> None:
    state = EwmaState.empty(2)
    run_kernel(np.array([0, 1, 1], np.int64), np.array([1.0, 2.0, 3.0]), state)
    state.grow(4)
    assert len(state) == 4
    assert state.count.tolist() == [1, 2, 0, 0]
    assert state.mean[:2].tolist() == [1.0, 2.5]


def test_score_is_zero_before_learning_and_during_warmup() -> None:
    detector = RobustEwmaZScore(warmup=WARMUP)
    assert detector.score_one(1e6) == 0.0
    for x in noisy(WARMUP, seed=5):
        assert detector.score_one(x * 100) == 0.0
        detector.learn_one(x)
    assert detector.score_one(50.0 * 100) > 0.99  # warm now


def test_constructor_only_stores_parameters() -> None:
    detector = RobustEwmaZScore(alpha=0.1, warmup=5, clip=2.0, scale=4.0)
    assert (detector.alpha, detector.warmup, detector.clip, detector.scale) == (0.1, 5, 2.0, 4.0)
    assert vars(detector)["_state"] is None


def test_an_8x_spike_opens_while_normal_readings_stay_below_resolve() -> None:
    detector = RobustEwmaZScore(alpha=DEFAULTS.alpha, warmup=DEFAULTS.warmup)
    xs = noisy(600, seed=6)
    spike_at = 400
    scores = []
    for i, x in enumerate(xs):
        value = x * 8 if i == spike_at else x
        scores.append(detector.score_one(value))
        detector.learn_one(value)
    assert scores[spike_at] > DEFAULTS.open_score
    normal = [s for i, s in enumerate(scores) if i >= DEFAULTS.warmup and i != spike_at]
    assert np.mean(np.array(normal) < DEFAULTS.resolve_score) > 0.97
    assert max(normal) < DEFAULTS.open_score  # no false alarm, not even right after the spike


def roc_auc(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """Mann-Whitney: the chance an anomaly outscores a normal point (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def test_roc_auc_on_a_labelled_synthetic_series() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    t = np.arange(n)
    level = 100 + 20 * np.sin(2 * np.pi * t / 1440) + np.cumsum(rng.normal(0, 0.05, n))
    values = level + rng.normal(0, 2.0, n)
    labels = np.zeros(n, np.bool_)
    anomalies = rng.choice(np.arange(WARMUP, n), 60, replace=False)
    labels[anomalies] = True
    values[anomalies] += rng.choice([-1, 1], 60) * rng.uniform(8, 20, 60)  # 4 to 10 sigma
    scores = run_kernel(np.zeros(n, np.int64), values, EwmaState.empty(1))
    auc = roc_auc(scores[WARMUP:], labels[WARMUP:])
    assert auc > 0.95, auc


def test_state_is_bounded() -> None:
    state = EwmaState.empty(1)
    run_kernel(np.zeros(100, np.int64), np.array(noisy(100, seed=8)), state)
    size = len(state.to_bytes())
    run_kernel(np.zeros(20_000, np.int64), np.array(noisy(20_000, seed=9)), state)
    assert len(state) == 1
    assert len(state.to_bytes()) == size
    assert int(state.count[0]) == 20_100


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=80))
def test_scores_are_in_the_unit_interval(xs: list[float]) -> None:
    state = EwmaState.empty(1)
    scores = score_learn(np.zeros(len(xs), np.int64), np.array(xs, np.float64), np.zeros(1), state.mean,
                         state.spread, state.count, ALPHA, 3, CLIP, SCALE)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert np.isfinite(state.mean[0])
    assert np.isfinite(state.spread[0])


def test_non_finite_values_are_neither_scored_nor_learned() -> None:
    state = EwmaState.empty(1)
    run_kernel(np.zeros(50, np.int64), np.array(noisy(50, seed=10)), state)
    before = (state.mean.copy(), state.spread.copy(), state.count.copy())
    scores = run_kernel(np.zeros(2, np.int64), np.array([math.nan, math.inf]), state)
    assert scores.tolist() == [0.0, 0.0]
    for a, b in zip(before, (state.mean, state.spread, state.count), strict=True):
        np.testing.assert_array_equal(a, b)


def test_min_sigma_keeps_a_constant_series_from_alarming_on_any_change() -> None:
    bare, floored = RobustEwmaZScore(), RobustEwmaZScore(min_sigma=2.0)
    for _ in range(300):  # ozone at 0 all night
        bare.learn_one(0.0)
        floored.learn_one(0.0)
    assert bare.score_one(3.0) > 0.99
    assert floored.score_one(3.0) < 0.4
    assert floored.score_one(40.0) > 0.8  # a real jump still opens


def test_a_level_shift_is_absorbed() -> None:
    detector = RobustEwmaZScore(min_sigma=0.5)
    for x in [20.0] * 100 + [30.0] * 200:
        last = detector.score_one(x)
        detector.learn_one(x)
    assert last < 0.1


def test_sigma_conversion_constant() -> None:
    assert pytest.approx(1.2533141373155) == MAD_TO_SIGMA


def test_docstring_examples() -> None:
    result = doctest.testmod(ewma, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
