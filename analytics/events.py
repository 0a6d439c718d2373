"""From scores to events with hysteresis: pure functions, no I/O.

A series whose score reaches ``open_score`` opens an event; while it is open, every reading scoring
at least ``resolve_score`` belongs to it (last score, peak score and value, last seen, readings);
the first reading scoring below ``resolve_score`` resolves it. The gap between the two thresholds
keeps a series hovering around one threshold from flapping.

For a batch of scored points, :func:`transitions` says what happened to each event it touched,
one :class:`Transition` per event and batch, in the order they ended (a series may open, resolve
and open again within one batch).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

__all__ = ["Action", "Transition", "transitions"]


class Action(enum.StrEnum):
    """What a batch did to an event, as seen at the end of the batch."""

    OPEN = "open"  # opened in this batch and still open
    UPDATE = "update"  # was open before and still is
    RESOLVE = "resolve"  # resolved in this batch (it may have opened in it too)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one batch did to one event of series ``series``.

    ``readings`` counts the readings of this batch that belong to the event (score at least
    ``resolve_score`` while open); ``first_at``, ``last_seen_at``, ``peak_*`` describe them and are
    ``None`` when there are none (the batch's first reading of the series resolved the event).
    ``resolved_at`` and ``resolving_score`` are the resolving reading's time and score.
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

    @property
    def action(self) -> Action:
        if self.resolved_at is not None:
            return Action.RESOLVE
        return Action.OPEN if self.opened else Action.UPDATE


@dataclass(slots=True)
class _Episode:
    opened: bool
    readings: int = 0
    first_at: datetime | None = None
    last_seen_at: datetime | None = None
    last_score: float | None = None
    peak_score: float | None = None
    peak_value: float | None = None

    def add(self, time: datetime, score: float, value: float) -> None:
        self.readings += 1
        if self.first_at is None:
            self.first_at = time
        self.last_seen_at = time
        self.last_score = score
        if self.peak_score is None or score > self.peak_score:
            self.peak_score, self.peak_value = score, value

    def end(self, series: int, resolved_at: datetime | None = None,
            resolving_score: float | None = None) -> Transition:
        return Transition(series, self.opened, self.readings, self.first_at, self.last_seen_at,
                          self.last_score, self.peak_score, self.peak_value, resolved_at, resolving_score)


def transitions(
    series: NDArray[np.int64],
    scores: NDArray[np.float64],
    values: NDArray[np.float64],
    times: Sequence[datetime],
    is_open: NDArray[np.bool_],
    open_score: float,
    resolve_score: float,
) -> tuple[list[Transition], NDArray[np.bool_]]:
    """The event transitions of a batch of scored points, and the open flags after it.

    ``series[j]``, ``scores[j]``, ``values[j]`` and ``times[j]`` describe point ``j``, in stream
    order; ``is_open[s]`` says whether series ``s`` has an open event before the batch (it is not
    modified; the flags after the batch are returned).
    """
    now_open = is_open.copy()
    # Only series already open or reaching open_score in this batch can change: skip the rest fast.
    touched = np.union1d(np.flatnonzero(is_open), series[scores >= open_score])
    out: list[Transition] = []
    episodes: dict[int, _Episode] = {}
    for j in np.flatnonzero(np.isin(series, touched)).tolist():
        s, score, value, time = int(series[j]), float(scores[j]), float(values[j]), times[j]
        if now_open[s]:
            episode = episodes.pop(s, None) or _Episode(opened=False)
            if score < resolve_score:
                out.append(episode.end(s, time, score))
                now_open[s] = False
                continue
            episode.add(time, score, value)
            episodes[s] = episode
        elif score >= open_score:
            episode = _Episode(opened=True)
            episode.add(time, score, value)
            episodes[s] = episode
            now_open[s] = True
    out.extend(episode.end(s) for s, episode in episodes.items())
    return out, now_open
