"""Scenarios: what a simulation plays, as a TOML file.

```toml
name = "haze-over-ha-noi"
seed = 42
start = "2026-03-02T00:00:00Z"   # simulated time of the first reading
duration = "6h"                  # simulated
step = "1m"                      # a device's reading interval (simulated)
acceleration = 600               # simulated seconds per real second, for live runs

[fleet]                          # devices of each kind, spread over the provinces named (all if empty)
air = 40
traffic = 40
ispeed = 20
provinces = ["Ha Noi", "Hai Phong"]

[[incidents]]                    # haze | accident | spike | network_congestion
type = "haze"
province = "Ha Noi"
start = "2h"
end = "4h"
magnitude = 3.0                  # factor on PM2.5 / PM10

[[faults]]                       # offline | stuck | drift | clock_skew | duplicates | out_of_order
type = "offline"                 #   | malformed | firmware_bug
devices = ["air-00002"]
start = "1h"
end = "1h30m"
```

Offsets (`start`, `end`, `duration`, `step`) are durations such as ``90s``, ``15m``, ``2h``, ``1d`` or
``1h30m``. The same scenario and seed always give the same readings.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from urbanpulse.contract import UtcTime
from urbanpulse.durations import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fleet(_Strict):
    air: int = Field(10, ge=0)
    traffic: int = Field(10, ge=0)
    ispeed: int = Field(10, ge=0)
    provinces: tuple[str, ...] = ()


class Incident(_Strict):
    """A real-world event the platform should report (the ground truth of alerting)."""

    type: Literal["haze", "accident", "spike", "network_congestion"]
    start: Duration
    end: Duration
    magnitude: float = Field(3.0, gt=0)
    province: str | None = None  # haze, network_congestion
    device: str | None = None  # accident, spike
    metric: str | None = None  # spike
    neighbours: int = Field(2, ge=0)  # accident: how many nearby segments slow down too


class Fault(_Strict):
    """Something wrong with the fleet itself, not the city."""

    type: Literal["offline", "stuck", "drift", "clock_skew", "duplicates", "out_of_order", "malformed",
                  "firmware_bug"]
    devices: tuple[str, ...] = ()
    start: Duration = timedelta(0)
    end: Duration | None = None
    metric: str | None = None  # stuck, drift, firmware_bug
    rate: float = Field(0.0, ge=0, le=1)  # duplicates, out_of_order, malformed: share of messages
    drift_per_hour: float = 0.0  # drift: added per simulated hour
    skew: Duration = timedelta(0)  # clock_skew: how far ahead the device's clock runs
    fraction: float = Field(0.0, ge=0, le=1)  # firmware_bug: share of the kind's fleet affected
    kind: str | None = None  # firmware_bug: which fleet
    buffer: int = Field(1000, ge=0)  # offline: readings a device keeps for store-and-forward


class Scenario(_Strict):
    name: str
    seed: int = 42
    start: UtcTime
    duration: Duration
    step: Duration = timedelta(minutes=1)
    acceleration: float = Field(60.0, gt=0)
    fleet: Fleet = Fleet()
    incidents: tuple[Incident, ...] = ()
    faults: tuple[Fault, ...] = ()

    @property
    def steps(self) -> int:
        return int(self.duration / self.step)

    def at(self, offset: timedelta) -> datetime:
        return self.start + offset


def load(path: Path) -> Scenario:
    """Read a scenario file; a mistake is reported with its place in the file."""
    with path.open("rb") as handle:
        return Scenario.model_validate(tomllib.load(handle))
