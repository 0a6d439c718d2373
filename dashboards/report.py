"""The operations centre's daily briefing: one HTML page with PNG charts, from the dashboards' own queries.

``urbanpulse report --date D --out DIR`` writes ``DIR/index.html`` and one PNG per chart. Each section runs
a panel's SQL (expanded as Grafana would, every variable on "All", the range being day ``D`` from
midnight to midnight in ``StorageSettings.day_timezone``), so the bulletin and the dashboards never
disagree:

| section | panel |
|---|---|
| Air quality by province | air: "Daily VN_AQI per province" |
| download ranking (4G tests) against 40 Mbit/s | network: "Provinces ranked by median download" |
| Traffic hot spots | traffic: "Hot spots" |
| Incidents of the day | events: "Incidents by state", "Event timeline", "Events" |

:func:`collect` is the I/O (one connection, read-only role when it exists), :func:`html` is pure,
:mod:`urbanpulse.dashboards.charts` draws the PNGs.
"""

from __future__ import annotations

import html as htmllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from urbanpulse.contract import LINE_NETWORK
from urbanpulse.dashboards import air, events, network, traffic
from urbanpulse.dashboards.common import DISTRICT, OPERATOR, PROVINCE, device_variable
from urbanpulse.dashboards.macros import expand
from urbanpulse.dashboards.model import SLOW_MBPS, Panel, Variable

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: Rows


@dataclass(frozen=True, slots=True)
class Briefing:
    """What the bulletin shows for one day."""

    day: date
    timezone: str
    aqi: Table  # province, aqi
    speed: Table  # province, download_mbps
    hot_spots: Table
    states: Table  # open, acknowledged, resolved
    timeline: Table  # time, severity, events
    events: Table


def day_range(day: date, timezone: str) -> tuple[datetime, datetime]:
    """Midnight to midnight of ``day`` in ``timezone``, in UTC."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def _run(conn: psycopg.Connection[Any], sql: str) -> Table:
    cur = conn.execute(sql.encode())
    return Table(tuple(c.name for c in cur.description or ()), cur.fetchall())


def _values(conn: psycopg.Connection[Any], variables: Sequence[Variable], lo: datetime, hi: datetime
            ) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {}
    for variable in variables:
        sql = expand(variable.query, time_from=lo, time_to=hi, interval=timedelta(hours=1), variables=chosen)
        chosen[variable.name] = [str(r[0]) for r in _run(conn, sql).rows] or [""]
    return chosen


def collect(dsn: str, day: date, timezone: str = "Asia/Ho_Chi_Minh") -> Briefing:
    """Run the briefing's panels for ``day`` against the database at ``dsn``."""
    lo, hi = day_range(day, timezone)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'urbanpulse_grafana'").fetchone():
            conn.execute("SET ROLE urbanpulse_grafana")  # what Grafana may read, and nothing more
        variables: dict[str, list[str]] = _values(conn, (PROVINCE, DISTRICT, OPERATOR), lo, hi)
        variables |= {"device": _values(conn, (PROVINCE, DISTRICT, device_variable("traffic")), lo, hi)["device"],
                      "network": [LINE_NETWORK]}  # the line's network, as the slow-province incidents count

        def run(panel: Panel, interval: timedelta = timedelta(hours=1)) -> Table:
            return _run(conn, expand(panel.sql, time_from=lo, time_to=hi, interval=interval, variables=variables))

        return Briefing(day, timezone, run(air.PROVINCES), run(network.RANKING), run(traffic.HOT_SPOTS),
                        run(events.STATES), run(events.TIMELINE), run(events.EVENTS))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return htmllib.escape(str(value))


def _table(table: Table, columns: Sequence[str] | None = None, limit: int = 50) -> str:
    picked = [c for c in (columns or table.columns) if c in table.columns]
    index = [table.columns.index(c) for c in picked]
    head = "".join(f"<th>{htmllib.escape(c.replace('_', ' '))}</th>" for c in picked)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row[i])}</td>" for i in index) + "</tr>" for row in table.rows[:limit])
    if not table.rows:
        body = f'<tr><td colspan="{len(picked)}">none</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
img{max-width:100%;display:block;margin:1em 0}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
.figures span{display:inline-block;margin-right:2em;font-size:1.2em}"""


def html(briefing: Briefing, images: Mapping[str, str]) -> str:
    """The bulletin page; ``images`` maps a section (aqi, speed, hot_spots, timeline) to its PNG's file name."""
    slow = [r for r in briefing.speed.rows if r[1] is not None and float(r[1]) < SLOW_MBPS]
    states = dict(zip(briefing.states.columns, briefing.states.rows[0] if briefing.states.rows else (), strict=False))

    def img(key: str, alt: str) -> str:
        return f'<img src="{htmllib.escape(images[key])}" alt="{htmllib.escape(alt)}">' if key in images else ""

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>urbanpulse daily briefing {briefing.day}</title>
<style>{STYLE}</style></head><body>
<h1>Daily briefing — {briefing.day:%A %d %B %Y}</h1>
<p>Day from midnight to midnight, {htmllib.escape(briefing.timezone)}.
Figures from the urbanpulse dashboards' queries.</p>
<h2>Air quality by province (VN_AQI)</h2>
{img("aqi", "Daily VN_AQI per province")}
{_table(briefing.aqi)}
<h2>Download speed by province ({LINE_NETWORK} tests)</h2>
<p>{len(slow)} of {len(briefing.speed.rows)} provinces under {SLOW_MBPS:g} Mbit/s (median download).</p>
{img("speed", "Median download per province against 40 Mbit/s")}
{_table(briefing.speed)}
<h2>Traffic hot spots</h2>
{img("hot_spots", "Most congested segments")}
{_table(briefing.hot_spots, limit=10)}
<h2>Incidents and events of the day</h2>
<p class="figures">{"".join(f"<span>{htmllib.escape(k)}: <b>{_cell(v)}</b></span>" for k, v in states.items())}</p>
{img("timeline", "Events opened per hour by severity")}
{_table(briefing.events, ("device_id", "kind", "metric", "severity", "status", "province", "district",
                          "opened_at", "resolved_at"))}
</body></html>
"""


def write_report(dsn: str, day: date, out_dir: Path, timezone: str = "Asia/Ho_Chi_Minh") -> Path:
    """Collect, draw and write the bulletin of ``day`` under ``out_dir``; returns the HTML page's path."""
    from urbanpulse.dashboards.charts import draw  # noqa: PLC0415 - matplotlib only when reporting

    briefing = collect(dsn, day, timezone)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = draw(briefing, out_dir)
    page = out_dir / "index.html"
    page.write_text(html(briefing, images), encoding="utf-8")
    return page
