"""Alert noise against ground truth: which operator-facing items match which injected incidents. Pure.

An **item** is what an operator is asked to look at: for analytics an incident (a one-member incident
is an ungrouped event: every event belongs to exactly one), for naive alerting one reading over a
fixed line. An item is a set of :class:`Signal` -- ``(device, metric, from, to, seen)`` -- its member
events, or its one reading (``from = to`` = the reading's time).

**Matching** (:func:`matches`), with ``tolerance`` (default 30 min): a signal matches a truth entry
when its device is one of the entry's devices, its metric one of the entry's metrics (any metric
when the entry names none, as some faults do), and its span ``[from, to]`` overlaps
``[start - tolerance, end + tolerance]``. An event's span runs from its first anomalous reading to
its resolution (or last anomalous reading while open). An item matches an entry when any of its
signals does.

**Figures** (:func:`evaluate`), over the city incidents of the truth (``category == "incident"``):

- recall: share of incidents matched by at least one item;
- items per true incident: items matching some incident / incidents;
- false items per device-day: items matching no incident and no fleet fault / (devices x days);
  items that match only a fleet fault (a stuck or drifting sensor: real, but not a city incident)
  are counted apart as ``fault_items``, neither true nor false;
- time to detect, per matched incident: the earliest ``seen`` of a matching signal minus the
  incident's start, ``seen`` being when the signal reached the operator (for an event, the reading
  time of the batch whose processing first wrote it; for a naive alert, its reading's time).

Naive alerting (:func:`naive_items`): one item per reading beyond a fixed line of its metric
(:data:`NAIVE_LINES`), the way many operations centres alert.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from urbanpulse.contract import SLOW_DOWNLOAD_MBPS
from urbanpulse.ingest.aqi import BREAKPOINTS

__all__ = ["NAIVE_LINES", "Figures", "Item", "Line", "Signal", "TruthWindow", "evaluate", "matches",
           "naive_items"]

TOLERANCE = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Line:
    """A naive alert line: a reading of ``metric`` ``above`` (or below) ``value`` is one alert."""

    metric: str
    value: float
    above: bool
    why: str

    def crossed(self, x: float) -> bool:
        return x > self.value if self.above else x < self.value


# PM2.5 / PM10 / NO2: the concentration at which VN_AQI reaches 151, "bad" (Xấu, unhealthy) -- the
# breakpoints of urbanpulse.ingest.aqi; speed: a congested road; download: the national 4G line.
BAD = 3  # the breakpoint where VN_AQI passes 150
NAIVE_LINES: tuple[Line, ...] = (
    *(Line(p, float(BREAKPOINTS[p][BAD]), above=True, why="VN_AQI > 150 (bad)") for p in ("pm25", "pm10", "no2")),
    Line("speed_kmh", 15.0, above=False, why="congested"),
    Line("download_mbps", SLOW_DOWNLOAD_MBPS, above=False, why=f"under the {SLOW_DOWNLOAD_MBPS:g} Mbit/s line"),
)


@dataclass(frozen=True, slots=True)
class TruthWindow:
    """One injected incident or fault (a row of the simulator's ground truth)."""

    what: str
    category: str  # "incident" or "fault"
    devices: frozenset[str]
    metrics: frozenset[str]
    start: datetime
    end: datetime

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> TruthWindow:
        devices, metrics = doc["devices"], doc["metrics"]
        assert isinstance(devices, list)
        assert isinstance(metrics, list)
        return cls(str(doc["what"]), str(doc["category"]), frozenset(map(str, devices)),
                   frozenset(map(str, metrics)), datetime.fromisoformat(str(doc["start"])),
                   datetime.fromisoformat(str(doc["end"])))


@dataclass(frozen=True, slots=True)
class Signal:
    """One event or one naive alert: ``metric`` of ``device`` anomalous over ``[start, end]``, seen at ``seen``."""

    device: str
    metric: str
    start: datetime
    end: datetime
    seen: datetime


@dataclass(frozen=True, slots=True)
class Item:
    """What one operator is shown once: an incident with its member events, or one naive alert."""

    key: str
    signals: tuple[Signal, ...]


def matches(signal: Signal, truth: TruthWindow, tolerance: timedelta = TOLERANCE) -> bool:
    """Whether ``signal`` is on ``truth``'s devices and metrics and overlaps its window widened by ``tolerance``."""
    return (signal.device in truth.devices
            and (not truth.metrics or signal.metric in truth.metrics)
            and signal.start <= truth.end + tolerance and signal.end >= truth.start - tolerance)


@dataclass(frozen=True, slots=True)
class Figures:
    """Alert noise of one alerting method against the ground truth."""

    incidents: int  # true (injected) incidents
    detected: int
    items: int  # every operator-facing item
    true_items: int  # items matching an incident
    fault_items: int  # items matching only a fleet fault
    false_items: int  # items matching nothing
    device_days: float
    detect_delays: tuple[timedelta, ...]  # per detected incident

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else 1.0

    @property
    def items_per_incident(self) -> float:
        return self.true_items / self.incidents if self.incidents else 0.0

    @property
    def false_per_device_day(self) -> float:
        return self.false_items / self.device_days if self.device_days else 0.0

    @property
    def median_delay(self) -> timedelta | None:
        if not self.detect_delays:
            return None
        return timedelta(seconds=statistics.median(d.total_seconds() for d in self.detect_delays))

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.incidents + other.incidents, self.detected + other.detected,
                       self.items + other.items, self.true_items + other.true_items,
                       self.fault_items + other.fault_items, self.false_items + other.false_items,
                       self.device_days + other.device_days, self.detect_delays + other.detect_delays)


def evaluate(items: Iterable[Item], truth: Sequence[TruthWindow], device_days: float,
             tolerance: timedelta = TOLERANCE) -> Figures:
    """The figures of ``items`` against ``truth`` (see the module docstring)."""
    incidents = [t for t in truth if t.category == "incident"]
    faults = [t for t in truth if t.category != "incident"]
    first_seen: list[datetime | None] = [None] * len(incidents)
    n_items = true_items = fault_items = false_items = 0
    for item in items:
        n_items += 1
        hit = False
        for k, incident in enumerate(incidents):
            seen = [s.seen for s in item.signals if matches(s, incident, tolerance)]
            if seen:
                hit = True
                earliest = min(seen)
                current = first_seen[k]
                first_seen[k] = earliest if current is None else min(current, earliest)
        if hit:
            true_items += 1
        elif any(matches(s, f, tolerance) for s in item.signals for f in faults):
            fault_items += 1
        else:
            false_items += 1
    delays = tuple(seen - t.start for seen, t in zip(first_seen, incidents, strict=True) if seen is not None)
    return Figures(len(incidents), len(delays), n_items, true_items, fault_items, false_items, device_days,
                   delays)


def naive_items(readings: Iterable[tuple[str, datetime, Mapping[str, float | None]]],
                lines: Sequence[Line] = NAIVE_LINES) -> list[Item]:
    """One item per reading ``(device, time, values)`` and line it crosses."""
    out: list[Item] = []
    for device, time, values in readings:
        for line in lines:
            x = values.get(line.metric)
            if x is not None and line.crossed(x):
                out.append(Item(f"{device}/{line.metric}/{time.isoformat()}",
                                (Signal(device, line.metric, time, time, time),)))
    return out
