"""Air quality (uid ``urbanpulse-air``): hourly VN_AQI per station and district in the official category
colours, PM2.5 and PM10 trends, the pollutant driving the index, the daily AQI table."""

from __future__ import annotations

from urbanpulse.dashboards.common import (
    DISTRICT,
    EVENTS_OF_DEVICES,
    LONG_RANGE,
    PLACE,
    PROVINCE,
    THREE_HOURLY,
    TO_DEVICE,
    device_variable,
    edge_hours,
    events_annotation,
    interval_bin,
    overlapping,
    whole_buckets,
)
from urbanpulse.dashboards.model import AQI_CATEGORY_COLOURS, AQI_STEPS, Dashboard, Grid, Panel
from urbanpulse.ingest.aqi import POLLUTANTS

HOURS = overlapping("bucket", "1 hour")
DAYS = overlapping("bucket", "1 day")


def _district_trend(title: str, column: str, grid: Grid, description: str, unit: str = "conμgm3") -> Panel:
    """A readings-weighted hourly mean of ``column`` per district."""
    weight = "readings" if column.startswith("pm") else column.replace("_mean", "_n")
    return Panel(
        title, "timeseries",
        "SELECT $__timeGroupAlias(bucket, $__interval), district AS metric,\n"
        f"  sum({column} * {weight}) / nullif(sum({weight}), 0) AS {column}\n"
        f"FROM air_hourly_district WHERE {HOURS} AND {PLACE}\n"
        "GROUP BY 1, 2\nORDER BY 1, 2",
        unit, grid, description, min_interval="1h",
    )


# Per station, hundreds of series. At Grafana's hourly interval (ranges up to about a week) the rows as they
# are, without regrouping (half the time of a hash aggregate and sort of 34,000 station-hours); at intervals
# that are whole multiples of 3 hours (3 h for a month, 6 h, 12 h, days) the 3-hourly maxima of air_aqi_3h
# for the 3-hour buckets wholly in the range and the hours at its edges from air_hourly (a third of the rows);
# other intervals regroup the hours. The interval's bucket as a timestamp (date_bin) is cheaper than Grafana's
# numeric epoch arithmetic on every row, and the time goes out as epoch seconds (what $__timeGroup gives on
# plain PostgreSQL): a float decodes in half the time of a timestamptz, which counts at 48,000 points.
# The branches that do not apply are pruned when the query is planned.
_STATIONS = f"{PLACE} AND device_id IN ($device) AND aqi IS NOT NULL"
_BIN = interval_bin("bucket")
_HOURLY = "$__interval_ms <= 3600000"
AQI_STATION = Panel(
    "Hourly VN_AQI per station", "timeseries",
    "SELECT date_part('epoch', bucket) AS time, device_id AS metric, aqi\n"
    f"FROM air_hourly WHERE {HOURS} AND {_STATIONS} AND {_HOURLY}\n"
    "UNION ALL\n"
    f"SELECT {_BIN}, device_id, max(aqi)\n"
    f"FROM air_hourly WHERE {HOURS} AND {_STATIONS} AND NOT {_HOURLY} AND NOT {THREE_HOURLY}\n"
    "GROUP BY 1, 2\n"
    "UNION ALL\n"
    f"SELECT {_BIN}, device_id, max(aqi)\nFROM (\n"
    f"  SELECT bucket, device_id, aqi FROM air_aqi_3h WHERE {whole_buckets('bucket', '3 hours')} AND {_STATIONS}\n"
    f"  UNION ALL SELECT bucket, device_id, aqi FROM air_hourly WHERE {edge_hours('bucket', '3 hours')}"
    f" AND {_STATIONS}\n"
    f") AS coarse WHERE {THREE_HOURLY}\n"
    "GROUP BY 1, 2\nORDER BY 1, 2",
    "none", Grid(0, 0, 12, 9),
    "Hourly VN_AQI (PM NowCast, gases' hourly means) of each station; the bands are the official categories.",
    min_interval="1h", steps=AQI_STEPS, threshold_style="area",
)
AQI_DISTRICT = Panel(
    "Hourly VN_AQI per district", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), district AS metric, max(aqi) AS aqi\n"
    f"FROM air_hourly_district WHERE {HOURS} AND {PLACE} AND aqi IS NOT NULL\n"
    "GROUP BY 1, 2\nORDER BY 1, 2",
    "none", Grid(12, 0, 12, 9), "Hourly VN_AQI of each district: that of its worst station.",
    min_interval="1h", steps=AQI_STEPS, threshold_style="area",
)
PM25 = _district_trend("PM2.5 per district", "pm25_mean", Grid(0, 9, 12, 8),
                       "Hourly PM2.5 mean of each district (readings-weighted over its stations).")
PM10 = _district_trend("PM10 per district", "pm10_mean", Grid(12, 9, 12, 8),
                       "Hourly PM10 mean of each district (readings-weighted over its stations).")
# Over a day: the 3-hour buckets wholly in the range from air_aqi_3h (a third of the station-hours), the
# hours at its edges from air_hourly.
_HOURS_SUMS = ", ".join(f"sum({p}_hours) AS {p}" for p in POLLUTANTS)
_DRIVERS = ", ".join(f"('{p}', {p})" for p in POLLUTANTS)
_CHOSEN = f"{PLACE} AND device_id IN ($device)"
DRIVER = Panel(
    "Pollutant driving the index", "bargauge",
    "SELECT pollutant, sum(n)::bigint AS station_hours\nFROM (\n"
    "  SELECT aqi_pollutant AS pollutant, count(*) AS n FROM air_hourly\n"
    f"  WHERE {HOURS} AND {_CHOSEN} AND aqi_pollutant IS NOT NULL AND NOT {LONG_RANGE} GROUP BY 1\n"
    "  UNION ALL SELECT aqi_pollutant, count(*) FROM air_hourly\n"
    f"  WHERE {edge_hours('bucket', '3 hours')} AND {_CHOSEN} AND aqi_pollutant IS NOT NULL AND {LONG_RANGE}"
    " GROUP BY 1\n"
    f"  UNION ALL SELECT d.pollutant, d.n FROM (SELECT {_HOURS_SUMS} FROM air_aqi_3h\n"
    f"    WHERE {whole_buckets('bucket', '3 hours')} AND {_CHOSEN} AND {LONG_RANGE}) AS s,\n"
    f"    LATERAL (VALUES {_DRIVERS}) AS d(pollutant, n)\n"
    ") AS driven\nGROUP BY 1 HAVING sum(n) > 0\nORDER BY 2 DESC",
    "none", Grid(0, 17, 8, 9), "Station-hours of the range whose hourly VN_AQI each pollutant set.",
    columns=("pollutant", "station_hours"),
)
DAILY = Panel(
    "Daily VN_AQI", "table",
    "SELECT bucket AS day, device_id, province, district, aqi, aqi_category, aqi_pollutant,\n"
    "  round(pm25_mean::numeric, 1) AS pm25_mean, round(pm10_mean::numeric, 1) AS pm10_mean\n"
    f"FROM air_daily WHERE {DAYS} AND {PLACE} AND device_id IN ($device)\n"
    "ORDER BY day DESC, aqi DESC NULLS LAST, device_id\nLIMIT 1000",
    "none", Grid(8, 17, 16, 9),
    "Daily VN_AQI per station (PM 24-hour means, gases' largest hourly means, 8-hour O3); today so far.",
    columns=("day", "device_id", "province", "district", "aqi", "aqi_category", "aqi_pollutant", "pm25_mean",
             "pm10_mean"),
    steps=AQI_STEPS, colour_by="aqi", value_colours=AQI_CATEGORY_COLOURS, links=(TO_DEVICE,),
)

PROVINCES = Panel(
    "Daily VN_AQI per province", "bargauge",
    "SELECT province, max(aqi) AS aqi\n"
    f"FROM air_daily_province WHERE {DAYS} AND province IN ($province) AND aqi IS NOT NULL\n"
    "GROUP BY province\nORDER BY 2 DESC",
    "none", Grid(0, 26, 24, 7), "Worst daily VN_AQI of each province's districts over the days of the range.",
    columns=("province", "aqi"), steps=AQI_STEPS,
)

AIR = Dashboard(
    uid="urbanpulse-air",
    title="urbanpulse — air quality",
    description="VN_AQI (Decision 1459/QĐ-TCMT) hourly and daily, PM trends and what drives the index.",
    variables=(PROVINCE, DISTRICT, device_variable("air")),
    panels=(AQI_STATION, AQI_DISTRICT, PM25, PM10, DRIVER, DAILY, PROVINCES),
    annotations=(events_annotation("air", chosen=EVENTS_OF_DEVICES),),
)
