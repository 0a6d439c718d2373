"""Device silence: expected intervals from the rhythm of readings, overdue counts, snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from urbanpulse.analytics.arrays import SeriesArrays
from urbanpulse.analytics.silence import LAYOUT, SilenceWatch


def test_a_device_is_silent_after_k_expected_intervals() -> None:
    watch = SilenceWatch()
    times = np.arange(0.0, 600.0, 60.0)  # every minute until 540
    watch.observe(np.zeros(times.shape[0], np.int64), times)
    assert watch.overdue(540.0 + 60).round(9).tolist() == [1.0]
    assert not watch.silent(540.0 + 179, k=3)[0]
    assert watch.silent(540.0 + 181, k=3)[0]


def test_one_long_outage_hardly_moves_the_expected_interval() -> None:
    watch = SilenceWatch()
    times = np.concatenate([np.arange(0.0, 6000.0, 60.0), [6000.0 + 3600.0], 9600.0 + np.arange(1, 50) * 60.0])
    watch.observe(np.zeros(times.shape[0], np.int64), times)
    assert 55.0 < float(watch.state["interval"][0]) < 80.0


def test_young_series_and_repeated_timestamps_are_not_overdue() -> None:
    watch = SilenceWatch(min_readings=3)
    watch.observe(np.array([0, 0, 1, 1, 1, 1]), np.array([0.0, 60.0, 0.0, 60.0, 60.0, 120.0]))
    overdue = watch.overdue(10_000.0)
    assert overdue[0] == 0.0  # two readings: no rhythm yet
    assert overdue[1] > 100.0  # the repeated 60 s did not make its interval 0
    assert float(watch.state["interval"][1]) == pytest.approx(60.0)


def test_state_snapshots_and_grows() -> None:
    watch = SilenceWatch()
    watch.observe(np.array([2]), np.array([5.0]))
    assert len(watch.state) == 3
    again = SeriesArrays.from_bytes(LAYOUT, watch.state.to_bytes())
    assert again == watch.state
