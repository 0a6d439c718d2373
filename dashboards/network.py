"""Mobile network (uid ``urbanpulse-network``): crowd-sourced speed tests (iSpeed) of the chosen radio networks
(4G when it opens: the 40 Mbit/s line is a 4G line) against that line -- medians per province and operator, share
of slow tests, ranking, map, trends. The rollups keep each network apart (ingest migration 025).

A median over several operators, hours or days is read off the rollups' counts of tests under fixed speeds
(:mod:`urbanpulse.ingest.speeds`, ingest migration 022): counts add up, medians do not (the tests-weighted mean
of the hourly medians, a few tests each, read near the tests' mean, and for right-skewed speeds showed a province whose
tests' median was 39.9 Mbit/s at 41.2, green). Under the line exactly when more than half of the tests were.
Days are the local days of the daily rollup (``URBANPULSE_STORAGE__DAY_TIMEZONE``).
"""

from __future__ import annotations

from urbanpulse.dashboards.common import (
    EVENTS_IN_PROVINCE,
    OPERATOR,
    PROVINCE,
    RADIO,
    events_annotation,
    overlapping,
)
from urbanpulse.dashboards.model import SHARE_STEPS, SLOW_MBPS, SPEED_STEPS, Dashboard, Grid, Panel
from urbanpulse.ingest.speeds import median_sql

CHOSEN = "province IN ($province) AND operator IN ($operator) AND network IN ($network)"
HOURS = f"{overlapping('bucket', '1 hour')} AND {CHOSEN}"
DAYS = f"{overlapping('bucket', '1 day')} AND {CHOSEN}"
MEDIAN = median_sql()
# A province is under the line when more than half of its tests are: the configured line (MEDIAN's steps hold 40).
UNDER_LINE = "sum(tests_below_line) * 2 > sum(tests)"


def _median(by: str, grid: Grid) -> Panel:
    return Panel(
        f"Median download per {by}", "timeseries",
        f"SELECT $__timeGroupAlias(bucket, $__interval), {by} AS metric, {MEDIAN} AS download_mbps\n"
        f"FROM ispeed_1h WHERE {HOURS}\nGROUP BY 1, 2\nORDER BY 1, 2",
        "Mbits", grid,
        f"Median download of the chosen networks' speed tests per {by}; the dashed line is {SLOW_MBPS:g} Mbit/s.",
        min_interval="1h", steps=SPEED_STEPS, threshold_style="dashed",
    )


BY_PROVINCE = _median("province", Grid(0, 0, 12, 8))
BY_OPERATOR = _median("operator", Grid(12, 0, 12, 8))
SHARE = Panel(
    "Share of tests under 40 Mbit/s", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), province AS metric,\n"
    "  sum(tests_below_line)::float8 / sum(tests) AS share_below_line\n"
    f"FROM ispeed_1h WHERE {HOURS}\nGROUP BY 1, 2\nORDER BY 1, 2",
    "percentunit", Grid(0, 8, 12, 8),
    f"Share of speed tests (chosen networks) with a download under {SLOW_MBPS:g} Mbit/s.",
    min_interval="1h", steps=SHARE_STEPS, max_value=1.0,
)
RANKING = Panel(
    "Provinces ranked by median download", "bargauge",
    f"SELECT province, {MEDIAN} AS download_mbps\nFROM ispeed_1h WHERE {HOURS}\n"
    "GROUP BY province\nORDER BY 2 DESC",
    "Mbits", Grid(12, 8, 12, 8),
    f"Median download (chosen networks) over the range, fastest first; red under {SLOW_MBPS:g} Mbit/s (from the"
    " rollups' counts of tests under fixed speeds: within 5 Mbit/s, on the right side of the line).",
    columns=("province", "download_mbps"), steps=SPEED_STEPS,
)
MAP = Panel(
    "Speed tests", "geomap",
    "SELECT time, device_id, province, operator, network, lat, lon, download_mbps\n"
    f"FROM ispeed_readings WHERE $__timeFilter(time) AND {CHOSEN}\n"
    "ORDER BY time DESC\nLIMIT 2000",
    "Mbits", Grid(0, 16, 12, 12), f"The latest 2,000 tests of the range, red under {SLOW_MBPS:g} Mbit/s.",
    columns=("lat", "lon", "download_mbps"), colour_by="download_mbps", steps=SPEED_STEPS,
)
TREND = Panel(
    "Daily median download per province", "timeseries",
    f"SELECT bucket AS time, province AS metric, {MEDIAN} AS download_mbps\n"
    f"FROM ispeed_1d WHERE {DAYS}\nGROUP BY 1, 2\nORDER BY 1, 2",
    "Mbits", Grid(12, 16, 12, 6),
    "Each province's median download (chosen networks) per local day.",
    min_interval="1d", steps=SPEED_STEPS, threshold_style="dashed",
)
TESTS = Panel(
    "Tests per operator", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), operator AS metric, sum(tests) AS tests\n"
    f"FROM ispeed_1h WHERE {HOURS}\nGROUP BY 1, 2\nORDER BY 1, 2",
    "short", Grid(12, 22, 12, 6), "Speed tests (chosen networks) per interval and operator.", min_interval="1h",
    bars=True,
)

NETWORK = Dashboard(
    uid="urbanpulse-network",
    title="urbanpulse — mobile network (iSpeed)",
    description=f"Crowd-sourced speed tests (4G when it opens; 5G too) against the {SLOW_MBPS:g} Mbit/s line, per"
    " province and operator.",
    variables=(PROVINCE, OPERATOR, RADIO),
    panels=(BY_PROVINCE, BY_OPERATOR, SHARE, RANKING, MAP, TREND, TESTS),
    annotations=(events_annotation("ispeed", chosen=EVENTS_IN_PROVINCE),),
)
