"""The daily briefing of a simulated day: its figures come from the dashboards' queries, and the page opens in
headless Chromium with every chart loaded (``naturalWidth > 0``).

The check runs in the browser: a copy of the page, next to it (so the PNGs resolve the same way), gets a
small script that writes each image's ``src`` and ``naturalWidth`` into the DOM once the page has loaded,
and ``chromium --headless --dump-dom`` prints that DOM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from urbanpulse.dashboards.report import Briefing, collect, day_range, html, write_report
from urbanpulse.dashboards.sample import fill
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import PostgresServer

pytestmark = pytest.mark.integration

ZONE = "Asia/Ho_Chi_Minh"
CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium not installed (Debian package `chromium`; ./dev installs it)")


def loaded_images(page: Path) -> list[dict[str, object]]:
    probe = page.with_name("image-check.html")
    probe.write_text(page.read_text("utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=90, check=True,
    )
    found = re.search(r'<pre id="image-check">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    images = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    assert isinstance(images, list)
    return images


@pytest.fixture(scope="module")
def briefing_day(pg_cluster: PostgresServer) -> tuple[str, datetime]:
    database = pg_cluster.create_database(f"report{os.getpid()}")
    migrate(database)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    fill(database, end, days=2.5, devices_per_kind=4)
    day = (end.astimezone(ZoneInfo(ZONE)) - timedelta(days=1)).date()
    return database, datetime.combine(day, datetime.min.time())


def test_briefing_opens_in_a_browser_with_its_charts(briefing_day: tuple[str, datetime], tmp_path: Path) -> None:
    dsn, day = briefing_day
    page = write_report(dsn, day.date(), tmp_path / "report", ZONE)
    charts = sorted(p.name for p in page.parent.glob("*.png"))
    assert charts == ["aqi_by_province.png", "events_timeline.png", "hot_spots.png", "speed_ranking.png"]
    images = loaded_images(page)
    assert sorted(str(i["src"]) for i in images) == charts
    assert all(int(str(i["width"])) > 0 for i in images), images


def test_briefing_figures_come_from_the_panels(briefing_day: tuple[str, datetime]) -> None:
    dsn, day = briefing_day
    briefing = collect(dsn, day.date(), ZONE)
    assert briefing.aqi.columns == ("province", "aqi")
    assert {r[0] for r in briefing.aqi.rows} == {"Ha Noi", "Da Nang"}
    assert all(0 < r[1] <= 500 for r in briefing.aqi.rows)
    speeds = [r[1] for r in briefing.speed.rows]
    assert speeds == sorted(speeds, reverse=True)
    assert briefing.hot_spots.rows
    assert briefing.states.rows[0] == (2, 2, 0)  # the resolved incidents were closed days before
    assert briefing.events.rows
    text = html(briefing, {"aqi": "a.png"})
    assert '<img src="a.png"' in text
    assert "provinces under 40 Mbit/s" in text


def test_day_range_is_local_midnight() -> None:
    lo, hi = day_range(datetime(2026, 3, 2).date(), ZONE)
    assert lo == datetime(2026, 3, 1, 17, tzinfo=UTC)
    assert hi - lo == timedelta(days=1)


def test_empty_briefing_still_renders(tmp_path: Path) -> None:
    from urbanpulse.dashboards.charts import draw  # noqa: PLC0415
    from urbanpulse.dashboards.report import Table  # noqa: PLC0415

    empty = Table(("province", "aqi"), [])
    briefing = Briefing(datetime(2026, 3, 2).date(), ZONE, empty, Table(("province", "download_mbps"), []),
                        Table(("device_id", "congestion_index"), []), Table(("open",), []),
                        Table(("time", "metric", "events"), []), Table(("device_id",), []))
    images = draw(briefing, tmp_path)
    assert all((tmp_path / name).stat().st_size > 0 for name in images.values())
    assert "none" in html(briefing, images)
