"""What a dashboard is made of, as data: panels, variables, links and annotations are frozen rows.

A dashboard module (``overview.py``, ``air.py``, ...) declares a tuple of :class:`Panel` rows;
:mod:`urbanpulse.dashboards.render` turns them into Grafana JSON with grafana-foundation-sdk, and the
tests run every query against a real database. Adding a panel adds a row.

Query conventions (the tests hold every panel to them):

- ``timeseries``: ``time`` first (``$__timeGroupAlias``), a ``metric`` text column naming the series, one
  or more numeric columns, ordered by time -- Grafana pivots that long result into one series per metric.
- ``geomap``: a table with ``lat`` and ``lon`` (float) columns; ``table``: exactly :attr:`Panel.columns`.
- ``stat`` and ``bargauge``: a table with at least one numeric column (bargauge: a name column first).
- Every query is bounded by the dashboard's range (``$__timeFilter``, or ``$__timeFrom()`` and
  ``$__timeTo()``), except panels marked ``current=True``, which show the registry's present state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from urbanpulse.contract import SLOW_DOWNLOAD_MBPS
from urbanpulse.ingest.aqi import CATEGORIES

PanelType = Literal["timeseries", "table", "stat", "geomap", "bargauge"]
Steps = tuple[tuple[float | None, str], ...]  # (from value, colour); the first step starts at -infinity

SLOW_MBPS = SLOW_DOWNLOAD_MBPS  # drawn on the network panels (the rollups use the configured line)

# VN_AQI categories (Decision 1459/QĐ-TCMT), from their one definition in ingest/aqi.py: integer AQI,
# category from its first value. Grafana colours a value with the last step it reaches.
def _rgb(colour: tuple[int, int, int]) -> str:
    return f"rgb({colour[0]}, {colour[1]}, {colour[2]})"


AQI_STEPS: Steps = tuple(
    (None if i == 0 else CATEGORIES[i - 1][0] + 1, _rgb(rgb)) for i, (_, _, _, rgb) in enumerate(CATEGORIES)
)
AQI_CATEGORY_COLOURS: tuple[tuple[str, str], ...] = tuple((key, _rgb(rgb)) for _, key, _, rgb in CATEGORIES)
SPEED_STEPS: Steps = ((None, "red"), (SLOW_MBPS, "green"))
SHARE_STEPS: Steps = ((None, "green"), (0.25, "orange"), (0.5, "red"))
STATUS_STEPS: Steps = ((None, "grey"), (1, "red"), (2, "green"))  # 0 disabled, 1 offline, 2 online
CONGESTION_STEPS: Steps = ((None, "green"), (0.3, "orange"), (0.6, "red"))
SEVERITY_COLOURS: tuple[tuple[str, str], ...] = (("info", "blue"), ("warning", "orange"), ("critical", "red"))


@dataclass(frozen=True, slots=True)
class Grid:
    """Position on Grafana's 24-column grid (``h`` in rows of 30 px)."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Link:
    """A data link: ``url`` may use ``${__data.fields.<column>}``, ``${__url_time_range}``, variables."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel: its first query is ``sql`` (refId A); ``layers`` are more queries (B, C, ...) for maps."""

    title: str
    type: PanelType
    sql: str
    unit: str
    grid: Grid
    description: str = ""
    columns: tuple[str, ...] = ()  # table: the columns, in order; others: columns that must be present
    min_interval: str | None = None  # Grafana's "min interval": never group finer than the rollup
    time_from: str | None = None  # relative time override ("6h"): the panel always shows the last 6 h
    steps: Steps = ()  # thresholds (colours by value)
    threshold_style: Literal["off", "dashed", "area"] = "off"  # time series: steps as a line or as bands
    colour_by: str | None = None  # table: column coloured by ``steps``; geomap: the colour field
    value_colours: tuple[tuple[str, str], ...] = ()  # text value -> colour (category, severity cells)
    links: tuple[Link, ...] = ()
    bars: bool = False  # time series drawn as stacked bars (counts per interval)
    layers: tuple[str, ...] = ()  # geomap: more queries, one marker layer each
    current: bool = False  # shows the present state, not bounded by the time range
    max_value: float | None = None


@dataclass(frozen=True, slots=True)
class Variable:
    """A multi-value template variable with "All"; ``query`` SQL returns one text column.

    ``single`` makes it one value without "All" (the device page); ``default`` opens it on one value.
    """

    name: str
    label: str
    query: str
    description: str = ""
    single: bool = False
    default: str | None = None  # the value chosen when the dashboard opens (else "All")


@dataclass(frozen=True, slots=True)
class Annotation:
    """Events drawn on a dashboard's time axis: SQL returning ``time``, ``timeend``, ``text``, ``tags``."""

    name: str
    sql: str
    colour: str = "red"


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    annotations: tuple[Annotation, ...] = ()
    tags: tuple[str, ...] = ("urbanpulse",)
    time_from: str = "now-24h"
    refresh: str = "1m"
