"""The rollups, declared once: name, source kind, bucket width.

The backend-specific *base* rollups (TimescaleDB continuous aggregates, or tables + views on native
PostgreSQL, same names and columns) are listed in :data:`BASE`; the AQI tables that urbanpulse
maintains itself on both backends in :data:`AQI`, and the long-range ones (migration 018) in :data:`AQI_3H` and
:data:`TRAFFIC_LONG`. Migrations 006/007/012/018 create them; ``maintain`` refreshes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from urbanpulse.contract import Kind


@dataclass(frozen=True, slots=True)
class Rollup:
    """One rollup: ``name`` (the relation dashboards read), the kind it summarises, its bucket."""

    name: str
    kind: Kind
    width: str  # a PostgreSQL interval
    daily: bool = False  # buckets are days in storage_config.day_timezone

    def bucket_sql(self, column: str = "time") -> str:
        """SQL expression of the bucket of ``column`` (the same as the rollup's definition)."""
        if self.daily:
            return f"date_trunc('day', {column}, (SELECT storage_setting('day_timezone')))"
        return f"date_bin('{self.width}', {column}, '2000-01-03 00:00+00')"


AIR_1H = Rollup("air_device_1h", Kind.AIR, "1 hour")
TRAFFIC_15M = Rollup("traffic_device_15m", Kind.TRAFFIC, "15 minutes")
# Hourly, from traffic_device_15m (hierarchical continuous aggregate, or a table refreshed after it):
# dashboards read it for ranges longer than a day.
TRAFFIC_1H = Rollup("traffic_device_1h", Kind.TRAFFIC, "1 hour")
ISPEED_1H = Rollup("ispeed_1h", Kind.ISPEED, "1 hour")
ISPEED_1D = Rollup("ispeed_1d", Kind.ISPEED, "1 day", daily=True)
# In refresh order: a rollup computed from another comes after it.
BASE: tuple[Rollup, ...] = (AIR_1H, TRAFFIC_15M, TRAFFIC_1H, ISPEED_1H, ISPEED_1D)

# Hourly / daily VN_AQI per station (with the hour's means), computed from air_device_1h (NowCast and
# 8-hour O3 need windows over buckets, which continuous aggregates cannot express).
AQI_1H = Rollup("air_aqi_1h", Kind.AIR, "1 hour")
AQI_1D = Rollup("air_aqi_1d", Kind.AIR, "1 day", daily=True)
AQI: tuple[Rollup, ...] = (AQI_1H, AQI_1D)
# Per district, from the two above (maintained with them).
DISTRICT_1H = Rollup("air_district_1h", Kind.AIR, "1 hour")
DISTRICT_1D = Rollup("air_district_1d", Kind.AIR, "1 day", daily=True)
# The largest hourly AQI per station and 3 hours (from air_aqi_1h, maintained after it): long ranges.
AQI_3H = Rollup("air_aqi_3h", Kind.AIR, "3 hours")

# Coarser traffic for long ranges (migration 018), tables maintained on both backends from traffic_device_1h
# with the typical speeds: per district and hour, per detector and 3 hours, per detector and UTC day. The
# first and the last hold sums against traffic_typical_speed, so the weeks it describes are recomputed with it.
TRAFFIC_DISTRICT_1H = Rollup("traffic_district_1h", Kind.TRAFFIC, "1 hour")
TRAFFIC_3H = Rollup("traffic_device_3h", Kind.TRAFFIC, "3 hours")
TRAFFIC_1D = Rollup("traffic_device_1d", Kind.TRAFFIC, "1 day")
TRAFFIC_LONG: tuple[Rollup, ...] = (TRAFFIC_DISTRICT_1H, TRAFFIC_3H, TRAFFIC_1D)
AGAINST_TYPICAL: tuple[Rollup, ...] = (TRAFFIC_DISTRICT_1H, TRAFFIC_1D)

# The relations dashboards and the read-only role use (views; same names and columns on both backends).
VIEWS: tuple[str, ...] = (
    "air_device_1h", "air_hourly", "air_hourly_district", "air_hourly_province",
    "air_daily", "air_daily_district", "air_daily_province",
    "traffic_device_15m", "traffic_15m", "traffic_15m_district", "traffic_typical_speed",
    "traffic_device_1h", "traffic_1h", "traffic_1h_district",
    "ispeed_1h", "ispeed_1d",
    "traffic_district_1h", "traffic_device_1d", "traffic_device_3h", "air_aqi_3h",
)
UNTIMED: frozenset[str] = frozenset({"traffic_typical_speed"})
"""The views of :data:`VIEWS` without a time bucket (a speed per detector and hour of the week)."""
