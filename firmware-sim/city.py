"""The simulated city: provinces, districts and the devices placed around them."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from urbanpulse.contract import Kind


@dataclass(frozen=True, slots=True)
class District:
    name: str
    province: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Province:
    name: str
    lat: float
    lon: float
    pm25_base: float
    mean_download_mbps: float
    districts: tuple[District, ...]


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: Kind
    province: Province
    district: District
    lat: float
    lon: float


@cache
def provinces() -> tuple[Province, ...]:
    """The provinces shipped in ``provinces.json``."""
    raw = json.loads(resources.files("urbanpulse.sim").joinpath("provinces.json").read_text("utf-8"))
    out = []
    for p in raw["provinces"]:
        districts = tuple(District(d["name"], p["name"], d["lat"], d["lon"]) for d in p["districts"])
        out.append(Province(p["name"], p["lat"], p["lon"], p["pm25_base"], p["mean_download_mbps"], districts))
    return tuple(out)


def fleet(
    devices_per_kind: int | Mapping[Kind, int],
    seed: int,
    kinds: tuple[Kind, ...] = tuple(Kind),
    provinces_named: tuple[str, ...] = (),
) -> list[Device]:
    """Devices of each kind (a count per kind, or one for all), spread round-robin over the districts of
    ``provinces_named`` (every province when empty) and placed near them."""
    rng = random.Random(seed)
    chosen = [p for p in provinces() if not provinces_named or p.name in provinces_named]
    unknown = set(provinces_named) - {p.name for p in chosen}
    if unknown:
        msg = f"unknown provinces: {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    districts = [(p, d) for p in chosen for d in p.districts]
    out = []
    for kind in kinds:
        count = devices_per_kind if isinstance(devices_per_kind, int) else devices_per_kind.get(kind, 0)
        for i in range(count):
            province, district = districts[i % len(districts)]
            lat = district.lat + rng.uniform(-0.02, 0.02)
            lon = district.lon + rng.uniform(-0.02, 0.02)
            out.append(Device(f"{kind.value}-{i:05d}", kind, province, district, lat, lon))
    return out
