"""Believable readings: daily cycles, rush hours, skewed speed tests. Pure functions of (device, time, rng)."""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any

from urbanpulse.contract import Kind
from urbanpulse.sim.city import Device

OPERATORS = ("Viettel", "VNPT", "MobiFone")
OPERATOR_FACTOR = {"Viettel": 1.1, "VNPT": 0.95, "MobiFone": 0.9}


def _hour(t: datetime) -> float:
    # Vietnam is UTC+7: daily rhythms follow local time.
    return (t.hour + t.minute / 60 + 7) % 24


def _rush(hour: float) -> float:
    """0..1: morning (7-9 h) and evening (17-19 h) peaks."""
    return math.exp(-((hour - 8) ** 2) / 2) + math.exp(-((hour - 18) ** 2) / 2)


def air(device: Device, t: datetime, seq: int, rng: random.Random) -> dict[str, Any]:
    hour = _hour(t)
    inversion = 1.3 if hour < 6 or hour > 21 else 1.0
    level = device.province.pm25_base * (0.7 + 0.5 * _rush(hour)) * inversion
    pm25 = max(0.5, level * rng.lognormvariate(0, 0.12))
    return {
        "device_id": device.device_id, "time": t.isoformat(), "seq": seq,
        "pm25": round(pm25, 2), "pm10": round(pm25 * rng.uniform(1.4, 1.8), 2),
        "temperature": round(27 + 5 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.3), 2),
        "humidity": round(min(100.0, max(20.0, 75 - 15 * math.sin((hour - 9) / 12 * math.pi) + rng.gauss(0, 2))), 1),
        "no2": round(max(0.0, 30 + 40 * _rush(hour) + rng.gauss(0, 5)), 1),
        "o3": round(max(0.0, 40 + 50 * math.sin((hour - 7) / 24 * 2 * math.pi) + rng.gauss(0, 5)), 1),
        "so2": round(max(0.0, 12 + rng.gauss(0, 2)), 1),
        "co": round(max(0.0, 900 + 1200 * _rush(hour) + rng.gauss(0, 80)), 0),
        "noise": round(min(120.0, 50 + 18 * _rush(hour) + rng.gauss(0, 2)), 1),
    }


def traffic(device: Device, t: datetime, seq: int, rng: random.Random) -> dict[str, Any]:
    hour = _hour(t)
    weekday = t.weekday() < 5
    load = (0.15 + (0.85 if weekday else 0.4) * _rush(hour)) * (0.3 if hour < 5 else 1.0)
    count = max(0, round(rng.gauss(120 * load + 10, 4)))
    occupancy = min(100.0, max(0.0, 60 * load + rng.gauss(0, 2)))
    speed = max(3.0, 55 - 35 * load + rng.gauss(0, 2))
    return {
        "device_id": device.device_id, "time": t.isoformat(), "seq": seq,
        "vehicle_count": count, "interval_s": 60, "speed_kmh": round(speed, 1),
        "occupancy_pct": round(occupancy, 1),
    }


def ispeed(device: Device, t: datetime, seq: int, rng: random.Random) -> dict[str, Any]:
    hour = _hour(t)
    operator = OPERATORS[seq % len(OPERATORS)]
    evening = 1.0 - 0.25 * math.exp(-((hour - 21) ** 2) / 4)
    rsrp = rng.uniform(-118, -70)
    signal = 0.5 + (rsrp + 118) / 96
    download = device.province.mean_download_mbps * OPERATOR_FACTOR[operator] * evening * signal
    download *= rng.lognormvariate(0, 0.25)
    latency = max(5.0, 25 / evening + rng.gauss(0, 3))
    return {
        "device_id": device.device_id, "time": t.isoformat(), "seq": seq,
        "download_mbps": round(download, 2), "upload_mbps": round(download * rng.uniform(0.25, 0.45), 2),
        "latency_ms": round(latency, 1), "jitter_ms": round(abs(rng.gauss(3, 1.5)), 2),
        "packet_loss_pct": round(max(0.0, rng.gauss(0.3, 0.3)), 2), "operator": operator,
        "network": "4G" if rng.random() < 0.85 else "5G", "rsrp_dbm": round(rsrp, 1),
        "lat": round(device.lat + rng.uniform(-0.01, 0.01), 5),
        "lon": round(device.lon + rng.uniform(-0.01, 0.01), 5),
        "province": device.province.name,
    }


GENERATORS = {Kind.AIR: air, Kind.TRAFFIC: traffic, Kind.ISPEED: ispeed}


def reading(device: Device, t: datetime, seq: int, rng: random.Random) -> dict[str, Any]:
    """One reading of ``device`` at ``t`` as the JSON object its firmware sends."""
    return GENERATORS[device.kind](device, t, seq, rng)
