"""Play a scenario: readings with its incidents and faults applied, and the ground truth of both.

Pure and deterministic: ``play(scenario)`` returns the messages in publish order and the ground
truth; the same scenario (and seed) gives the same bytes.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from urbanpulse.contract import Kind, reading_topic
from urbanpulse.sim.city import Device, fleet
from urbanpulse.sim.scenario import Fault, Incident, Scenario
from urbanpulse.sim.signals import reading
from urbanpulse.sim.stream import MALFORMATIONS, SimMessage, malform

INCIDENT_KIND = {"haze": Kind.AIR, "accident": Kind.TRAFFIC, "spike": None, "network_congestion": Kind.ISPEED}
INCIDENT_METRICS = {"haze": ("pm25", "pm10"), "accident": ("speed_kmh", "occupancy_pct"),
                    "network_congestion": ("download_mbps", "latency_ms")}


@dataclass(frozen=True, slots=True)
class Truth:
    """One injected incident or fault: what, where, when (simulated time, UTC)."""

    what: str  # incident or fault type
    category: str  # "incident" (the city) or "fault" (the fleet)
    kind: str
    devices: tuple[str, ...]
    metrics: tuple[str, ...]
    start: datetime
    end: datetime
    province: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "category": self.category, "kind": self.kind, "devices": list(self.devices),
                "metrics": list(self.metrics), "start": self.start.isoformat(), "end": self.end.isoformat(),
                "province": self.province}


@dataclass(slots=True)
class Played:
    devices: list[Device]
    messages: list[SimMessage]
    truth: list[Truth]
    lost_on_device: int = 0  # readings an offline device's full buffer had to drop

    def truth_json(self) -> str:
        return json.dumps([t.to_json() for t in self.truth], indent=2)


@dataclass(slots=True)
class _DeviceState:
    buffer: deque[dict[str, Any]] = field(default_factory=deque)
    held: SimMessage | None = None  # out-of-order: published after the next one
    stuck: dict[str, float] = field(default_factory=dict)


def _targets(incident: Incident, devices: list[Device]) -> list[Device]:
    kind = INCIDENT_KIND[incident.type]
    if incident.type in ("haze", "network_congestion"):
        return [d for d in devices if d.kind == kind and d.province.name == incident.province]
    anchor = next((d for d in devices if d.device_id == incident.device), None)
    if anchor is None:
        msg = f"incident {incident.type}: no device {incident.device!r} in the fleet"
        raise ValueError(msg)
    if incident.type == "spike":
        return [anchor]
    same = [d for d in devices if d.kind == anchor.kind and d is not anchor]
    same.sort(key=lambda d: math.hypot(d.lat - anchor.lat, d.lon - anchor.lon))
    return [anchor, *same[: incident.neighbours]]


def _apply_incident(incident: Incident, body: dict[str, Any], progress: float) -> None:
    ramp = min(1.0, progress / 0.2, (1.0 - progress) / 0.2)  # ease in and out over 20 % of the incident
    factor = 1.0 + (incident.magnitude - 1.0) * max(ramp, 0.0)
    match incident.type:
        case "haze":
            body["pm25"] = min(999.0, round(body["pm25"] * factor, 2))
            body["pm10"] = min(1999.0, round(body["pm10"] * factor, 2))
        case "accident":
            body["speed_kmh"] = round(body["speed_kmh"] / factor, 1)
            body["occupancy_pct"] = min(100.0, round(body["occupancy_pct"] * factor, 1))
        case "network_congestion":
            body["download_mbps"] = round(body["download_mbps"] / factor, 2)
            body["latency_ms"] = round(body["latency_ms"] * factor, 1)
        case "spike":
            assert incident.metric is not None
            body[incident.metric] = round(body[incident.metric] * factor, 2)


def _active(start: timedelta, end: timedelta | None, offset: timedelta) -> bool:
    return start <= offset and (end is None or offset < end)


def _firmware_bug_devices(fault: Fault, devices: list[Device], rng: random.Random) -> set[str]:
    pool = [d.device_id for d in devices if fault.kind is None or d.kind.value == fault.kind]
    return set(rng.sample(pool, round(len(pool) * fault.fraction)))


def play(scenario: Scenario) -> Played:
    rng = random.Random(scenario.seed)
    f = scenario.fleet
    devices = fleet({Kind.AIR: f.air, Kind.TRAFFIC: f.traffic, Kind.ISPEED: f.ispeed}, scenario.seed,
                    provinces_named=f.provinces)
    incident_targets = [(i, {d.device_id for d in _targets(i, devices)}) for i in scenario.incidents]
    buggy = {id(fault): _firmware_bug_devices(fault, devices, rng) for fault in scenario.faults
             if fault.type == "firmware_bug"}
    played = Played(devices, [], _truth(scenario, devices, incident_targets, buggy))
    state = {d.device_id: _DeviceState() for d in devices}
    for step in range(scenario.steps):
        offset = step * scenario.step
        t = scenario.start + offset
        for device in devices:
            body = reading(device, t, step, rng)
            for incident, targets in incident_targets:
                if device.device_id in targets and _active(incident.start, incident.end, offset):
                    _apply_incident(incident, body, (offset - incident.start) / (incident.end - incident.start))
            _fleet_faults(scenario, device, body, offset, state[device.device_id], buggy, rng, played)
    for device in devices:  # whatever a device still holds goes out at the end
        _flush(device, state[device.device_id], played)
    return played


@dataclass(slots=True)
class _Effects:
    """How the fleet's faults change one publish."""

    duplicate: bool = False
    out_of_order: bool = False
    offline: bool = False
    malformed: str | None = None


def _apply_fault(fault: Fault, body: dict[str, Any], offset: timedelta, st: _DeviceState, device_id: str,
                 buggy: dict[int, set[str]], rng: random.Random, effects: _Effects) -> None:
    metric = fault.metric or "pm25"
    match fault.type:
        case "offline":
            effects.offline = True
        case "stuck":
            body[metric] = st.stuck.setdefault(f"{id(fault)}", body[metric])
        case "drift":
            hours = (offset - fault.start).total_seconds() / 3600
            body[metric] = round(body[metric] + fault.drift_per_hour * hours, 2)
        case "clock_skew":
            body["time"] = (datetime.fromisoformat(body["time"]) + fault.skew).isoformat()
        case "firmware_bug" if device_id in buggy[id(fault)]:
            body[metric] = -1.0
        case "duplicates":
            effects.duplicate = rng.random() < fault.rate
        case "out_of_order":
            effects.out_of_order = rng.random() < fault.rate
        case "malformed" if rng.random() < fault.rate:
            effects.malformed = rng.choice(MALFORMATIONS)


def _fleet_faults(scenario: Scenario, device: Device, body: dict[str, Any], offset: timedelta,
                  st: _DeviceState, buggy: dict[int, set[str]], rng: random.Random, played: Played) -> None:
    effects = _Effects()
    for fault in scenario.faults:
        if fault.devices and device.device_id not in fault.devices and fault.type != "firmware_bug":
            continue
        if not _active(fault.start, fault.end, offset):
            st.stuck.pop(f"{id(fault)}", None)
            continue
        _apply_fault(fault, body, offset, st, device.device_id, buggy, rng, effects)
    if effects.offline:
        st.buffer.append(body)
        limit = next(f.buffer for f in scenario.faults if f.type == "offline")
        while len(st.buffer) > limit:
            st.buffer.popleft()
            played.lost_on_device += 1
        return
    _flush_buffer(device, st, played)
    message = malform(effects.malformed, device, body) if effects.malformed else _message(device, [body])
    if effects.out_of_order and st.held is None:
        st.held = message
        return
    played.messages.append(message)
    if st.held is not None:
        played.messages.append(st.held)
        st.held = None
    if effects.duplicate:
        played.messages.append(message)


def _flush_buffer(device: Device, st: _DeviceState, played: Played) -> None:
    while st.buffer:  # store-and-forward: the backlog goes out as arrays of up to 100 readings
        chunk = [st.buffer.popleft() for _ in range(min(100, len(st.buffer)))]
        played.messages.append(_message(device, chunk))


def _flush(device: Device, st: _DeviceState, played: Played) -> None:
    _flush_buffer(device, st, played)
    if st.held is not None:
        played.messages.append(st.held)
        st.held = None


def _message(device: Device, bodies: list[dict[str, Any]]) -> SimMessage:
    payload = json.dumps(bodies[0] if len(bodies) == 1 else bodies).encode()
    times = tuple(datetime.fromisoformat(b["time"]) for b in bodies)
    return SimMessage(reading_topic(device.kind, device.device_id), payload, device.kind.value, device.device_id,
                      times[0], times=times)


def _truth(scenario: Scenario, devices: list[Device], incident_targets: list[tuple[Incident, set[str]]],
           buggy: dict[int, set[str]]) -> list[Truth]:
    out = []
    for incident, targets in incident_targets:
        kind = INCIDENT_KIND[incident.type] or next(d.kind for d in devices if d.device_id == incident.device)
        metrics = INCIDENT_METRICS.get(incident.type, (incident.metric or "",))
        out.append(Truth(incident.type, "incident", kind.value, tuple(sorted(targets)), metrics,
                         scenario.at(incident.start), scenario.at(incident.end), incident.province))
    for fault in scenario.faults:
        chosen = tuple(sorted(buggy.get(id(fault), set()) or fault.devices))
        end = fault.end if fault.end is not None else scenario.duration
        out.append(Truth(fault.type, "fault", fault.kind or "", chosen, (fault.metric,) if fault.metric else (),
                         scenario.at(fault.start), scenario.at(end)))
    return out
