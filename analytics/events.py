"""From scores to events: confirmation, hysteresis, hold time and flapping. Pure functions, no I/O.

Per series, in reading (measurement) time, with the :class:`Rules`:

- **confirm**: a reading scoring at least ``open_score`` starts a candidate; ``min_readings``
  consecutive such readings open the event, ``opened_at`` being the first of them (all count as its
  readings). A reading below ``open_score`` drops an unconfirmed candidate, so a one-reading blip
  opens nothing.
- **update**: while open, every reading scoring at least ``resolve_score`` belongs to the event
  (last score, peak score and value, last seen, readings), except a blip during a calm (below).
- **hold**: a reading below ``resolve_score`` starts a calm; the event resolves at the first reading
  below it ``hold_seconds`` or more after the calm began. ``min_readings`` consecutive readings at or
  above ``resolve_score`` end the calm (they join the event); fewer are a blip, dropped, as a
  blip opens nothing: a series reporting every second crosses ``resolve_score`` by chance every
  minute or two, and a calm any reading ended would never last five minutes. ``resolved_at`` is the
  calm's first reading -- when the anomaly ended; the hold delays the decision, not the record.
- **flapping**: an event whose opening is the ``flap_opens``-th of its series within
  ``flap_window_seconds`` is flapping. When its hold ends it does not resolve but goes dormant: it
  stays open, and the series' next confirmed candidate re-enters it (counting as an opening)
  instead of opening another event. It resolves at the first reading at which fewer than
  ``flap_opens`` openings lie within the window: the series stopped flapping.

The gap between the two thresholds and the hold keep a series hovering near a threshold from
opening and resolving on every other reading; flapping catches what still does.

For a batch of scored points, :func:`advance` moves the per-series :class:`EventState` (which the
checkpoint holds) and says what happened to each event it touched, one :class:`Transition` per
event and batch, in the order they ended (a series may resolve one event and open the next).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Action", "EventState", "Rules", "Transition", "advance", "transitions"]

_NAN = math.nan
# Per-series columns of the event state: dtype and value of a new series. Times are Unix seconds.
_COLUMNS: dict[str, tuple[Any, Any]] = {
    "is_open": (np.bool_, False),  # an event row is open (or acknowledged) for the series
    "dormant": (np.bool_, False),  # ... flapping, its hold ended: waiting for a re-entry or the end
    "flapping": (np.bool_, False),
    "run": (np.int64, 0),  # consecutive readings >= open_score that are not part of an event yet
    "run_first": (np.float64, _NAN), "run_last": (np.float64, _NAN), "run_peak": (np.float64, _NAN),
    "run_peak_value": (np.float64, _NAN), "run_last_score": (np.float64, _NAN),
    "calm_since": (np.float64, _NAN), "calm_score": (np.float64, _NAN),  # first reading of the calm
}


@dataclass(frozen=True, slots=True)
class Rules:
    """When events open, resolve and flap; see the module docstring. ``flap_opens`` < 2: no flapping."""

    open_score: float
    resolve_score: float
    min_readings: int = 1
    hold_seconds: float = 0.0
    flap_opens: int = 0
    flap_window_seconds: float = 3600.0

    @property
    def confirming(self) -> int:
        """Consecutive readings that confirm an opening, or the end of a calm: ``min_readings``, at least 1."""
        return max(1, self.min_readings)

    @property
    def ring(self) -> int:
        """Openings remembered per series: ``flap_opens``, or none when flapping is off."""
        return self.flap_opens if self.flap_opens >= 2 else 0


@dataclass(slots=True)
class EventState:
    """The event state of ``len(self)`` series: ``columns`` (see ``_COLUMNS``) and recent ``opens``.

    ``opens[i]`` holds the times of series ``i``'s last ``ring`` openings, oldest first, NaN when
    fewer. About 90 bytes a series, whatever the length of the stream.
    """

    columns: dict[str, NDArray[Any]]
    opens: NDArray[np.float64]

    @classmethod
    def empty(cls, size: int = 0, ring: int = 0) -> EventState:
        columns = {name: np.full(size, fill, dtype) for name, (dtype, fill) in _COLUMNS.items()}
        return cls(columns, np.full((size, ring), _NAN))

    @property
    def is_open(self) -> NDArray[np.bool_]:
        return self.columns["is_open"]

    def __len__(self) -> int:
        return int(self.columns["is_open"].shape[0])

    def grow(self, size: int) -> None:
        """Make room for series ``0 .. size - 1``; new series start with nothing open."""
        extra = size - len(self)
        if extra > 0:
            for name, (dtype, fill) in _COLUMNS.items():
                self.columns[name] = np.concatenate([self.columns[name], np.full(extra, fill, dtype)])
            self.opens = np.concatenate([self.opens, np.full((extra, self.opens.shape[1]), _NAN)])

    def fit(self, ring: int) -> None:
        """Remember ``ring`` openings per series (keeping the newest when it shrinks)."""
        have = self.opens.shape[1]
        if ring < have:
            self.opens = np.ascontiguousarray(self.opens[:, have - ring:])
        elif ring > have:
            self.opens = np.concatenate([np.full((len(self), ring - have), _NAN), self.opens], axis=1)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {**self.columns, "opens": self.opens}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], size: int) -> EventState:
        """From ``arrays`` (an ``.npz``); columns it lacks (older checkpoints) take their defaults."""
        names = set(getattr(arrays, "files", arrays))
        state = cls.empty(size)
        for name, (dtype, _) in _COLUMNS.items():
            if name in names:
                state.columns[name] = np.array(arrays[name], dtype=dtype)
        if "opens" in names:
            state.opens = np.array(arrays["opens"], dtype=np.float64)
        if state.opens.ndim != 2 or any(a.shape[0] != size for a in (state.opens, *state.columns.values())):
            msg = "checkpoint state is inconsistent: event columns differ in length"
            raise ValueError(msg)
        return state

    def recent_opens(self, s: int, t: float, rules: Rules) -> int:
        return int(np.count_nonzero(self.opens[s] > t - rules.flap_window_seconds))

    def record_open(self, s: int, t: float) -> None:
        if self.opens.shape[1]:
            self.opens[s, :-1] = self.opens[s, 1:]
            self.opens[s, -1] = t

    def close(self, s: int) -> None:
        """Series ``s`` has no open event any more (an operator resolved it): no calm, no candidate;
        its next event needs a confirmed candidate. Its recent openings still count for flapping."""
        c = self.columns
        c["is_open"][s] = c["dormant"][s] = c["flapping"][s] = False
        c["run"][s] = 0
        c["calm_since"][s] = c["calm_score"][s] = _NAN


class Action(enum.StrEnum):
    """What a batch did to an event, as seen at the end of the batch."""

    OPEN = "open"  # opened in this batch and still open
    UPDATE = "update"  # was open before and still is
    RESOLVE = "resolve"  # resolved in this batch (it may have opened in it too)


def _time(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one batch did to one event of series ``series``.

    ``readings`` counts the readings of this batch (and of the candidate that confirmed it) that
    belong to the event; ``first_at``, ``last_seen_at``, ``peak_*`` describe them and are ``None``
    when there are none. ``resolved_at`` and ``resolving_score`` are the first calm reading's time
    and score. ``flapping``: the event became flapping in this batch.
    """

    series: int
    opened: bool
    readings: int
    first_at: datetime | None
    last_seen_at: datetime | None
    last_score: float | None
    peak_score: float | None
    peak_value: float | None
    resolved_at: datetime | None = None
    resolving_score: float | None = None
    flapping: bool = False

    @property
    def action(self) -> Action:
        if self.resolved_at is not None:
            return Action.RESOLVE
        return Action.OPEN if self.opened else Action.UPDATE


@dataclass(slots=True)
class _Episode:
    opened: bool
    readings: int = 0
    first_at: float | None = None
    last_seen_at: float | None = None
    last_score: float | None = None
    peak_score: float | None = None
    peak_value: float | None = None
    flapped: bool = field(default=False)

    def add(self, time: float, score: float, value: float) -> None:
        self.readings += 1
        if self.first_at is None:
            self.first_at = time
        self.last_seen_at = time
        self.last_score = score
        if self.peak_score is None or score > self.peak_score:
            self.peak_score, self.peak_value = score, value

    def take_run(self, c: dict[str, NDArray[Any]], s: int) -> None:
        """Add the confirmed candidate of series ``s``: its readings, first and last time, peak."""
        if self.first_at is None:
            self.first_at = float(c["run_first"][s])
        self.readings += int(c["run"][s])
        self.last_seen_at, self.last_score = float(c["run_last"][s]), float(c["run_last_score"][s])
        peak = float(c["run_peak"][s])
        if self.peak_score is None or peak > self.peak_score:
            self.peak_score, self.peak_value = peak, float(c["run_peak_value"][s])

    def end(self, series: int, resolved_at: float | None = None, resolving_score: float | None = None) -> Transition:
        return Transition(series, self.opened, self.readings, _time(self.first_at), _time(self.last_seen_at),
                          self.last_score, self.peak_score, self.peak_value, _time(resolved_at), resolving_score,
                          self.flapped)


def _extend_run(c: dict[str, NDArray[Any]], s: int, t: float, score: float, value: float) -> None:
    if c["run"][s] == 0:
        c["run_first"][s], c["run_peak"][s] = t, -math.inf
    c["run"][s] += 1
    c["run_last"][s], c["run_last_score"][s] = t, score
    if score > c["run_peak"][s]:
        c["run_peak"][s], c["run_peak_value"][s] = score, value


@dataclass(slots=True)
class _Pass:
    """One batch's pass over the event state, reading by reading: the rules and what they did."""

    state: EventState
    rules: Rules
    out: list[Transition] = field(default_factory=list)  # transitions of the events that ended
    episodes: dict[int, _Episode] = field(default_factory=dict)  # what this batch did to open events

    def resolve(self, s: int) -> None:
        c = self.state.columns
        episode = self.episodes.pop(s, None) or _Episode(opened=False)
        self.out.append(episode.end(s, float(c["calm_since"][s]), float(c["calm_score"][s])))
        c["is_open"][s] = c["dormant"][s] = c["flapping"][s] = False
        c["calm_since"][s] = c["calm_score"][s] = _NAN

    def while_open(self, s: int, t: float, score: float, value: float) -> None:
        """A reading of a series whose event is open (and not dormant): update, calm, hold."""
        c, rules = self.state.columns, self.rules
        episode = self.episodes.setdefault(s, _Episode(opened=False))
        calm = not math.isnan(c["calm_since"][s])
        if score >= rules.resolve_score:
            if not calm:
                episode.add(t, score, value)
                return
            _extend_run(c, s, t, score, value)  # back during a calm: confirmed as an opening is
            if c["run"][s] >= rules.confirming:
                episode.take_run(c, s)
                c["run"][s] = 0
                c["calm_since"][s] = _NAN
            return
        c["run"][s] = 0  # a blip during the calm: dropped
        if not calm:
            c["calm_since"][s], c["calm_score"][s] = t, score
        if t - c["calm_since"][s] < rules.hold_seconds:
            return
        if c["flapping"][s] and self.state.recent_opens(s, t, rules) >= rules.ring:
            c["dormant"][s] = True
        else:
            self.resolve(s)

    def otherwise(self, s: int, t: float, score: float, value: float) -> None:
        """A reading of a series with no open event, or a dormant one: a candidate, confirmed or dropped."""
        c, rules, state = self.state.columns, self.rules, self.state
        if c["is_open"][s] and state.recent_opens(s, t, rules) < rules.ring:
            self.resolve(s)  # a dormant flapping event whose series stopped flapping
        if score < rules.open_score:
            c["run"][s] = 0
            return
        _extend_run(c, s, t, score, value)
        if c["run"][s] < rules.confirming:
            return
        episode = self.episodes.setdefault(s, _Episode(opened=not c["is_open"][s]))  # a dormant event re-entered
        episode.take_run(c, s)
        state.record_open(s, float(c["run_first"][s]))
        c["run"][s] = 0
        c["is_open"][s], c["dormant"][s], c["calm_since"][s] = True, False, _NAN
        if rules.ring and not c["flapping"][s] and state.recent_opens(s, t, rules) >= rules.ring:
            c["flapping"][s] = episode.flapped = True


def advance(
    series: NDArray[np.int64], scores: NDArray[np.float64], values: NDArray[np.float64],
    times: Sequence[datetime], state: EventState, rules: Rules,
) -> list[Transition]:
    """Move ``state`` (in place) over a batch of scored points; return the event transitions.

    ``series[j]``, ``scores[j]``, ``values[j]`` and ``times[j]`` describe point ``j``, in stream order.
    """
    c = state.columns
    # Only series open, in a candidate or reaching open_score in this batch can change: skip the rest fast.
    touched = np.union1d(np.flatnonzero(c["is_open"] | (c["run"] > 0)), series[scores >= rules.open_score])
    rules_pass = _Pass(state, rules)
    for j in np.flatnonzero(np.isin(series, touched)).tolist():
        s = int(series[j])
        step = rules_pass.while_open if c["is_open"][s] and not c["dormant"][s] else rules_pass.otherwise
        step(s, times[j].timestamp(), float(scores[j]), float(values[j]))
    rules_pass.out.extend(episode.end(s) for s, episode in rules_pass.episodes.items())
    return rules_pass.out


def transitions(
    series: NDArray[np.int64], scores: NDArray[np.float64], values: NDArray[np.float64],
    times: Sequence[datetime], is_open: NDArray[np.bool_], open_score: float, resolve_score: float,
) -> tuple[list[Transition], NDArray[np.bool_]]:
    """Plain hysteresis (no confirmation, hold or flapping): the transitions and the open flags after.

    ``is_open[s]`` says whether series ``s`` has an open event before the batch; it is not modified.
    """
    state = EventState.empty(is_open.shape[0])
    state.columns["is_open"][:] = is_open
    out = advance(series, scores, values, times, state, Rules(open_score, resolve_score))
    return out, state.is_open
