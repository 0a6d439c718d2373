"""The message stream of a simulation: readings, injected spikes and deliberately malformed payloads.

Deterministic: the same seed gives the same messages. Malformed messages are labelled with the field
the gateway's dead-letter reason must name, so tests can check every refusal.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from urbanpulse.contract import Kind, reading_topic
from urbanpulse.sim.city import Device
from urbanpulse.sim.signals import reading


@dataclass(frozen=True, slots=True)
class Spike:
    """Multiply ``metric`` of ``device_id`` by ``factor`` for readings ``start`` .. ``start + length - 1``."""

    device_id: str
    metric: str
    start: int
    length: int
    factor: float


@dataclass(frozen=True, slots=True)
class SimMessage:
    topic: str
    payload: bytes
    kind: str
    device_id: str
    time: datetime | None  # the reading's time when valid
    malformed: str | None = None  # how it is broken
    expected_field: str | None = None  # the field its dead-letter reason must name
    times: tuple[datetime, ...] = ()  # every reading's time, when the payload is an array

    @property
    def valid(self) -> bool:
        return self.malformed is None

    @property
    def reading_times(self) -> tuple[datetime, ...]:
        """The times of the readings this message carries (none when malformed)."""
        if self.malformed is not None:
            return ()
        return self.times or ((self.time,) if self.time is not None else ())


MALFORMATIONS = ("bad_json", "missing_field", "out_of_range", "wrong_type", "unknown_kind")


def malform(how: str, device: Device, body: dict[str, Any]) -> SimMessage:
    """Break a good reading the way ``how`` says."""
    topic = reading_topic(device.kind, device.device_id)
    required = {Kind.AIR: "pm25", Kind.TRAFFIC: "speed_kmh", Kind.ISPEED: "download_mbps"}[device.kind]
    body = dict(body)
    match how:
        case "bad_json":
            payload, field = json.dumps(body).encode()[:-7] + b"}{", "payload"
        case "missing_field":
            del body[required]
            payload, field = json.dumps(body).encode(), required
        case "out_of_range":
            body[required] = -5.0
            payload, field = json.dumps(body).encode(), required
        case "wrong_type":
            body[required] = "fast"
            payload, field = json.dumps(body).encode(), required
        case "unknown_kind":
            topic = reading_topic("weather", device.device_id)
            payload, field = json.dumps(body).encode(), "kind"
        case _:
            raise ValueError(how)
    return SimMessage(topic, payload, device.kind.value, device.device_id, None, how, field)


def messages(
    fleet: list[Device],
    start: datetime,
    steps: int,
    step: timedelta,
    seed: int,
    malformed_rate: float = 0.0,
    spikes: tuple[Spike, ...] = (),
) -> Iterator[SimMessage]:
    """``steps`` rounds in which every device publishes one reading, ``step`` apart in simulated time."""
    rng = random.Random(seed)
    spike_map = {(s.device_id, s.metric): s for s in spikes}
    for i in range(steps):
        t = start + i * step
        for device in fleet:
            body = reading(device, t, i, rng)
            for (device_id, metric), spike in spike_map.items():
                if device_id == device.device_id and spike.start <= i < spike.start + spike.length:
                    body[metric] = round(body[metric] * spike.factor, 2)
            if malformed_rate and rng.random() < malformed_rate:
                yield malform(rng.choice(MALFORMATIONS), device, body)
                continue
            yield SimMessage(
                reading_topic(device.kind, device.device_id), json.dumps(body).encode(), device.kind.value,
                device.device_id, t,
            )
