"""The simulator: deterministic scenarios, every fault observable, ground truth matching the readings."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from urbanpulse.sim.engine import Played, play
from urbanpulse.sim.scenario import Scenario, load, parse_duration
from urbanpulse.sim.stream import SimMessage

EXAMPLE = Path(__file__).parent.parent / "firmware-sim" / "scenarios" / "city-day.toml"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load(EXAMPLE)


@pytest.fixture(scope="module")
def played(scenario: Scenario) -> Played:
    return play(scenario)


def bodies(messages: list[SimMessage], device: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.device_id == device and m.valid:
            doc = json.loads(m.payload)
            out += doc if isinstance(doc, list) else [doc]
    return out


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(45) == timedelta(seconds=45)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_same_seed_same_readings(scenario: Scenario, played: Played) -> None:
    assert play(scenario).messages == played.messages
    other = play(scenario.model_copy(update={"seed": scenario.seed + 1}))
    assert other.messages != played.messages


def test_ground_truth_matches_the_injected_readings(scenario: Scenario, played: Played) -> None:
    calm = play(scenario.model_copy(update={"incidents": ()}))  # same seed and faults, no incidents
    touched = {d for t in played.truth if t.category == "incident" for d in t.devices}
    for device in {m.device_id for m in played.messages} - touched:
        assert bodies(played.messages, device) == bodies(calm.messages, device), device
    for truth in (t for t in played.truth if t.category == "incident"):
        for device in truth.devices:
            hot, cold = bodies(played.messages, device), bodies(calm.messages, device)
            for metric in truth.metrics:
                inside = [(h[metric], c[metric]) for h, c in zip(hot, cold, strict=True)
                          if truth.start + (truth.end - truth.start) * 0.3 <= datetime.fromisoformat(h["time"])
                          < truth.start + (truth.end - truth.start) * 0.7]
                outside = [(h[metric], c[metric]) for h, c in zip(hot, cold, strict=True)
                           if not truth.start <= datetime.fromisoformat(h["time"]) < truth.end]
                assert inside, (truth.what, device, metric)
                assert all(h == c for h, c in outside), (truth.what, device, metric)
                ratio = statistics.median(h / c for h, c in inside if c)
                assert ratio > 1.5 or ratio < 0.67, (truth.what, device, metric, ratio)
    assert {t.what for t in played.truth} >= {"haze", "accident", "spike", "network_congestion", "offline"}
    json.loads(played.truth_json())


def test_every_fault_is_observable(scenario: Scenario, played: Played) -> None:
    msgs = played.messages
    start = scenario.start
    # offline 3h..4h: nothing from the device then, one array with the backlog after
    offline = [m for m in msgs if m.device_id == "air-00005"]
    arrays = [m for m in offline if len(m.reading_times) > 1]
    assert len(arrays) == 1
    assert len(arrays[0].reading_times) == 12  # an hour at 5-minute steps
    assert min(arrays[0].reading_times) == start + timedelta(hours=3)
    # stuck from 10h: one PM2.5 value
    stuck = [b["pm25"] for b in bodies(msgs, "air-00009")
             if datetime.fromisoformat(b["time"]) >= start + timedelta(hours=10)]
    assert len(set(stuck)) == 1
    # drift: temperature residual against the calm twin grows with time
    calm = play(scenario.model_copy(update={"faults": tuple(f for f in scenario.faults if f.type != "drift")}))
    late = [b["temperature"] - c["temperature"] for b, c in zip(bodies(msgs, "air-00010"),
                                                                   bodies(calm.messages, "air-00010"), strict=True)]
    assert late[-1] > 15 > late[len(late) // 3] > 0
    # clock skew: readings stamped 90 s off the step grid
    skewed = bodies(msgs, "traffic-00011")
    assert all(datetime.fromisoformat(b["time"]).second == 30 for b in skewed)
    # duplicates: byte-identical messages; out of order: a device's times going back
    assert len(msgs) != len(set(msgs))
    times: dict[str, list[datetime]] = defaultdict(list)
    for m in msgs:
        if m.valid and len(m.reading_times) == 1:
            times[m.device_id].append(m.reading_times[0])
    assert any(any(b < a for a, b in itertools.pairwise(ts)) for ts in times.values())
    # malformed messages, labelled with the field their refusal must name
    assert any(not m.valid and m.expected_field for m in msgs)
    # firmware bug: a fifth of the speed-test fleet sends upload -1 from 20h
    bug = next(t for t in played.truth if t.what == "firmware_bug")
    assert len(bug.devices) == round(scenario.fleet.ispeed * 0.2)
    for device in bug.devices:
        assert any(b["upload_mbps"] == -1.0 for b in bodies(msgs, device))
