"""The flat-line detector learns its share of repeats apart at the series' floor, ceiling and in between."""

from __future__ import annotations

import numpy as np
import pytest

from urbanpulse.analytics.flatline import BETWEEN, CEILING, FLOOR, FlatLine, value_class

DAY = 288  # 5-minute readings


def quiet_counts(seed: int) -> np.ndarray:
    """Two weeks of counts of a quiet place: about 20 every 5 minutes from 07:00 to 22:00, 0.3 at night."""
    rng = np.random.default_rng(seed)
    hour = (np.arange(14 * DAY) % DAY) * 24 / DAY
    return rng.poisson(np.where((hour >= 7) & (hour < 22), 20.0, 0.3)).astype(np.float64)


def first_alarm(scores: np.ndarray) -> int:
    alarms = np.flatnonzero(scores >= 0.5)
    assert alarms.size, "no alarm"
    return int(alarms[0])


def scores_of(values: np.ndarray) -> np.ndarray:
    n = values.shape[0]
    return FlatLine().score_learn(np.zeros(n, np.int64), np.zeros(n), values)


def test_value_class() -> None:
    assert value_class(5.0, 0.0, 9.0, 0) == BETWEEN  # a first reading has no bounds yet
    assert value_class(0.0, 0.0, 9.0, 4) == FLOOR
    assert value_class(-1.0, 0.0, 9.0, 4) == FLOOR
    assert value_class(9.0, 0.0, 9.0, 4) == CEILING
    assert value_class(5.0, 0.0, 9.0, 4) == BETWEEN


def test_nightly_zeros_of_a_quiet_count_are_its_habit() -> None:
    """Runs of zeros every night, up to dozens of readings: 14 alarms over 36 nights (after two days'
    learning) with the floor's own share of repeats; one share for all readings raised 470."""
    alarms = sum(int(np.count_nonzero(scores_of(quiet_counts(seed))[2 * DAY :] >= 0.5)) for seed in (3, 4, 5))
    assert alarms <= 20


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_count_dead_at_zero_by_day_is_found_within_two_hours(seed: int) -> None:
    values = quiet_counts(seed)
    dead = 10 * DAY + 9 * 12  # day 10, 09:00, for six hours
    values[dead : dead + 72] = 0.0
    assert first_alarm(scores_of(values)[dead:]) <= 24  # 16-17 readings measured


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_count_stuck_at_a_daytime_value_is_found_within_half_an_hour(seed: int) -> None:
    values = quiet_counts(seed)
    stuck = 10 * DAY + 9 * 12
    values[stuck : stuck + 72] = values[stuck - 1]
    assert first_alarm(scores_of(values)[stuck:]) <= 6
