"""What analytics scores and checkpoints: series keys, their baselines, their event state.

A series is one metric of one device, ``(device_id, metric)``; metric names are unique across
kinds, so the metric also names the kind. Which metrics are scored is declared here, once.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.events import EventState
from urbanpulse.analytics.ewma import EwmaState
from urbanpulse.contract import Kind, metrics

__all__ = ["METRIC_KIND", "MIN_SIGMA", "NOT_SCORED", "Points", "SeriesState", "points", "scored_metrics"]

# Fields that are numbers of the contract but not measurements worth an alert: the length of a
# traffic counting interval is configuration, and a speed test's position says where, not how well.
NOT_SCORED = frozenset({"interval_s", "lat", "lon"})

# The smallest sigma a metric's series is granted, in the metric's unit: about its measurement
# resolution (gases: 1 ppb; CO: 0.05 ppm). A series that sat at one value for hours -- ozone at 0
# all night -- then alarms only on a change of several resolution steps, not on any change at all.
MIN_SIGMA: dict[str, float] = {
    "pm25": 1.0, "pm10": 1.0, "temperature": 0.1, "humidity": 1.0, "no2": 2.0, "o3": 2.0, "so2": 2.5,
    "co": 50.0, "noise": 0.5,
    "vehicle_count": 1.0, "speed_kmh": 1.0, "occupancy_pct": 1.0,
    "download_mbps": 0.1, "upload_mbps": 0.1, "latency_ms": 1.0, "jitter_ms": 0.5, "packet_loss_pct": 0.1,
    "rsrp_dbm": 1.0,
}

METRIC_KIND: dict[str, Kind] = {m.name: kind for kind in Kind for m in metrics(kind)}

_FORMAT = 3  # 3 added the slow baseline; 2 the event state (confirmation, hold, flapping); 1 had only is_open


def scored_metrics(kind: Kind) -> tuple[str, ...]:
    """The metrics of ``kind`` analytics scores, in contract order."""
    return tuple(m.name for m in metrics(kind) if m.name not in NOT_SCORED)


@dataclass(slots=True)
class SeriesState:
    """A consumer's whole state: series ``i`` is ``keys[i]``, with baselines ``ewma[i]`` (fast) and ``slow[i]``
    and event state ``events[i]``.

    ``min_sigma[i]`` is configuration (``MIN_SIGMA`` of the series' metric), derived, not checkpointed.
    """

    keys: list[tuple[str, str]] = field(default_factory=list)
    ewma: EwmaState = field(default_factory=EwmaState.empty)
    slow: EwmaState = field(default_factory=EwmaState.empty)
    events: EventState = field(default_factory=EventState.empty)
    index: dict[tuple[str, str], int] = field(init=False)
    min_sigma: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.min_sigma = np.zeros(0, np.float64)
        self.sync()

    @property
    def is_open(self) -> NDArray[np.bool_]:
        """Whether series ``i`` has an open (or acknowledged) event: a view, writable in place."""
        return self.events.is_open

    def series(self, device_id: str, metric: str) -> int:
        """The index of ``(device_id, metric)``, added when new (call :meth:`sync` before scoring)."""
        key = (device_id, metric)
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.keys)
            self.keys.append(key)
        return i

    def sync(self) -> None:
        """Size the arrays to the keys: new series start with an empty baseline and no open event."""
        self.ewma.grow(len(self.keys))
        self.slow.grow(len(self.keys))
        self.events.grow(len(self.keys))
        new = self.keys[self.min_sigma.shape[0]:]
        if new:
            floors = np.array([MIN_SIGMA.get(metric, 0.0) for _, metric in new], np.float64)
            self.min_sigma = np.concatenate([self.min_sigma, floors])

    def to_bytes(self) -> bytes:
        """``numpy.savez`` of the arrays; keys as ``device<TAB>metric`` lines of UTF-8 (no pickle)."""
        self.sync()
        text = "\n".join(f"{device}\t{metric}" for device, metric in self.keys).encode()
        buf = io.BytesIO()
        arrays: dict[str, Any] = {"format": np.array([_FORMAT]), "keys": np.frombuffer(text, np.uint8),
                                  "mean": self.ewma.mean, "spread": self.ewma.spread, "count": self.ewma.count,
                                  "slow_mean": self.slow.mean, "slow_spread": self.slow.spread,
                                  "slow_count": self.slow.count,
                                  **self.events.arrays()}
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SeriesState:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if int(arrays["format"][0]) not in {1, 2, _FORMAT}:
                msg = f"checkpoint state format {int(arrays['format'][0])} is not {_FORMAT}"
                raise ValueError(msg)
            text = arrays["keys"].tobytes().decode()
            keys = [(d, m) for d, m in (line.split("\t") for line in text.split("\n"))] if text else []
            ewma = EwmaState.from_arrays(arrays)
            if len(ewma) != len(keys):
                msg = "checkpoint state is inconsistent: keys and arrays differ in length"
                raise ValueError(msg)
            events = EventState.from_arrays(arrays, len(keys))
            # Older checkpoints have no slow baseline: it starts afresh (and warms up again).
            slow = (EwmaState.from_arrays({k: arrays[f"slow_{k}"] for k in ("mean", "spread", "count")})
                    if "slow_mean" in arrays.files else EwmaState.empty(len(keys)))
            if len(slow) != len(keys):
                msg = "checkpoint state is inconsistent: keys and slow baseline differ in length"
                raise ValueError(msg)
        return cls(keys, ewma, slow, events)


@dataclass(frozen=True, slots=True)
class Points:
    """Scorable values in stream order: point ``j`` is ``values[j]`` of series ``series[j]`` at ``times[j]``."""

    series: NDArray[np.int64]
    values: NDArray[np.float64]
    times: list[datetime]
    readings: int  # the readings (rows) they came from

    @classmethod
    def concat(cls, parts: Sequence[Points]) -> Points:
        return cls(
            np.concatenate([p.series for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.values for p in parts]) if parts else np.zeros(0, np.float64),
            [t for p in parts for t in p.times],
            sum(p.readings for p in parts),
        )


def points(rows: Iterable[Sequence[Any]], metric_names: Sequence[str], state: SeriesState) -> Points:
    """The points of readings ``(device_id, time, *values of metric_names)``; ``None`` values are skipped.

    New series are added to ``state`` (and its arrays sized), so the points can be scored at once.
    """
    series: list[int] = []
    values: list[float] = []
    times: list[datetime] = []
    readings = 0
    for device_id, time, *row in rows:
        readings += 1
        for metric, value in zip(metric_names, row, strict=True):
            if value is not None:
                series.append(state.series(device_id, metric))
                values.append(float(value))
                times.append(time)
    state.sync()
    return Points(np.array(series, np.int64), np.array(values, np.float64), times, readings)
