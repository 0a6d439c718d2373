"""The dashboards, declared as data: each panel is one row of a tuple, each variable too.

A panel is its title, visualisation, SQL (with Grafana's macros and template variables), result format,
unit and grid position; :mod:`urbanpulse.dashboards.render` turns these rows into dashboard JSON with
grafana-foundation-sdk. Adding a panel adds a row here, and the tests run its SQL against a real
database for three time ranges, so every query below must stay range-bounded (``$__timeFilter``).

Time series queries return ``time`` (via ``$__timeGroupAlias``), a ``metric`` text column naming the
series, and one numeric value column, ordered by time: Grafana pivots that long result into one
series per ``metric``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from urbanpulse.dashboards.sqlquery import QueryFormat

PanelType = Literal["timeseries", "table"]


@dataclass(frozen=True, slots=True)
class Grid:
    """Position on Grafana's 24-column grid (``h`` in rows of 30 px)."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel with one SQL query."""

    title: str
    type: PanelType
    sql: str
    format: QueryFormat
    unit: str
    grid: Grid
    description: str = ""
    columns: tuple[str, ...] = ()  # table panels: the columns the query returns, in order
    threshold: float | None = None  # time series: drawn as a dashed line (e.g. a target speed)


@dataclass(frozen=True, slots=True)
class Variable:
    """A multi-value template variable with an "All" option (all values, each quoted in SQL)."""

    name: str
    label: str
    type: Literal["query", "custom"]
    query: str  # query: SQL returning one text column; custom: comma-separated values
    description: str = ""


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    time_from: str = "now-6h"
    refresh: str = "30s"


ISPEED_TARGET_MBPS = 40.0

KIND = Variable(
    "kind", "Kind", "custom", "air,traffic,ispeed", "Device kinds shown by the reading-rate and event panels."
)
PROVINCE = Variable(
    "province",
    "Province",
    "query",
    "SELECT DISTINCT province FROM ispeed_readings WHERE $__timeFilter(time) ORDER BY 1",
    "Provinces with speed tests in the time range.",
)

PM25 = Panel(
    title="PM2.5 per air station",
    type="timeseries",
    sql="""SELECT
  $__timeGroupAlias(time, $__interval),
  device_id AS metric,
  avg(pm25) AS pm25
FROM air_readings
WHERE $__timeFilter(time)
GROUP BY 1, 2
ORDER BY 1, 2""",
    format="time_series",
    unit="conμgm3",
    grid=Grid(0, 0, 12, 8),
    description="Mean PM2.5 mass concentration of each air-quality station per interval.",
)

TRAFFIC_SPEED = Panel(
    title="Mean traffic speed per detector",
    type="timeseries",
    sql="""SELECT
  $__timeGroupAlias(time, $__interval),
  device_id AS metric,
  avg(speed_kmh) AS speed_kmh
FROM traffic_readings
WHERE $__timeFilter(time)
GROUP BY 1, 2
ORDER BY 1, 2""",
    format="time_series",
    unit="velocitykmh",
    grid=Grid(12, 0, 12, 8),
    description="Mean vehicle speed reported by each traffic detector per interval.",
)

ISPEED_DOWNLOAD = Panel(
    title="Median download speed per province",
    type="timeseries",
    sql="""SELECT
  $__timeGroupAlias(time, $__interval),
  province AS metric,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps) AS download_mbps
FROM ispeed_readings
WHERE $__timeFilter(time) AND province IN ($province)
GROUP BY 1, 2
ORDER BY 1, 2""",
    format="time_series",
    unit="Mbits",
    grid=Grid(0, 8, 12, 8),
    description=f"Median download throughput of mobile speed tests; the dashed line is the "
    f"{ISPEED_TARGET_MBPS:g} Mbit/s target.",
    threshold=ISPEED_TARGET_MBPS,
)

READING_RATE = Panel(
    title="Readings per minute by kind",
    type="timeseries",
    sql="""SELECT
  $__timeGroupAlias(time, $__interval),
  kind AS metric,
  count(*) * 60000.0 / $__interval_ms AS readings_per_minute
FROM (
  SELECT time, 'air' AS kind FROM air_readings WHERE $__timeFilter(time)
  UNION ALL
  SELECT time, 'traffic' FROM traffic_readings WHERE $__timeFilter(time)
  UNION ALL
  SELECT time, 'ispeed' FROM ispeed_readings WHERE $__timeFilter(time)
) AS readings
WHERE kind IN ($kind)
GROUP BY 1, 2
ORDER BY 1, 2""",
    format="time_series",
    unit="short",
    grid=Grid(12, 8, 12, 8),
    description="Stored readings per minute of measurement time, by device kind.",
)

EVENTS = Panel(
    title="Events",
    type="table",
    sql="""SELECT
  device_id AS device,
  metric,
  severity,
  opened_at,
  resolved_at,
  peak_score,
  status
FROM events
WHERE kind IN ($kind)
  AND opened_at <= $__timeTo()
  AND (status <> 'resolved' OR resolved_at >= $__timeFrom())
ORDER BY status = 'resolved', peak_score DESC, opened_at DESC
LIMIT 200""",
    format="table",
    unit="none",
    grid=Grid(0, 16, 14, 9),
    description="Events active at any moment of the time range: still open (or acknowledged) first, then resolved, "
    "worst first.",
    columns=("device", "metric", "severity", "opened_at", "resolved_at", "peak_score", "status"),
)

DEAD_LETTERS = Panel(
    title="Dead letters by reason",
    type="table",
    sql="""SELECT
  reason,
  field,
  kind,
  count(*) AS messages,
  max(received_at) AS last_received_at
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY reason, field, kind
ORDER BY messages DESC, last_received_at DESC
LIMIT 100""",
    format="table",
    unit="none",
    grid=Grid(14, 16, 10, 9),
    description="Messages the gateway refused in the time range, grouped by reason.",
    columns=("reason", "field", "kind", "messages", "last_received_at"),
)

CITY = Dashboard(
    uid="urbanpulse-city",
    title="urbanpulse — city telemetry",
    description="Air quality, traffic and mobile speed tests of the city, with ingest health.",
    tags=("urbanpulse", "iot"),
    variables=(KIND, PROVINCE),
    panels=(PM25, TRAFFIC_SPEED, ISPEED_DOWNLOAD, READING_RATE, EVENTS, DEAD_LETTERS),
)

DASHBOARDS: tuple[Dashboard, ...] = (CITY,)
