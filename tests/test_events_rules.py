"""Event rules without a database: confirmation (min_readings), hold time, flapping, checkpointed state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from urbanpulse.analytics.events import Action, EventState, Rules, Transition, advance
from urbanpulse.analytics.state import SeriesState, points

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HI, MID, LO = 0.95, 0.6, 0.1  # >= open_score, between the thresholds, < resolve_score


def rules(**kw: float) -> Rules:
    return Rules(**{"open_score": 0.8, "resolve_score": 0.4, **kw})  # type: ignore[arg-type]


def feed(scores: list[float], r: Rules, state: EventState | None = None, start: int = 0,
         minutes: list[float] | None = None) -> tuple[list[Transition], EventState]:
    """One series; reading ``i`` at ``T0 + minutes[i]`` (default: one a minute from ``start``)."""
    state = state or EventState.empty(1, r.ring)
    at = minutes or [start + i for i in range(len(scores))]
    out = advance(np.zeros(len(scores), np.int64), np.array(scores), np.array([100.0 + i for i in at]),
                  [T0 + m * MINUTE for m in at], state, r)
    return out, state


def test_a_single_reading_blip_opens_nothing() -> None:
    out, state = feed([LO, HI, LO, LO, HI, MID, HI, LO], rules(min_readings=2))
    assert out == []
    assert not state.is_open[0]
    assert state.columns["run"][0] == 0


def test_min_readings_consecutive_high_scores_open_at_the_first() -> None:
    out, state = feed([LO, HI, 0.9, MID], rules(min_readings=2))
    (t,) = out
    assert t.action is Action.OPEN
    assert (t.first_at, t.last_seen_at, t.readings) == (T0 + MINUTE, T0 + 3 * MINUTE, 3)
    assert (t.peak_score, t.peak_value) == (HI, 101.0)
    assert state.is_open[0]


def test_a_candidate_spans_batches_through_the_checkpoint() -> None:
    r = rules(min_readings=3)
    series = SeriesState()
    points([("air-1", T0, 1.0)], ("pm25",), series)
    assert advance(np.zeros(2, np.int64), np.array([HI, HI]), np.array([5.0, 9.0]), [T0, T0 + MINUTE],
                   series.events, r) == []
    back = SeriesState.from_bytes(series.to_bytes())  # a restart between the two batches
    (t,) = advance(np.zeros(1, np.int64), np.array([0.9]), np.array([7.0]), [T0 + 2 * MINUTE], back.events, r)
    assert (t.opened, t.first_at, t.readings, t.peak_score, t.peak_value) == (True, T0, 3, HI, 5.0)
    assert (t.last_seen_at, t.last_score) == (T0 + 2 * MINUTE, 0.9)


def test_hold_time_rides_out_a_short_dip() -> None:
    # open at 0; calm at 1-2 (2 min < hold 5 min); back above resolve_score at 3; calm from 4 on
    out, state = feed([HI, LO, LO, MID, LO, LO, LO, LO, LO], rules(hold_seconds=300))
    (t,) = out
    assert t.action is Action.OPEN  # one event, still open: the calm from minute 4 lasted 4 minutes only
    assert t.readings == 2
    (t,), state = feed([LO], rules(hold_seconds=300), state, start=9)  # 5 minutes of calm: resolved
    assert t.action is Action.RESOLVE
    assert (t.resolved_at, t.resolving_score) == (T0 + 4 * MINUTE, LO)  # when the anomaly ended
    assert not state.is_open[0]


def test_a_blip_during_the_calm_does_not_end_it() -> None:
    """With ``min_readings=2`` one reading back above ``resolve_score`` is a blip: dropped, the calm
    goes on and the event resolves on time; two in a row end the calm and join the event."""
    r = rules(min_readings=2, hold_seconds=300)
    out, _ = feed([HI, HI, LO, LO, MID, LO, LO, LO, LO], r)  # calm from 2; a blip at 4; 7 is 5 min on
    (t,) = out
    assert (t.action, t.readings, t.resolved_at) == (Action.RESOLVE, 2, T0 + 2 * MINUTE)
    out, state = feed([HI, HI, LO, MID, 0.5, LO, LO, LO, LO], r)  # back for two readings at 3-4
    (t,) = out
    assert (t.action, t.readings, t.last_seen_at, t.last_score) == (Action.OPEN, 4, T0 + 4 * MINUTE, 0.5)
    assert (t.peak_score, state.columns["run"][0]) == (HI, 0)
    (t,), _ = feed([LO], r, state, start=10)  # the calm from 5 on lasts 5 minutes at 10
    assert (t.action, t.resolved_at) == (Action.RESOLVE, T0 + 5 * MINUTE)


def test_a_noisy_series_reporting_every_second_resolves() -> None:
    """Scores of a calm series reporting every second cross ``resolve_score`` now and then (2.6 % of
    the service's scores on Gaussian noise); a lone crossing no longer restarts the five-minute hold."""
    rng = random.Random(3)
    scores = [HI] * 30 + [MID if rng.random() < 0.03 else LO for _ in range(1200)]
    seconds = [k / 60 for k in range(len(scores))]
    out, _ = feed(scores, rules(min_readings=2, hold_seconds=300), minutes=seconds)
    assert [t.action for t in out] == [Action.RESOLVE]
    assert out[0].resolved_at is not None
    assert out[0].resolved_at - T0 < timedelta(seconds=60)
    out, _ = feed(scores, rules(min_readings=1, hold_seconds=300), minutes=seconds)  # any crossing ends a calm
    assert [t.action for t in out] == [Action.OPEN]


def test_closing_a_series_needs_a_new_confirmed_candidate() -> None:
    """An operator resolved the event: readings between the thresholds no longer belong to it, and
    the next event opens only after ``min_readings`` readings at ``open_score``."""
    r = rules(min_readings=2, hold_seconds=300)
    out, state = feed([HI, HI, MID], r)
    assert [t.action for t in out] == [Action.OPEN]
    state.close(0)
    assert not state.is_open[0]
    out, state = feed([MID, MID, HI, LO, HI, 0.9, MID], r, state, start=3)
    (t,) = out
    assert (t.action, t.first_at, t.readings) == (Action.OPEN, T0 + 7 * MINUTE, 3)


def test_hold_time_is_reading_time() -> None:
    out, _ = feed([HI, LO, LO], rules(hold_seconds=300), minutes=[0, 1, 30])  # a silent gap, then calm
    (t,) = out
    assert (t.action, t.resolved_at) == (Action.RESOLVE, T0 + MINUTE)


def test_without_hold_the_first_calm_reading_resolves() -> None:
    out, _ = feed([HI, LO, HI, LO], rules())
    assert [(t.action, t.first_at, t.resolved_at) for t in out] == [
        (Action.RESOLVE, T0, T0 + MINUTE), (Action.RESOLVE, T0 + 2 * MINUTE, T0 + 3 * MINUTE)]


def test_a_flapping_series_is_one_flapping_event() -> None:
    r = rules(flap_opens=3, flap_window_seconds=3600)
    out, state = feed([HI, LO] * 30, r)  # opens and calms every other minute for an hour
    assert [(t.action, t.flapping) for t in out] == [
        (Action.RESOLVE, False), (Action.RESOLVE, False), (Action.OPEN, True)]
    flapping = out[2]
    assert flapping.readings == 28  # every later anomaly re-entered it
    assert flapping.first_at == T0 + 4 * MINUTE
    assert state.columns["flapping"][0]
    assert state.is_open[0]
    # calm: it stays open until fewer than 3 openings lie within the window, then resolves
    out, state = feed([LO] * 70, r, state, start=60)
    (end,) = out
    assert end.action is Action.RESOLVE
    assert end.resolved_at == T0 + 59 * MINUTE  # the last calm began then
    assert not state.is_open[0]
    assert not state.columns["flapping"][0]
    assert state.opens[0].tolist() == [T0.timestamp() + 60 * m for m in (54, 56, 58)]


def test_flapping_needs_the_openings_within_the_window() -> None:
    out, _ = feed([HI, LO] * 6, rules(flap_opens=3, flap_window_seconds=60), minutes=[30 * i for i in range(12)])
    assert [t.flapping for t in out] == [False] * 6  # one opening an hour: six plain events


@pytest.mark.parametrize("ring", [0, 2, 5])
def test_the_opening_ring_follows_the_setting(ring: int) -> None:
    state = EventState.empty(2, 3)
    state.opens[:] = [[1.0, 2.0, 3.0], [np.nan, np.nan, 4.0]]
    state.fit(ring)
    expected = {0: [[], []], 2: [[2.0, 3.0], [np.nan, 4.0]], 5: [[np.nan, np.nan, 1.0, 2.0, 3.0],
                                                                  [np.nan] * 4 + [4.0]]}[ring]
    np.testing.assert_array_equal(state.opens, np.array(expected).reshape(2, ring))


def test_batches_give_the_same_events_and_state_as_one_stream() -> None:
    """Chunked through checkpoint round trips or all at once: the same events, the same state."""
    rng = random.Random(5)
    n = 400
    series = np.array([rng.randrange(3) for _ in range(n)], np.int64)
    scores = np.array([rng.choice([HI, HI, HI, MID, LO, LO]) for _ in range(n)])
    values = np.arange(n, dtype=np.float64)
    times = [T0 + i * MINUTE for i in range(n)]
    r = rules(min_readings=2, hold_seconds=120, flap_opens=3, flap_window_seconds=7200)

    whole = EventState.empty(3, r.ring)
    expected = advance(series, scores, values, times, whole, r)

    keys = SeriesState()
    points([("d", T0, 1.0, 1.0, 1.0)], ("pm25", "pm10", "no2"), keys)
    got: list[Transition] = []
    for a in range(0, n, 7):
        keys.events.fit(r.ring)  # as the service does before every chunk
        got += advance(series[a:a + 7], scores[a:a + 7], values[a:a + 7], times[a:a + 7], keys.events, r)
        keys = SeriesState.from_bytes(keys.to_bytes())

    def events(ts: list[Transition]) -> list[tuple[object, ...]]:
        """Per event: opened at, resolved at, readings, peak, flapping (batches split an event's updates)."""
        merged: dict[tuple[int, int], list[object]] = {}
        count = {s: 0 for s in range(3)}
        for t in ts:
            key = (t.series, count[t.series])
            e = merged.setdefault(key, [t.first_at, None, 0, 0.0, False])
            e[1], e[2] = t.resolved_at, int(e[2]) + t.readings  # type: ignore[call-overload]
            e[3], e[4] = max(float(e[3]), t.peak_score or 0.0), bool(e[4]) or t.flapping  # type: ignore[arg-type]
            if t.resolved_at is not None:
                count[t.series] += 1
        return sorted(tuple(v) for v in merged.values() if v[0] is not None)  # type: ignore[type-var]

    assert len(expected) > 10
    assert any(t.flapping for t in expected)
    assert events(got) == events(expected)
    for name, column in whole.columns.items():
        np.testing.assert_array_equal(keys.events.columns[name], column, err_msg=name)
    np.testing.assert_array_equal(keys.events.opens, whole.opens)
