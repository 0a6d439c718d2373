"""Traffic (uid ``urbanpulse-traffic``): volume, speed, occupancy and congestion index by district and
segment, hot spots, and today against the typical week.

The panels read the per-detector rollups with the registry's place and, for congestion, the segment's
typical speed for the hour of week -- the definitions of the ``traffic_15m`` / ``traffic_1h`` views, written
out so that a filter on district or device reaches the rows before the typical-speed join (several times
faster on a month of 500 devices than the views). Time series read ``traffic_device_15m`` while Grafana's
interval is under an hour and ``traffic_device_1h`` from an hour on (ranges of about two days and more);
the hot-spot table reads the hourly rollup for ranges over a day. On hourly rows the congestion index is
that of each detector-hour's speed (vehicle-weighted), rather than of each quarter-hour.
"""

from __future__ import annotations

from urbanpulse.dashboards.common import DISTRICT, PROVINCE, TO_DEVICE, device_variable, events_annotation, overlapping
from urbanpulse.dashboards.model import CONGESTION_STEPS, Dashboard, Grid, Panel

COLUMNS = "bucket, device_id, readings, vehicles, speed_kmh, speed_x_vehicles, occupancy_pct"
# Hourly buckets once the interval is an hour or more (multiples of an hour: they nest, so sums are exact),
# the hourly rollup for tables over more than a day; the false branch is pruned when the query is planned.
HOURLY_INTERVAL = "$__interval_ms >= 3600000"
LONG_RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '1 day'"


def source(hourly: str) -> str:
    """The per-detector rollup rows ``b`` of the buckets overlapping the range: ``traffic_device_1h`` where
    ``hourly`` holds (a condition on constants), ``traffic_device_15m`` otherwise."""
    return (
        f"(SELECT {COLUMNS} FROM traffic_device_15m WHERE NOT ({hourly}) AND {overlapping('bucket', '15 minutes')}\n"
        f" UNION ALL SELECT {COLUMNS} FROM traffic_device_1h WHERE {hourly} AND {overlapping('bucket', '1 hour')})"
        " AS b"
    )


def joins(hourly: str = HOURLY_INTERVAL) -> str:
    return f"{source(hourly)}\nJOIN grafana_devices AS d USING (device_id)\n"


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
WEIGHTED_INDEX = f"sum({INDEX} * b.vehicles) / nullif(sum(b.vehicles) FILTER (WHERE t.speed_kmh > 0), 0)"
SPEED = "sum(b.speed_x_vehicles) / nullif(sum(b.vehicles), 0)"


def _grouped(key: str, sums: str, value: str, where: str, typical: bool) -> str:
    """Sum per 15-minute bucket first (a cheap hash aggregate on timestamps), then regroup those few rows by
    ``$__interval`` (Grafana's epoch arithmetic is numeric, slow on every raw row) and combine the sums."""
    return (
        f"SELECT $__timeGroupAlias(bucket, $__interval), metric, {value}\n"
        f"FROM (\n  SELECT b.bucket, {key} AS metric, {sums}\n"
        f"  FROM {joins()}{TYPICAL if typical else ''}  WHERE {where}\n  GROUP BY 1, 2\n) AS q\n"
        "GROUP BY 1, 2\nORDER BY 1, 2"
    )


def _district(title: str, sums: str, value: str, unit: str, grid: Grid, description: str, typical: bool = False,
              **extra: object) -> Panel:
    return Panel(
        title, "timeseries", _grouped("d.district", sums, value, PLACE, typical),
        unit, grid, description, min_interval="15m", **extra,  # type: ignore[arg-type]
    )


VEHICLE_SUMS = "sum(b.vehicles) AS v, sum(b.speed_x_vehicles) AS sv"
VOLUME = _district("Vehicles per district", VEHICLE_SUMS, "sum(v) AS vehicles", "short", Grid(0, 0, 12, 8),
                   "Vehicles counted by the district's detectors per interval.", bars=True)
SPEED_PANEL = _district("Speed per district", VEHICLE_SUMS, "sum(sv) / nullif(sum(v), 0) AS speed_kmh",
                        "velocitykmh", Grid(12, 0, 12, 8), "Vehicle-weighted mean speed of the district's segments.")
OCCUPANCY = _district("Occupancy per district", "sum(b.occupancy_pct * b.readings) AS o, sum(b.readings) AS n",
                      "sum(o) / sum(n) AS occupancy_pct",
                      "percent", Grid(0, 8, 12, 8), "Mean share of time a detector's loop is occupied.")
CONGESTION = _district(
    "Congestion index per district",
    f"sum({INDEX} * b.vehicles) AS cv, sum(b.vehicles) FILTER (WHERE t.speed_kmh > 0) AS v",
    "sum(cv) / nullif(sum(v), 0) AS congestion_index", "percentunit", Grid(12, 8, 12, 8),
    "1 - speed / typical speed for the hour of week, vehicle-weighted: 0 as fast as usual, 1 standing still.",
    typical=True, steps=CONGESTION_STEPS, threshold_style="dashed", max_value=1.0,
)
# Per segment, hundreds of series: the interval's bucket as a timestamp (date_bin) rather than Grafana's
# numeric epoch arithmetic, which costs more than the rest of the query on 100,000s of rows.
BIN = "date_bin($__interval_ms * interval '1 millisecond', b.bucket, '2000-01-03 00:00+00') AS time"
# When Grafana's interval is the source rollup's own bucket (15 minutes, or an hour: ranges up to about a
# week) its rows are the answer as they are; other intervals regroup them. The other branch is pruned.
AS_STORED = "$__interval_ms IN (900000, 3600000)"
SEGMENT_SPEED = Panel(
    "Speed per segment", "timeseries",
    f"SELECT b.bucket AS time, b.device_id AS metric, b.speed_kmh\nFROM {joins()}WHERE {SEGMENTS} AND {AS_STORED}\n"
    "UNION ALL\n"
    f"SELECT {BIN}, b.device_id, {SPEED}\nFROM {joins()}WHERE {SEGMENTS} AND NOT {AS_STORED}\n"
    "GROUP BY 1, 2\nORDER BY 1, 2",
    "velocitykmh", Grid(0, 16, 12, 8), "Vehicle-weighted mean speed of each chosen segment (detector).",
    min_interval="15m",
)
TYPICAL_WEEK = Panel(
    "Today against the typical week", "timeseries",
    "SELECT time, v.metric, v.speed AS speed_kmh\n"
    f"FROM (\n  SELECT {BIN}, {SPEED} AS measured,\n"
    "    sum(t.speed_kmh * b.vehicles) / nullif(sum(b.vehicles) FILTER (WHERE t.speed_kmh IS NOT NULL), 0) AS typical\n"
    f"  FROM {joins()}{TYPICAL}  WHERE {SEGMENTS}\n  GROUP BY 1\n) AS q\n"
    "CROSS JOIN LATERAL (VALUES ('measured', measured), ('typical', typical)) AS v(metric, speed)\n"
    "WHERE v.speed IS NOT NULL\nORDER BY 1, 2",
    "velocitykmh", Grid(12, 16, 12, 8),
    "Speed of the chosen segments against their typical speed for the same hour of the week (last weeks).",
    min_interval="15m",
)
HOT_SPOTS = Panel(
    "Hot spots", "table",
    "SELECT b.device_id, d.province, d.district,\n"
    f"  round(({WEIGHTED_INDEX})::numeric, 2) AS congestion_index,\n"
    f"  round(({SPEED})::numeric, 1) AS speed_kmh,\n"
    "  round((sum(t.speed_kmh * b.vehicles) / nullif(sum(b.vehicles) FILTER (WHERE t.speed_kmh IS NOT NULL), 0))"
    "::numeric, 1) AS typical_speed_kmh,\n"
    "  sum(b.vehicles)::bigint AS vehicles\n"
    f"FROM {joins(LONG_RANGE)}{TYPICAL}WHERE {SEGMENTS}\n"
    "GROUP BY b.device_id, d.province, d.district\nORDER BY congestion_index DESC NULLS LAST, b.device_id\nLIMIT 20",
    "none", Grid(0, 24, 24, 8), "The most congested segments of the range; click one for its device page.",
    columns=("device_id", "province", "district", "congestion_index", "speed_kmh", "typical_speed_kmh", "vehicles"),
    steps=CONGESTION_STEPS, colour_by="congestion_index", links=(TO_DEVICE,),
)

TRAFFIC = Dashboard(
    uid="urbanpulse-traffic",
    title="urbanpulse — traffic",
    description="Road traffic from the detectors: volume, speed, occupancy, congestion against the typical week.",
    variables=(PROVINCE, DISTRICT, device_variable("traffic")),
    panels=(VOLUME, SPEED_PANEL, OCCUPANCY, CONGESTION, SEGMENT_SPEED, TYPICAL_WEEK, HOT_SPOTS),
    annotations=(events_annotation("traffic"),),
)
