"""The ensemble's prequential check (the seasonal view counts only while it forecasts better than the EWMA
level), its flat-line view's own score, the lone reading's warning, recurring alarms held, and its warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from test_analytics_flatline import first_alarm

from urbanpulse.analytics.ensemble import (
    LONE_TAIL,
    PREQUENTIAL_WARMUP,
    SEASONAL,
    LikelihoodEnsemble,
    run_score,
    seasonal_hidden,
)
from urbanpulse.analytics.likelihood import log_score, lone_score
from urbanpulse.analytics.recurring import MAX_DAYS, recurring_fields, unless_recurring

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lone_spike_within_the_range_seen_is_a_warning_above_the_normal_readings_not_an_alarm(seed: int) -> None:
    """Ten sigmas off for one reading, inside the range the series has already shown (so not a new
    extreme): averaged over ten readings it hardly shows (it scored under the median normal reading);
    alone it scores above 99 % of the normal readings, at most the lone cap (0.4), under the red line."""
    rng = np.random.default_rng(seed)
    values = 20 + rng.normal(0, 1.0, 4 * DAY)
    values[DAY] += 15.0  # the range now reaches 35 and 5
    values[DAY + 50] -= 15.0
    spikes = np.arange(2 * DAY, 4 * DAY, 97)
    values[spikes] += 10.0 * rng.choice([-1.0, 1.0], spikes.shape[0])
    times = 1.7e9 + STEP * np.arange(values.shape[0])
    scores = LikelihoodEnsemble().score_learn(np.zeros(values.shape[0], np.int64), times, values)
    normal = np.ones(values.shape[0], np.bool_)
    normal[: 2 * DAY] = False
    for k in range(11):  # a spike, and the ten readings whose window (of the likelihoods' ten) holds it
        normal[np.minimum(spikes + k, values.shape[0] - 1)] = False
    cap = log_score(LONE_TAIL)
    assert cap == pytest.approx(0.4)
    assert np.median(scores[spikes]) > np.percentile(scores[normal], 99)
    assert scores[spikes].max() <= cap + 1e-12 < 0.5


def test_a_lone_raw_score_shows_one_sided_from_the_yellow_line_up_to_its_cap() -> None:
    """Raw scores learned with mean 0.1 and standard deviation 0.05: 0.2 (two sigmas) and anything lower
    than usual show 0; 0.27 (3.4 sigmas, tail 3e-4) shows its own likelihood; 0.3 (four sigmas, tail
    3e-5) and 0.6 are held at the cap's 0.4."""
    mean, var = np.array([0.1]), np.array([0.05**2])
    k = 1000  # long past learning (150) and estimation (100)

    def score(raw: float, cap: float = 1e-4) -> float:
        return lone_score(mean, var, 0, raw, k, 150, 100, 8640, False, cap)

    assert score(0.2) == 0.0
    assert score(0.0) == 0.0
    assert score(0.27) == pytest.approx(log_score(0.5 * math.erfc(3.4 / math.sqrt(2.0))))
    assert 0.3 < score(0.27) < 0.4
    assert 0.4 < score(0.3, cap=1e-9) < 0.5  # its own tail, 3e-5: the cap (1e-4) holds it at 0.4
    assert score(0.3) == pytest.approx(0.4)
    assert score(0.6) == pytest.approx(0.4)
    assert lone_score(mean, var, 0, 0.6, 200, 150, 100, 8640, False, 1e-4) == 0.0  # still estimating


def at(day: int, hour: int, minute: int) -> float:
    return float(((day * 24 + hour) * 60 + minute) * 60)


def test_an_alarm_in_the_hour_that_alarmed_on_each_of_the_two_days_before_is_held_at_the_yellow_line() -> None:
    r_day, r_streak = (np.full((1, 24), f.fill, f.dtype) for f in recurring_fields("r_"))

    def shown(score: float, t: float, learn: bool = True, days: int = 2) -> float:
        return unless_recurring(score, r_day, r_streak, 0, t, days, learn)

    assert shown(0.7, at(100, 3, 10)) == 0.7  # a nightly job's first alarm
    assert shown(0.7, at(101, 3, 40)) == 0.7  # its second night, anywhere in the hour
    assert shown(0.7, at(102, 3, 5)) == pytest.approx(0.3)  # the third: routine
    assert shown(0.9, at(102, 3, 50)) == pytest.approx(0.3)  # again that hour: still routine
    assert shown(0.7, at(102, 4, 10)) == 0.7  # another hour is news
    assert shown(0.7, at(103, 3, 20), days=0) == 0.7  # the rule off
    assert shown(0.7, at(103, 3, 20), learn=False) == pytest.approx(0.3)  # scored, not recorded
    assert shown(0.45, at(104, 3, 0)) == 0.45  # under the red line: neither held nor recorded
    assert shown(0.7, at(105, 3, 0)) == 0.7  # nights 103 and 104 had none: the streak is broken
    assert (int(r_day[0, 3]), int(r_streak[0, 3])) == (105, 1)
    assert shown(0.7, math.nan) == 0.7  # no time, no hour of the day
    assert shown(0.7, at(103, 3, 0)) == 0.7  # a late reading from before day 105 ...
    assert (int(r_day[0, 3]), int(r_streak[0, 3])) == (105, 1)  # ... is not recorded


@pytest.mark.parametrize("first", [0, 10])
def test_alarms_from_the_first_day_on_count_whatever_the_epoch(first: int) -> None:
    """Day 0 is 1970-01-01 (the streams of the doctests start there): its alarms count as any day's."""
    r_day, r_streak = (np.full((1, 24), f.fill, f.dtype) for f in recurring_fields("r_"))
    shown = [unless_recurring(0.7, r_day, r_streak, 0, at(first + d, 5, 30), 2, True) for d in range(4)]
    assert shown == pytest.approx([0.7, 0.7, 0.3, 0.3])


@pytest.mark.parametrize("days", [-1, MAX_DAYS + 1])
def test_recur_days_out_of_range_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="recur_days"):
        LikelihoodEnsemble(recur_days=days).learn_one(1.0)


def nightly(values: NDArray[np.float64], recur_days: int) -> NDArray[np.float64]:
    """The ensemble's scores of one series of 5-minute readings from a midnight (UTC) on."""
    times = 1.7e9 - 1.7e9 % 86400 + STEP * np.arange(values.shape[0])
    series = np.zeros(values.shape[0], np.int64)
    return LikelihoodEnsemble(recur_days=recur_days).score_learn(series, times, values)


def test_a_new_extreme_every_night_alarms_every_night() -> None:
    """A spike at 03:30 every night, each higher than the last: worse than ever is never routine, so
    each night scores 1.0, as with the rule off (the review of the ninth session's rule: held, it
    showed 0.3 from the third night on, a fault growing every night)."""
    rng = np.random.default_rng(5)
    values = 10 + rng.normal(0, 0.5, 10 * DAY)
    nights = np.arange(2 * DAY, 10 * DAY, DAY) + 42  # 03:30 from the third day
    values[nights] += 10.0 + 4.0 * np.arange(nights.shape[0])
    assert nightly(values, 2)[nights].tolist() == [1.0] * nights.shape[0]
    assert nightly(values, 0)[nights].tolist() == [1.0] * nights.shape[0]


def test_a_sensor_stuck_at_the_same_hour_every_night_alarms_twice_then_is_held() -> None:
    """Stuck for an hour from 03:30 every night (the flat-line view's alarm, not a new extreme): the
    first two nights alarm; the third night's alarm, in the hour that alarmed on both nights before,
    is held (every night alarms with ``recur_days=0``)."""
    rng = np.random.default_rng(5)
    values = np.round(10 + rng.normal(0, 0.5, 10 * DAY), 1)
    nights = np.arange(2 * DAY, 10 * DAY, DAY) + 42
    for night in nights:
        values[night : night + 12] = values[night]

    def worst(scores: NDArray[np.float64]) -> list[float]:
        return [float(scores[night : night + 12].max()) for night in nights]

    plain, held = worst(nightly(values, 0)), worst(nightly(values, 2))
    assert min(plain) >= 0.5
    assert held[:2] == plain[:2]
    assert held[2] < 0.5
