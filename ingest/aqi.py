"""VN_AQI (Decision 1459/QĐ-TCMT): sub-indices, NowCast, hourly and daily AQI, categories.

Pure functions; migration 005 defines the same rules in SQL (``vn_aqi_sub``, ``vn_nowcast``,
``vn_aqi_category``, ...) and the tests check both against the same hand-computed examples.
Concentrations in µg/m³. Reference: ``shared/reference/vn_aqi.md``.

Rules as implemented (the reference leaves the marked ones open):

- sub-index: linear inside ``BP_i <= C < BP_{i+1}``; at or above the last breakpoint the top index (500);
  for 8-hour O3 a mean above 400 µg/m³ has no sub-index (the 8-hour part is dropped);
- AQI: the largest sub-index, rounded half up to an integer (*); none unless PM2.5 or PM10 has one;
  the driving pollutant is the first of ``POLLUTANTS`` order among ties;
- NowCast (PM, hourly): ``c_1`` current hour ... ``c_12``; at least 2 of ``c_1..c_3`` present;
  ``w* = min/max`` over the present hours; ``w* <= 1/2``: ``Σ (1/2)^i c_i`` over the present hours
  (as the decision writes it: a missing hour adds nothing); else ``Σ w^(i-1) c_i / Σ w^(i-1)``;
  all present hours zero: 0;
- daily: PM from the 24-hour mean; NO2, SO2, CO from the largest 1-hour mean; O3 the larger of the
  1-hour sub-index of the largest 1-hour mean and the 8-hour sub-index of the largest 8-hour mean,
  an 8-hour mean needing 6 of its 8 hourly means (*).

>>> sub_index("pm25", 37.5)
75.0
>>> round(nowcast([40.0, 30.0, None, 20.0]), 3)  # w* = 0.5 -> Σ (1/2)^i c_i
28.75
>>> hourly_aqi(pm25=[40.0, 30.0, None, 20.0], pm10=[], o3=100.0)
Aqi(value=58, category='moderate', pollutant='pm25')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INDEX_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: Mapping[str, tuple[float, ...]] = {
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 120, 170, 210, 400),
    "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
}
# Order of the pollutants in results; also the tie-break for the driving pollutant.
POLLUTANTS = ("pm25", "pm10", "o3", "no2", "so2", "co")
CATEGORIES = (  # upper AQI bound, key, Vietnamese name, RGB
    (50, "good", "Tốt", (0, 228, 0)),
    (100, "moderate", "Trung bình", (255, 255, 0)),
    (150, "poor", "Kém", (255, 126, 0)),
    (200, "bad", "Xấu", (255, 0, 0)),
    (300, "very_bad", "Rất xấu", (143, 63, 151)),
    (500, "hazardous", "Nguy hại", (126, 0, 35)),
)
NOWCAST_HOURS = 12
O3_8H_MIN_HOURS = 6


@dataclass(frozen=True, slots=True)
class Aqi:
    """An AQI value, its category key and the pollutant that drives it."""

    value: int
    category: str
    pollutant: str


def sub_index(table: str, concentration: float | None) -> float | None:
    """Sub-index of ``concentration`` against the breakpoints ``table`` (``pm25``, ``o3_1h``, ...)."""
    if concentration is None:
        return None
    bps = BREAKPOINTS[table]
    if concentration >= bps[-1]:
        if table == "o3_8h" and concentration > bps[-1]:
            return None
        return float(INDEX_LEVELS[len(bps) - 1])
    for i in range(len(bps) - 1):
        if bps[i] <= concentration < bps[i + 1]:
            step = (INDEX_LEVELS[i + 1] - INDEX_LEVELS[i]) / (bps[i + 1] - bps[i])
            return step * (concentration - bps[i]) + INDEX_LEVELS[i]
    return None  # negative concentration


def round_aqi(value: float) -> int:
    """Round half up, as the decision asks for an integer AQI."""
    return int(value + 0.5)


def category(aqi: int) -> str:
    """The category key (``good`` ... ``hazardous``) of an integer AQI."""
    for upper, key, _, _ in CATEGORIES:
        if aqi <= upper:
            return key
    return CATEGORIES[-1][1]


def nowcast(hours: Sequence[float | None]) -> float | None:
    """NowCast of hourly means ``hours`` (``hours[0]`` the current hour, ``None`` when missing)."""
    c = list(hours[:NOWCAST_HOURS])
    if sum(v is not None for v in c[:3]) < 2:
        return None
    present = [(i, v) for i, v in enumerate(c, start=1) if v is not None]
    high = max(v for _, v in present)
    if high == 0:
        return 0.0
    w = min(v for _, v in present) / high
    if w <= 0.5:
        return sum(0.5**i * v for i, v in present)
    return sum(w ** (i - 1) * v for i, v in present) / sum(w ** (i - 1) for i, _ in present)


def _overall(subs: Mapping[str, float | None]) -> Aqi | None:
    if subs.get("pm25") is None and subs.get("pm10") is None:
        return None
    best, value = "", -1.0
    for name in POLLUTANTS:
        v = subs.get(name)
        if v is not None and v > value:
            best, value = name, v
    aqi = round_aqi(value)
    return Aqi(aqi, category(aqi), best)


def hourly_aqi(
    *, pm25: Sequence[float | None], pm10: Sequence[float | None], o3: float | None = None,
    no2: float | None = None, so2: float | None = None, co: float | None = None,
) -> Aqi | None:
    """Hourly AQI: PM from the NowCast of the last 12 hourly means (newest first), gases from this hour."""
    return _overall({
        "pm25": sub_index("pm25", nowcast(pm25)), "pm10": sub_index("pm10", nowcast(pm10)),
        "o3": sub_index("o3_1h", o3), "no2": sub_index("no2", no2), "so2": sub_index("so2", so2),
        "co": sub_index("co", co),
    })


def o3_8h_means(hourly: Sequence[float | None]) -> list[float | None]:
    """Rolling 8-hour means of hourly O3 means (oldest first); each needs 6 of its 8 hours."""
    out: list[float | None] = []
    for end in range(len(hourly)):
        window = [v for v in hourly[max(0, end - 7): end + 1] if v is not None]
        out.append(sum(window) / len(window) if len(window) >= O3_8H_MIN_HOURS else None)
    return out


def daily_aqi(
    *, pm25_24h: float | None, pm10_24h: float | None, o3_max_1h: float | None = None,
    o3_max_8h: float | None = None, no2_max_1h: float | None = None, so2_max_1h: float | None = None,
    co_max_1h: float | None = None,
) -> Aqi | None:
    """Daily AQI from the day's PM means and largest 1-hour (and 8-hour O3) means."""
    o3_parts = [v for v in (sub_index("o3_1h", o3_max_1h), sub_index("o3_8h", o3_max_8h)) if v is not None]
    return _overall({
        "pm25": sub_index("pm25", pm25_24h), "pm10": sub_index("pm10", pm10_24h),
        "o3": max(o3_parts) if o3_parts else None, "no2": sub_index("no2", no2_max_1h),
        "so2": sub_index("so2", so2_max_1h), "co": sub_index("co", co_max_1h),
    })
