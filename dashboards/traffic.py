"""Traffic (uid ``urbanpulse-traffic``): volume, speed, occupancy and congestion index by district and
segment, hot spots, and today against the typical week.

While Grafana's interval is under an hour the panels read ``traffic_device_15m`` with the registry's place
and, for congestion, the segment's typical speed for the hour of week -- the definitions of the
``traffic_15m`` view, written out so that a filter on district or device reaches the rows before the
typical-speed join. From an hour on (ranges of about two days and more) they read the coarser rollups of
ingest migration 018, which hold the same sums: the district series ``traffic_district_1h`` (the sums against
the typical speeds in force included), today against the typical week the same when every detector of the
chosen districts is chosen (else the detector-hours of ``traffic_device_1h``), speed per segment
``traffic_device_3h`` at multiples of 3 hours, the hot-spot table (ranges over a day) ``traffic_device_1d``
for the UTC days wholly in the range and the detector-hours at its edges. On hourly rows the congestion
index is that of each detector-hour's speed (vehicle-weighted), rather than of each quarter-hour. The
branch that does not apply is pruned when the query is planned (its condition is on constants).
"""

from __future__ import annotations

from urbanpulse.dashboards import common
from urbanpulse.dashboards.common import (
    DISTRICT,
    EVENTS_OF_DEVICES,
    LONG_RANGE,
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
from urbanpulse.dashboards.model import CONGESTION_STEPS, Dashboard, Grid, Panel
from urbanpulse.settings import StorageSettings, env_name

COLUMNS = "bucket, device_id, readings, vehicles, speed_kmh, speed_x_vehicles, occupancy_pct"
# Hourly or coarser buckets once the interval is an hour or more (multiples of an hour: they nest, so sums are
# exact), whole days and edge hours for tables over more than a day; the false branch is pruned when the
# query is planned.
HOURLY_INTERVAL = "$__interval_ms >= 3600000"


def source(hourly: str) -> str:
    """The per-detector rollup rows ``b`` of the buckets overlapping the range: ``traffic_device_1h`` where
    ``hourly`` holds (a condition on constants), ``traffic_device_15m`` otherwise."""
    return (
        f"(SELECT {COLUMNS} FROM traffic_device_15m WHERE NOT ({hourly}) AND {overlapping('bucket', '15 minutes')}\n"
        f" UNION ALL SELECT {COLUMNS} FROM traffic_device_1h WHERE {hourly} AND {overlapping('bucket', '1 hour')})"
        " AS b"
    )


QUARTER_HOURS = f"(SELECT {COLUMNS} FROM traffic_device_15m WHERE {overlapping('bucket', '15 minutes')}) AS b"


def joins() -> str:
    """The per-detector rows ``b`` (15-minute or hourly by the interval) with the registry's place ``d``."""
    return f"{source(HOURLY_INTERVAL)}\nJOIN grafana_devices AS d USING (device_id)\n"


PLACE = "d.province IN ($province) AND d.district IN ($district)"
# The device filter on the registry side: the same rows through the join, and the rollups' live parts (a
# plan per readings partition) are planned without a 200-value list each (planning 50 -> 10-25 ms).
SEGMENTS = f"{PLACE} AND d.device_id IN ($device)"
# The hour of week of each 15-minute step of the range (hourly buckets start on one too), computed once per
# step (a time-zone conversion per rollup row costs more than the rest of the query), then the segment's
# typical speed for it.
TYPICAL = (
    "JOIN (SELECT g AS bucket, hour_of_week(g, (SELECT storage_setting('day_timezone'))) AS how\n"
    "      FROM generate_series(date_bin('1 hour', $__timeFrom()::timestamptz - interval '1 hour',"
    " '2000-01-03 00:00+00'),\n"
    "                           $__timeTo()::timestamptz, interval '15 minutes') AS g\n"
    "      OFFSET 0) AS h ON h.bucket = b.bucket\n"  # OFFSET 0: computed here, not pulled up into the join
    "LEFT JOIN traffic_typical_speed AS t ON t.device_id = b.device_id AND t.hour_of_week = h.how\n"
)
# 1 - speed / typical speed, clamped to [0, 1]; NULL without a typical speed (as the traffic_15m view)
INDEX = "CASE WHEN t.speed_kmh > 0 THEN greatest(0, least(1, 1 - b.speed_kmh / t.speed_kmh)) END"
SPEED = "sum(b.speed_x_vehicles) / nullif(sum(b.vehicles), 0)"

# The place filter on a rollup that keeps each row's place (traffic_district_1h).
DISTRICT_PLACE = common.PLACE


def _grouped(key: str, sums: str, district_sums: str, value: str, typical: bool) -> str:
    """Sum per 15-minute bucket first (a cheap hash aggregate on timestamps), then regroup those few rows by
    ``$__interval`` (Grafana's epoch arithmetic is numeric, slow on every raw row) and combine the sums. From an
    hourly interval on, the sums come from ``traffic_district_1h`` as stored (a fifth of the detector-hours)."""
    return (
        f"SELECT $__timeGroupAlias(bucket, $__interval), metric, {value}\n"
        f"FROM (\n  SELECT b.bucket, {key} AS metric, {sums}\n"
        f"  FROM {QUARTER_HOURS}\n  JOIN grafana_devices AS d USING (device_id)\n{TYPICAL if typical else ''}"
        f"  WHERE {PLACE} AND NOT ({HOURLY_INTERVAL})\n  GROUP BY 1, 2\n"
        f"  UNION ALL\n  SELECT bucket, district, {district_sums}\n"
        "  FROM traffic_district_1h\n"
        f"  WHERE {HOURLY_INTERVAL} AND {overlapping('bucket', '1 hour')} AND {DISTRICT_PLACE}\n"
        ") AS q\nGROUP BY 1, 2\nORDER BY 1, 2"
    )


def _district(title: str, sums: str, district_sums: str, value: str, unit: str, grid: Grid, description: str,
              typical: bool = False, **extra: object) -> Panel:
    return Panel(
        title, "timeseries", _grouped("d.district", sums, district_sums, value, typical),
        unit, grid, description, min_interval="15m", **extra,  # type: ignore[arg-type]
    )


VEHICLE_SUMS = "sum(b.vehicles) AS v, sum(b.speed_x_vehicles) AS sv"
VOLUME = _district("Vehicles per district", VEHICLE_SUMS, "vehicles, speed_x_vehicles", "sum(v) AS vehicles", "short",
                   Grid(0, 0, 12, 8), "Vehicles counted by the district's detectors per interval.", bars=True)
SPEED_PANEL = _district("Speed per district", VEHICLE_SUMS, "vehicles, speed_x_vehicles",
                        "sum(sv) / nullif(sum(v), 0) AS speed_kmh", "velocitykmh", Grid(12, 0, 12, 8),
                        "Vehicle-weighted mean speed of the district's segments.")
OCCUPANCY = _district("Occupancy per district", "sum(b.occupancy_pct * b.readings) AS o, sum(b.readings) AS n",
                      "occupancy_x_readings, readings", "sum(o) / sum(n) AS occupancy_pct",
                      "percent", Grid(0, 8, 12, 8), "Mean share of time a detector's loop is occupied.")
# What an operator of a new installation needs to know: no typical speed, no congestion index.
def needs_history(subject: str = "Blank") -> str:
    """The sentence that says when the typical speeds are missing, opening with ``subject``."""
    return (f" {subject} for an hour of the week not seen in the last weeks"
            f" ({env_name('storage', 'typical_weeks')}, default {StorageSettings().typical_weeks}):"
            " a new installation shows it after a week of readings.")


NEEDS_HISTORY = needs_history()
CONGESTION = _district(
    "Congestion index per district",
    f"sum({INDEX} * b.vehicles) AS cv, sum(b.vehicles) FILTER (WHERE t.speed_kmh > 0) AS v",
    "congestion_x_vehicles, vehicles_congestion",
    "sum(cv) / nullif(sum(v), 0) AS congestion_index", "percentunit", Grid(12, 8, 12, 8),
    "1 - speed / typical speed for the hour of week, vehicle-weighted: 0 as fast as usual, 1 standing still."
    + NEEDS_HISTORY,
    typical=True, steps=CONGESTION_STEPS, threshold_style="dashed", max_value=1.0,
)


# Per segment, hundreds of series. When Grafana's interval is the source rollup's own bucket (15 minutes, or
# an hour: ranges up to about a week) its rows are the answer as they are; at whole multiples of 3 hours
# (3 h for a month, 6 h, 12 h, days) the 3-hour buckets wholly in the range come from traffic_device_3h (as
# they are at 3 h) and the hours at its edges from traffic_device_1h; other intervals regroup the 15-minute
# or hourly rows.
AS_STORED = "$__interval_ms IN (900000, 3600000)"
STORED_3H = "$__interval_ms = 10800000"
CHOSEN = f"device_id IN (SELECT device_id FROM grafana_devices AS d WHERE {SEGMENTS})"
_WHOLE_3H = f"FROM traffic_device_3h WHERE {whole_buckets('bucket', '3 hours')} AND {CHOSEN}"
SEGMENT_SPEED = Panel(
    "Speed per segment", "timeseries",
    f"SELECT date_part('epoch', b.bucket) AS time, b.device_id AS metric, b.speed_kmh\n"
    f"FROM {joins()}WHERE {SEGMENTS} AND {AS_STORED}\n"
    "UNION ALL\n"
    f"SELECT {interval_bin('b.bucket')}, b.device_id, {SPEED}\nFROM {joins()}WHERE {SEGMENTS} AND NOT {AS_STORED}"
    f" AND NOT {THREE_HOURLY}\nGROUP BY 1, 2\n"
    "UNION ALL\n"
    f"SELECT date_part('epoch', bucket), device_id, speed_kmh {_WHOLE_3H} AND {STORED_3H}\n"
    "UNION ALL\n"
    f"SELECT {interval_bin('b.bucket')}, b.device_id, {SPEED}\nFROM (\n"
    f"  SELECT {COLUMNS} {_WHOLE_3H} AND NOT {STORED_3H}\n"
    f"  UNION ALL SELECT {COLUMNS} FROM traffic_device_1h WHERE {edge_hours('bucket', '3 hours')} AND {CHOSEN}\n"
    f") AS b WHERE {THREE_HOURLY}\nGROUP BY 1, 2\n"
    "ORDER BY 1, 2",
    "velocitykmh", Grid(0, 16, 12, 8), "Vehicle-weighted mean speed of each chosen segment (detector).",
    min_interval="15m",
)
# Every detector of the chosen districts chosen (the device variable on "All"): the district sums of
# traffic_district_1h give the same figures as the detectors' own rows.
ALL_CHOSEN = (
    "NOT EXISTS (SELECT FROM grafana_devices WHERE kind = 'traffic' AND province IN ($province)"
    " AND district IN ($district) AND device_id NOT IN ($device))"
)
TYPICAL_WEEK = Panel(
    "Today against the typical week", "timeseries",
    "SELECT time, v.metric, v.speed AS speed_kmh\n"
    f"FROM (\n  SELECT {interval_bin('s.bucket')} AS time, sum(sv) / nullif(sum(v), 0) AS measured,"
    " sum(tv) / nullif(sum(vt), 0) AS typical\n  FROM (\n"
    "    SELECT b.bucket, b.speed_x_vehicles AS sv, b.vehicles AS v, t.speed_kmh * b.vehicles AS tv,\n"
    "      CASE WHEN t.speed_kmh IS NOT NULL THEN b.vehicles END AS vt\n"
    f"    FROM {joins()}{TYPICAL}    WHERE {SEGMENTS} AND NOT ({HOURLY_INTERVAL} AND {ALL_CHOSEN})\n"
    "    UNION ALL\n"
    "    SELECT bucket, speed_x_vehicles, vehicles, typical_x_vehicles, vehicles_typical FROM traffic_district_1h\n"
    f"    WHERE {HOURLY_INTERVAL} AND {ALL_CHOSEN} AND {overlapping('bucket', '1 hour')} AND {DISTRICT_PLACE}\n"
    "  ) AS s\n  GROUP BY 1\n) AS q\n"
    "CROSS JOIN LATERAL (VALUES ('measured', measured), ('typical', typical)) AS v(metric, speed)\n"
    "WHERE v.speed IS NOT NULL\nORDER BY 1, 2",
    "velocitykmh", Grid(12, 16, 12, 8),
    "Speed of the chosen segments against their typical speed for the same hour of the week (last weeks)."
    + NEEDS_HISTORY,
    min_interval="15m",
)
# Per detector-row sums: vehicles, speed x vehicles, typical speed x vehicles and the vehicles it applies to,
# congestion index x vehicles and the vehicles it applies to (the columns of traffic_device_1d).
ROW_SUMS = (
    "b.vehicles AS v, b.speed_x_vehicles AS sv, t.speed_kmh * b.vehicles AS tv,"
    " CASE WHEN t.speed_kmh IS NOT NULL THEN b.vehicles END AS vt,\n"
    f"    {INDEX} * b.vehicles AS cv, CASE WHEN t.speed_kmh > 0 THEN b.vehicles END AS vc"
)
DAY_SUMS = ("vehicles, speed_x_vehicles, typical_x_vehicles, vehicles_typical, congestion_x_vehicles,"
            " vehicles_congestion")
# Ranges over a day: the UTC days wholly in the range from traffic_device_1d, the hours at its edges from
# traffic_device_1h (the same detector-hours as all the range's hours); up to a day the 15-minute rows.
HOT_SPOT_ROWS = (
    f"  SELECT b.device_id, {ROW_SUMS}\n"
    f"  FROM (SELECT {COLUMNS} FROM traffic_device_15m WHERE NOT ({LONG_RANGE})"
    f" AND {overlapping('bucket', '15 minutes')}\n"
    f"        UNION ALL SELECT {COLUMNS} FROM traffic_device_1h WHERE {LONG_RANGE}"
    f" AND {edge_hours('bucket', '1 day')}) AS b\n"
    f"  {TYPICAL.replace(chr(10), chr(10) + '  ')}"
    f"WHERE b.{CHOSEN}\n"
    f"  UNION ALL\n  SELECT device_id, {DAY_SUMS} FROM traffic_device_1d\n"
    f"  WHERE {LONG_RANGE} AND {whole_buckets('bucket', '1 day')} AND {CHOSEN}\n"
)
HOT_SPOTS = Panel(
    "Hot spots", "table",
    "SELECT s.device_id, d.province, d.district,\n"
    "  round((sum(cv) / nullif(sum(vc), 0))::numeric, 2) AS congestion_index,\n"
    "  round((sum(sv) / nullif(sum(v), 0))::numeric, 1) AS speed_kmh,\n"
    "  round((sum(tv) / nullif(sum(vt), 0))::numeric, 1) AS typical_speed_kmh,\n"
    "  sum(v)::bigint AS vehicles\n"
    f"FROM (\n{HOT_SPOT_ROWS}) AS s\nJOIN grafana_devices AS d USING (device_id)\n"
    "GROUP BY s.device_id, d.province, d.district\nORDER BY congestion_index DESC NULLS LAST, s.device_id\nLIMIT 20",
    "none", Grid(0, 24, 24, 8), "The most congested segments of the range; click one for its device page."
    " Congestion index and typical speed:" + needs_history("blank"),
    columns=("device_id", "province", "district", "congestion_index", "speed_kmh", "typical_speed_kmh", "vehicles"),
    steps=CONGESTION_STEPS, colour_by="congestion_index", links=(TO_DEVICE,),
)

TRAFFIC = Dashboard(
    uid="urbanpulse-traffic",
    title="urbanpulse — traffic",
    description="Road traffic from the detectors: volume, speed, occupancy, congestion against the typical week.",
    variables=(PROVINCE, DISTRICT, device_variable("traffic")),
    panels=(VOLUME, SPEED_PANEL, OCCUPANCY, CONGESTION, SEGMENT_SPEED, TYPICAL_WEEK, HOT_SPOTS),
    annotations=(events_annotation("traffic", chosen=EVENTS_OF_DEVICES),),
)
