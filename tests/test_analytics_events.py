"""Pure parts of analytics: event hysteresis, series state and its checkpoint, chunk planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from urbanpulse.analytics.events import Action, Transition, transitions
from urbanpulse.analytics.state import NOT_SCORED, SeriesState, points, scored_metrics
from urbanpulse.analytics.store import plan_chunk
from urbanpulse.contract import Kind

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OPEN, RESOLVE = 0.8, 0.4


def run(scores: list[float], series: list[int] | None = None, is_open: list[bool] | None = None,
        ) -> tuple[list[Transition], list[bool]]:
    series = series or [0] * len(scores)
    n = max(series) + 1
    flags = np.array(is_open or [False] * n, np.bool_)
    out, after = transitions(np.array(series, np.int64), np.array(scores), np.array([10.0 * (i + 1) for i in
                             range(len(scores))]), [T0 + timedelta(minutes=i) for i in range(len(scores))],
                             flags, OPEN, RESOLVE)
    assert flags.tolist() == (is_open or [False] * n)  # the input flags are not modified
    return out, after.tolist()


def test_nothing_happens_below_open_score() -> None:
    assert run([0.1, 0.79, 0.5]) == ([], [False])


def test_open_then_update_within_a_batch() -> None:
    out, after = run([0.1, 0.85, 0.95, 0.5])
    assert after == [True]
    (t,) = out
    assert t.action is Action.OPEN
    assert (t.readings, t.first_at, t.last_seen_at) == (3, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert (t.peak_score, t.peak_value, t.last_score) == (0.95, 30.0, 0.5)
    assert t.resolved_at is None


def test_an_open_event_is_updated_then_resolved_below_resolve_score() -> None:
    out, after = run([0.6, 0.39, 0.7], is_open=[True])  # 0.7 does not reopen
    assert after == [False]
    (t,) = out
    assert t.action is Action.RESOLVE
    assert not t.opened
    assert t.readings == 1
    assert t.peak_score == 0.6
    assert (t.resolved_at, t.resolving_score) == (T0 + timedelta(minutes=1), 0.39)


def test_resolve_on_the_first_reading_carries_no_readings() -> None:
    out, after = run([0.1], is_open=[True])
    assert after == [False]
    assert out == [Transition(0, False, 0, None, None, None, None, None, T0, 0.1)]


def test_open_resolve_and_reopen_in_one_batch_keeps_order() -> None:
    out, after = run([0.9, 0.2, 0.85])
    assert [t.action for t in out] == [Action.RESOLVE, Action.OPEN]
    assert all(t.opened for t in out)
    assert after == [True]


def test_still_open_without_new_anomalies_is_an_update() -> None:
    out, _ = run([0.5, 0.45], is_open=[True])
    assert [t.action for t in out] == [Action.UPDATE]
    assert out[0].readings == 2


def test_series_are_independent() -> None:
    out, after = run([0.9, 0.1, 0.1, 0.95], series=[0, 1, 0, 2])
    assert sorted((t.series, t.action) for t in out) == [(0, Action.RESOLVE), (2, Action.OPEN)]
    assert after == [False, False, True]


def test_interval_and_position_are_not_scored() -> None:
    assert "interval_s" not in scored_metrics(Kind.TRAFFIC)
    assert "vehicle_count" in scored_metrics(Kind.TRAFFIC)
    assert not NOT_SCORED & set(scored_metrics(Kind.ISPEED))


def test_points_skip_none_and_add_series() -> None:
    state = SeriesState()
    rows = [("a", T0, 1.0, None), ("b", T0, 2.0, 3.0), ("a", T0 + timedelta(minutes=1), 4.0, 5.0)]
    p = points(rows, ("pm25", "no2"), state)
    assert p.readings == 3
    assert p.series.tolist() == [0, 1, 2, 0, 3]
    assert p.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert state.keys == [("a", "pm25"), ("b", "pm25"), ("b", "no2"), ("a", "no2")]
    assert len(state.ewma) == state.is_open.shape[0] == 4


def test_series_state_round_trip() -> None:
    state = SeriesState()
    points([("air-1", T0, 1.0, 2.0), ("air-2", T0, 3.0, 4.0)], ("pm25", "pm10"), state)
    state.is_open[2] = True
    state.ewma.mean[:] = [1.0, 2.0, 3.0, 4.0]
    back = SeriesState.from_bytes(state.to_bytes())
    assert back.keys == state.keys
    assert back.index == state.index
    assert back.is_open.tolist() == [False, False, True, False]
    assert back.ewma.mean.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert SeriesState.from_bytes(SeriesState().to_bytes()).keys == []


def test_checkpoint_state_refuses_pickles() -> None:
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    np.savez(buf, format=np.array([1]), keys=np.array([object()]), is_open=np.zeros(1, np.bool_),
             mean=np.zeros(1), spread=np.zeros(1), count=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="pickle"):
        SeriesState.from_bytes(buf.getvalue())


@pytest.mark.parametrize(
    ("rows", "complete", "limit", "expected"),
    [
        ([], True, 10, ([], 100)),
        ([(1, 5, 3), (2, 7, 3)], True, 10, ([1, 2], 100)),
        ([(1, 5, 3), (2, 7, 3)], False, 10, ([1, 2], 8)),  # truncated: one past the last xid
        ([(1, 5, 6), (2, 7, 6), (3, 9, 1)], True, 5, ([1], 7)),  # stops at a transaction boundary
        ([(1, 5, 6), (2, 5, 6), (3, 9, 1)], True, 5, ([1, 2], 9)),  # never splits a transaction
    ],
)
def test_plan_chunk(rows: list[tuple[int, int, int]], complete: bool, limit: int,
                    expected: tuple[list[int], int]) -> None:
    assert plan_chunk(rows, 100, complete, limit) == expected
