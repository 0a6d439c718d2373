"""VN_AQI: the Python rules (urbanpulse.ingest.aqi) and the SQL functions (migration 005) give the
hand-computed values of the same examples, per pollutant and for the NowCast rule."""

from __future__ import annotations

import math

import psycopg
import pytest
from test_storage_backend import backend, store

from urbanpulse.ingest import aqi

__all__ = ["backend", "store"]  # fixtures

# (breakpoint table, concentration µg/m³, sub-index worked out by hand from the bracket's line)
SUB_INDEX = [
    ("pm25", 37.5, 75.0),        # [25, 50): 50 + 50/25 * 12.5
    ("pm25", 25.0, 50.0),        # a breakpoint starts the next bracket
    ("pm25", 0.0, 0.0),
    ("pm25", 600.0, 500.0),      # above the table: the top index
    ("pm10", 200.0, 125.0),      # [150, 250): 100 + 50/100 * 50
    ("o3_1h", 250.0, 125.0),     # [200, 300): 100 + 50/100 * 50
    ("o3_8h", 150.0, 130.0),     # [120, 170): 100 + 50/50 * 30
    ("o3_8h", 400.0, 300.0),     # the last breakpoint
    ("o3_8h", 450.0, None),      # above 400: the 8-hour part is dropped
    ("no2", 450.0, 125.0),       # [200, 700): 100 + 50/500 * 250
    ("so2", 1000.0, 225.0),      # [800, 1600): 200 + 100/800 * 200
    ("co", 20000.0, 75.0),       # [10000, 30000): 50 + 50/20000 * 10000
    ("co", None, None),
]
# (hourly means, newest first; NowCast by hand)
NOWCAST = [
    ([30.0, 25.0, 20.0], 500 / 19),              # w = 2/3: (30 + 25 w + 20 w²) / (1 + w + w²)
    ([None, 30.0, 20.0], 26.0),                  # w = 2/3 over hours 2, 3: (30 w + 20 w²) / (w + w²)
    ([40.0, 30.0, None, 20.0], 28.75),           # w* = 1/2: 40/2 + 30/4 + 20/16 (hour 3 missing)
    ([100.0, 10.0, 10.0] + [10.0] * 9, 50 + 2.5 + 1.25 + 10 * sum(0.5**i for i in range(4, 13))),
    ([40.0, None, None, 50.0], None),            # fewer than 2 of the last 3 hours
    ([0.0, 0.0], 0.0),
]
CATEGORY = [(0, "good"), (50, "good"), (51, "moderate"), (100, "moderate"), (101, "poor"), (151, "bad"),
            (201, "very_bad"), (300, "very_bad"), (301, "hazardous"), (500, "hazardous")]


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))


@pytest.mark.parametrize(("table", "c", "expected"), SUB_INDEX)
def test_sub_index(table: str, c: float | None, expected: float | None) -> None:
    assert close(aqi.sub_index(table, c), expected)


@pytest.mark.parametrize(("hours", "expected"), NOWCAST)
def test_nowcast(hours: list[float | None], expected: float | None) -> None:
    assert close(aqi.nowcast(hours), expected)


@pytest.mark.parametrize(("value", "key"), CATEGORY)
def test_category(value: int, key: str) -> None:
    assert aqi.category(value) == key


def test_hourly_and_daily_aqi() -> None:
    # PM2.5 NowCast 28.75 -> 57.5; O3 250 -> 125: O3 drives it.
    assert aqi.hourly_aqi(pm25=[40.0, 30.0, None, 20.0], pm10=[], o3=250.0) == aqi.Aqi(125, "poor", "o3")
    assert aqi.hourly_aqi(pm25=[25.25, 25.25], pm10=[]) == aqi.Aqi(51, "moderate", "pm25")  # 50.5 rounds up
    assert aqi.hourly_aqi(pm25=[], pm10=[], o3=250.0) is None  # no PM, no AQI
    assert aqi.daily_aqi(pm25_24h=37.5, pm10_24h=None, o3_max_1h=250.0, o3_max_8h=150.0) == aqi.Aqi(130, "poor", "o3")
    dropped_8h = aqi.daily_aqi(pm25_24h=37.5, pm10_24h=200.0, o3_max_1h=250.0, o3_max_8h=450.0)
    assert dropped_8h == aqi.Aqi(125, "poor", "pm10")
    assert aqi.daily_aqi(pm25_24h=37.5, pm10_24h=20.0, so2_max_1h=1000.0) == aqi.Aqi(225, "very_bad", "so2")
    assert aqi.o3_8h_means([10.0] * 5 + [None, None, 40.0]) == [None] * 7 + [15.0]  # 6 of 8 hours


@pytest.mark.integration
def test_sql_functions_agree(store: str) -> None:
    with psycopg.connect(store) as conn:
        for table, c, expected in SUB_INDEX:
            row = conn.execute("SELECT vn_aqi_sub(%s, %s::float8)", [table, c]).fetchone()
            assert row is not None
            assert close(row[0], expected), (table, c, row)
        for hours, expected in NOWCAST:
            row = conn.execute("SELECT vn_nowcast(%s::float8[])", [hours]).fetchone()
            assert row is not None
            assert close(row[0], expected), (hours, row)
        for value, key in CATEGORY:
            assert conn.execute("SELECT vn_aqi_category(%s)", [value]).fetchone() == (key,)
        hourly = "SELECT * FROM vn_aqi_hourly(%s::float8[], %s::float8[], %s, NULL, NULL, NULL)"
        assert conn.execute(hourly, [[40.0, 30.0, None, 20.0], [], 250.0]).fetchone() == (125, "poor", "o3")
        assert conn.execute(hourly, [[25.25, 25.25], [], None]).fetchone() == (51, "moderate", "pm25")
        assert conn.execute(hourly, [[], [], 250.0]).fetchone() == (None, None, None)
        daily = "SELECT * FROM vn_aqi_daily(%s, %s, %s, %s, NULL, %s, NULL)"
        assert conn.execute(daily, [37.5, None, 250.0, 150.0, None]).fetchone() == (130, "poor", "o3")
        assert conn.execute(daily, [37.5, 200.0, 250.0, 450.0, None]).fetchone() == (125, "poor", "pm10")
        assert conn.execute(daily, [37.5, 20.0, None, None, 1000.0]).fetchone() == (225, "very_bad", "so2")
