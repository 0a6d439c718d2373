"""Traffic (uid ``urbanpulse-traffic``): volume, speed, occupancy and congestion index by district and
segment, hot spots, and today against the typical week."""

from __future__ import annotations

from urbanpulse.dashboards.common import (
    DISTRICT,
    PLACE,
    PROVINCE,
    TO_DEVICE,
    device_variable,
    events_annotation,
    overlapping,
)
from urbanpulse.dashboards.model import CONGESTION_STEPS, Dashboard, Grid, Panel

QUARTERS = overlapping("bucket", "15 minutes")
SEGMENTS = f"{QUARTERS} AND {PLACE} AND device_id IN ($device)"


def _district(title: str, value: str, unit: str, grid: Grid, description: str, **extra: object) -> Panel:
    return Panel(
        title, "timeseries",
        f"SELECT $__timeGroupAlias(bucket, $__interval), district AS metric, {value}\n"
        f"FROM traffic_15m_district WHERE {QUARTERS} AND {PLACE}\n"
        "GROUP BY 1, 2\nORDER BY 1, 2",
        unit, grid, description, min_interval="15m", **extra,  # type: ignore[arg-type]
    )


VOLUME = _district("Vehicles per district", "sum(vehicles) AS vehicles", "short", Grid(0, 0, 12, 8),
                   "Vehicles counted by the district's detectors per interval.", bars=True)
SPEED = _district("Speed per district", "sum(speed_kmh * vehicles) / nullif(sum(vehicles), 0) AS speed_kmh",
                  "velocitykmh", Grid(12, 0, 12, 8), "Vehicle-weighted mean speed of the district's segments.")
OCCUPANCY = _district("Occupancy per district", "sum(occupancy_pct * readings) / sum(readings) AS occupancy_pct",
                      "percent", Grid(0, 8, 12, 8), "Mean share of time a detector's loop is occupied.")
CONGESTION = _district(
    "Congestion index per district",
    "sum(congestion_index * vehicles) / nullif(sum(vehicles) FILTER (WHERE congestion_index IS NOT NULL), 0)"
    " AS congestion_index",
    "percentunit", Grid(12, 8, 12, 8),
    "1 - speed / typical speed for the hour of week, vehicle-weighted: 0 as fast as usual, 1 standing still.",
    steps=CONGESTION_STEPS, threshold_style="dashed", max_value=1.0,
)
SEGMENT_SPEED = Panel(
    "Speed per segment", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), device_id AS metric,\n"
    "  sum(speed_kmh * vehicles) / nullif(sum(vehicles), 0) AS speed_kmh\n"
    f"FROM traffic_15m WHERE {SEGMENTS}\nGROUP BY 1, 2\nORDER BY 1, 2",
    "velocitykmh", Grid(0, 16, 12, 8), "Vehicle-weighted mean speed of each chosen segment (detector).",
    min_interval="15m",
)
TYPICAL = Panel(
    "Today against the typical week", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), v.metric, sum(v.speed * vehicles) / nullif(sum(vehicles), 0)"
    " AS speed_kmh\n"
    "FROM traffic_15m, LATERAL (VALUES ('measured', speed_kmh), ('typical', typical_speed_kmh)) AS v(metric, speed)\n"
    f"WHERE {SEGMENTS} AND v.speed IS NOT NULL\nGROUP BY 1, 2\nORDER BY 1, 2",
    "velocitykmh", Grid(12, 16, 12, 8),
    "Speed of the chosen segments against their typical speed for the same hour of the week (last weeks).",
    min_interval="15m",
)
HOT_SPOTS = Panel(
    "Hot spots", "table",
    "SELECT device_id, province, district,\n"
    "  round((sum(congestion_index * vehicles) / nullif(sum(vehicles) FILTER (WHERE congestion_index IS NOT NULL),"
    " 0))::numeric, 2) AS congestion_index,\n"
    "  round((sum(speed_kmh * vehicles) / nullif(sum(vehicles), 0))::numeric, 1) AS speed_kmh,\n"
    "  round((sum(typical_speed_kmh * vehicles) / nullif(sum(vehicles) FILTER (WHERE typical_speed_kmh IS NOT NULL),"
    " 0))::numeric, 1) AS typical_speed_kmh,\n"
    "  sum(vehicles) AS vehicles\n"
    f"FROM traffic_15m WHERE {SEGMENTS}\n"
    "GROUP BY device_id, province, district\nORDER BY congestion_index DESC NULLS LAST, device_id\nLIMIT 20",
    "none", Grid(0, 24, 24, 8), "The most congested segments of the range; click one for its device page.",
    columns=("device_id", "province", "district", "congestion_index", "speed_kmh", "typical_speed_kmh", "vehicles"),
    steps=CONGESTION_STEPS, colour_by="congestion_index", links=(TO_DEVICE,),
)

TRAFFIC = Dashboard(
    uid="urbanpulse-traffic",
    title="urbanpulse — traffic",
    description="Road traffic from the detectors: volume, speed, occupancy, congestion against the typical week.",
    variables=(PROVINCE, DISTRICT, device_variable("traffic")),
    panels=(VOLUME, SPEED, OCCUPANCY, CONGESTION, SEGMENT_SPEED, TYPICAL, HOT_SPOTS),
    annotations=(events_annotation("traffic"),),
)
