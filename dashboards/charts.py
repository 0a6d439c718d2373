"""The daily briefing's PNG charts, drawn with matplotlib (Agg, no display needed)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from urbanpulse.contract import LINE_NETWORK
from urbanpulse.dashboards.model import AQI_STEPS, SEVERITY_COLOURS, SLOW_MBPS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from urbanpulse.dashboards.report import Briefing


def _rgb(css: str) -> str | tuple[float, float, float]:
    if css.startswith("rgb("):
        r, g, b = (int(x) / 255 for x in css[4:-1].split(","))
        return (r, g, b)
    return css


def aqi_colour(aqi: float) -> str | tuple[float, float, float]:
    """The official VN_AQI category colour of ``aqi``."""
    colour = AQI_STEPS[0][1]
    for start, css in AQI_STEPS[1:]:
        if start is not None and aqi >= start:
            colour = css
    return _rgb(colour)


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _empty(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def draw(briefing: Briefing, out_dir: Path) -> dict[str, str]:
    """Draw every chart of ``briefing`` into ``out_dir``; returns section -> file name."""
    images = {}
    fig, ax = plt.subplots(figsize=(8, 3.5))
    rows = [(str(r[0]), float(r[1])) for r in briefing.aqi.rows if r[1] is not None]
    ax.bar([p for p, _ in rows], [a for _, a in rows], color=[aqi_colour(a) for _, a in rows], edgecolor="#444")
    ax.set_ylabel("daily VN_AQI")
    ax.set_title("Daily VN_AQI per province (worst district)")
    if not rows:
        _empty(ax)
    images["aqi"] = _save(fig, out_dir / "aqi_by_province.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    speeds = [(str(r[0]), float(r[1])) for r in briefing.speed.rows if r[1] is not None][::-1]
    ax.barh([p for p, _ in speeds], [s for _, s in speeds],
            color=["#d62728" if s < SLOW_MBPS else "#2ca02c" for _, s in speeds])
    ax.axvline(SLOW_MBPS, color="#333", linestyle="--", label=f"{SLOW_MBPS:g} Mbit/s")
    ax.set_xlabel("median download, Mbit/s")
    ax.set_title(f"Download per province ({LINE_NETWORK} tests)")
    ax.legend(loc="lower right")
    if not speeds:
        _empty(ax)
    images["speed"] = _save(fig, out_dir / "speed_ranking.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    index = briefing.hot_spots.columns.index("congestion_index")
    spots = [(str(r[0]), float(r[index])) for r in briefing.hot_spots.rows[:10] if r[index] is not None][::-1]
    ax.barh([d for d, _ in spots], [c for _, c in spots], color="#ff7e00")
    ax.set_xlim(0, 1)
    ax.set_xlabel("congestion index (1 - speed / typical)")
    ax.set_title("Traffic hot spots")
    if not spots:
        _empty(ax)
    images["hot_spots"] = _save(fig, out_dir / "hot_spots.png")

    images["timeline"] = _timeline(briefing, out_dir)
    return images


def _timeline(briefing: Briefing, out_dir: Path) -> str:
    """The events opened per hour of the briefing's local day, stacked by severity."""
    fig, ax = plt.subplots(figsize=(8, 3))
    colours = dict(SEVERITY_COLOURS)
    bottoms: dict[datetime, float] = {}
    zone = ZoneInfo(briefing.timezone)  # the briefing's day is a local day: its hours are read in its zone
    midnight = datetime.combine(briefing.day, time(0), zone)
    for severity, colour in colours.items():
        points = [(r[0], float(r[2])) for r in briefing.timeline.rows if r[1] == severity]
        if not points:  # no bar: no legend entry either (it would take the default colour, not the severity's)
            continue
        times = [t if isinstance(t, datetime) else datetime.fromtimestamp(float(t), UTC) for t, _ in points]
        stamps = mdates.date2num(times)  # type: ignore[no-untyped-call]
        counts = [n for _, n in points]
        ax.bar(stamps, counts, width=1 / 24, bottom=[bottoms.get(t, 0.0) for t in times], color=colour,
               label=severity, align="edge")
        for t, n in zip(times, counts, strict=True):
            bottoms[t] = bottoms.get(t, 0.0) + n
    ax.set_xlim(mdates.date2num([midnight, midnight + timedelta(days=1)]))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    ax.set_ylabel("events opened")
    ax.set_title("Events per hour by severity")
    if briefing.timeline.rows:
        ax.legend(loc="upper left")
    else:
        _empty(ax)
    return _save(fig, out_dir / "events_timeline.png")
