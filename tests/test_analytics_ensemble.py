"""The ensemble's prequential check (the seasonal view counts only while it forecasts better than the EWMA
level), its flat-line view's own score, and its warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest

from urbanpulse.analytics.ensemble import PREQUENTIAL_WARMUP, SEASONAL, LikelihoodEnsemble, run_score, seasonal_hidden

STEP = 300.0  # 5-minute readings
DAY = int(86400 / STEP)


def learned(values: np.ndarray) -> LikelihoodEnsemble:
    detector = LikelihoodEnsemble()
    times = 1.7e9 + STEP * np.arange(values.shape[0])
    detector.score_learn(np.zeros(values.shape[0], np.int64), times, values)
    return detector


def test_a_daily_routine_shows_the_seasonal_view() -> None:
    rng = np.random.default_rng(5)
    k = np.arange(21 * DAY)
    detector = learned(50 + 20 * np.sin(2 * np.pi * k / DAY) + rng.normal(0, 1, k.shape[0]))
    s = detector.state
    assert s["p_n"][0] > 20 * DAY
    assert s["p_seasonal"][0] < 0.5 * s["p_ewma"][0]  # the profile forecasts far better than the level


@pytest.mark.parametrize("walk", [True, False])
def test_no_routine_hides_it(walk: bool) -> None:
    """A random walk, or noise around a constant: the hour's profile forecasts worse than the level."""
    rng = np.random.default_rng(6)
    steps = rng.normal(0, 1, 21 * DAY)
    detector = learned(50 + (np.cumsum(steps) if walk else steps))
    s = detector.state
    assert s["p_seasonal"][0] > s["p_ewma"][0]


def test_the_check_shows_the_view_only_once_warmed_up_and_better() -> None:
    p_seasonal, p_ewma, p_n = np.zeros(1), np.zeros(1), np.zeros(1, np.int64)
    for n in range(PREQUENTIAL_WARMUP):
        assert seasonal_hidden(p_seasonal, p_ewma, p_n, 0, 1.0, 2.0, 8640, True) == SEASONAL
        assert p_n[0] == n + 1
    assert seasonal_hidden(p_seasonal, p_ewma, p_n, 0, 9.0, 2.0, 8640, False) == -1  # better so far
    assert p_n[0] == PREQUENTIAL_WARMUP  # not learned
    assert (p_seasonal[0], p_ewma[0]) == pytest.approx((1.0, 2.0))
    for _ in range(PREQUENTIAL_WARMUP + 2):  # now it misses by more than the level does
        seasonal_hidden(p_seasonal, p_ewma, p_n, 0, 4.0, 2.0, 8640, True)
    assert seasonal_hidden(p_seasonal, p_ewma, p_n, 0, 0.0, 0.0, 8640, False) == SEASONAL


def test_a_routine_less_burst_series_raises_fewer_alarms_with_the_check() -> None:
    """Poisson counts with 40 bursts (tweets-like) and no daily routine, three seeds: the seasonal view
    is hidden, and the ensemble raises 22 alarms (score >= 0.5 after two days) where it raised 33 with
    the view always shown (measured by disabling the check)."""
    alarms = 0
    for seed in (8, 9, 10):
        rng = np.random.default_rng(seed)
        counts = rng.poisson(20, 14 * DAY).astype(np.float64)
        for start in rng.integers(DAY, 14 * DAY - 10, 40):
            counts[start : start + 3] += rng.integers(10, 30)
        times = 1.7e9 + STEP * np.arange(counts.shape[0])
        detector = LikelihoodEnsemble()
        scores = detector.score_learn(np.zeros(counts.shape[0], np.int64), times, counts)
        assert detector.state["p_seasonal"][0] > detector.state["p_ewma"][0]
        alarms += np.count_nonzero(scores[2 * DAY :] >= 0.5)
    assert alarms <= 27


def test_every_score_is_zero_until_the_warm_up_ends_new_extremes_too() -> None:
    """As documented: until ``learning + estimation`` readings every score is 0.0; the new-extreme rule
    (a reading far beyond the range seen scores 1.0) starts with the likelihoods, not before."""
    detector = LikelihoodEnsemble()
    warm_up = detector.learning + detector.estimation
    values = np.full(warm_up + 50, 10.0)
    values[::2] = 11.0
    values[detector.learning + 10] = 1000.0  # a new extreme after `learning`, inside the warm-up
    values[warm_up + 10] = -1000.0  # and one after it
    times = 1.7e9 + STEP * np.arange(values.shape[0])
    scores = detector.score_learn(np.zeros(values.shape[0], np.int64), times, values)
    assert not scores[:warm_up].any()
    assert scores[warm_up + 10] == 1.0


def first_alarm(scores: np.ndarray) -> int:
    alarms = np.flatnonzero(scores >= 0.5)
    assert alarms.size, "no alarm"
    return int(alarms[0])


def test_a_run_scores_once_in_the_red_zone_then_at_most_the_yellow_line() -> None:
    p = 0.1  # the share of repeats the series has shown: a run of r repeats has probability 0.1 ** r
    scores = [run_score(-r * math.log(p), r) for r in range(3, 9)]
    assert scores[:2] == pytest.approx([0.3, 0.4])  # 1e-3 and 1e-4: not yet red
    assert scores[2] == pytest.approx(0.5)  # 1e-5: the alarm
    assert scores[3:] == pytest.approx([0.3] * 3)  # the same run goes on: no second alarm


def test_a_run_red_on_its_first_scored_reading_alarms_there() -> None:
    """A fine-resolution sensor rarely repeats (p = 0.001): three repeats are already far in the red
    zone, and that first scored reading is the run's alarm (it was not scored one reading earlier)."""
    scores = [run_score(-r * math.log(1e-3), r) for r in range(3, 6)]
    assert scores[0] == pytest.approx(0.896, abs=1e-3)  # log(1e-9 + 1e-10) / log(1e-10)
    assert scores[1:] == pytest.approx([0.3, 0.3])


@pytest.mark.parametrize(("resolution", "days"), [(0.01, 3), (1e-4, 10)])
def test_a_stuck_sensor_alarms_within_half_an_hour_and_not_again_for_hours(resolution: float, days: int) -> None:
    """Five hours stuck, on a coarse and a fine sensor: the flat-line view's alarm comes within six
    readings; the run stays at the yellow line (0.3) or above, and after its first half hour no
    reading of it alarms again."""
    rng = np.random.default_rng(12)
    values = np.round(20 + rng.normal(0, 0.5, days * DAY) / resolution) * resolution
    stuck = slice((days - 1) * DAY, (days - 1) * DAY + 60)
    values[stuck] = values[stuck.start - 1]
    times = 1.7e9 + STEP * np.arange(values.shape[0])
    scores = LikelihoodEnsemble().score_learn(np.zeros(values.shape[0], np.int64), times, values)[stuck]
    assert first_alarm(scores) <= 6
    assert scores[6:].min() >= 0.3 - 1e-6  # log_score(1e-3): 0.29999999...
    assert scores[30:].max() < 0.5
