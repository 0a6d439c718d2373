"""The generated provisioning files and dashboards (each snapshot-tested in tests/snapshots/dashboards/).

Refresh the snapshots after an intended change with
``URBANPULSE_UPDATE_SNAPSHOTS=1 pytest tests/test_dashboards_build.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models import dashboard as models

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.build import build, dashboard_filename, database_name
from urbanpulse.dashboards.model import Dashboard
from urbanpulse.dashboards.render import dashboard_json, dumps, panel_queries, variable_queries
from urbanpulse.dashboards.sqlquery import DATASOURCE_TYPE, DATASOURCE_UID, SqlQuery
from urbanpulse.settings import DatabaseSettings, Settings

SNAPSHOTS = Path(__file__).parent / "snapshots" / "dashboards"
UPDATE = os.environ.get("URBANPULSE_UPDATE_SNAPSHOTS") == "1"
UIDS = [b.uid for b in panels.DASHBOARDS]


def _load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("timescaledb", [False, True])
def test_layout_and_datasource(tmp_path: Path, timescaledb: bool) -> None:
    written = build(tmp_path, Settings(), timescaledb=timescaledb)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted([
        *(f"dashboards/{dashboard_filename(b)}" for b in panels.DASHBOARDS),
        "provisioning/dashboards/urbanpulse.yaml",
        "provisioning/datasources/urbanpulse.yaml",
    ])
    document = _load_yaml(tmp_path / "provisioning" / "datasources" / "urbanpulse.yaml")
    assert document["apiVersion"] == 1
    (ds,) = document["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["uid"] == "urbanpulse-pg"
    assert ds["url"] == "${URBANPULSE_GRAFANA__DB_HOST}"
    assert ds["user"] == "urbanpulse_grafana"  # the read-only role of migrations 008 and 011
    assert ds["jsonData"] == {
        "database": "urbanpulse", "sslmode": "disable", "postgresVersion": 1500, "timescaledb": timescaledb,
    }
    assert ds["secureJsonData"] == {"password": "${URBANPULSE_GRAFANA__DB_PASSWORD}"}
    # the flag only changes the data source: the dashboards (and their SQL) are the same
    for board in panels.DASHBOARDS:
        text = (tmp_path / "dashboards" / dashboard_filename(board)).read_text("utf-8")
        assert text == dumps(dashboard_json(board))


def test_dashboard_provider_with_folders(tmp_path: Path) -> None:
    build(tmp_path, Settings())
    document = _load_yaml(tmp_path / "provisioning" / "dashboards" / "urbanpulse.yaml")
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"] == {"path": "/var/lib/grafana/dashboards", "foldersFromFilesStructure": True}
    folders = {p.parent.name for p in (tmp_path / "dashboards").rglob("*.json")}
    assert folders == {"urbanpulse operations", "urbanpulse platform"}


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [("postgresql://urbanpulse@127.0.0.1:5432/urbanpulse", "urbanpulse"),
     ("host=db user=grafana_reader dbname=city", "city"),
     ("postgresql://ops@db", "ops")],
)
def test_database_name_comes_from_the_dsn(dsn: str, expected: str) -> None:
    assert database_name(Settings(database=DatabaseSettings(dsn=dsn))) == expected


@pytest.mark.parametrize("uid", UIDS)
def test_dashboard_matches_snapshot(uid: str) -> None:
    text = dumps(dashboard_json(panels.BY_UID[uid]))
    snapshot = SNAPSHOTS / f"{uid}.json"
    if UPDATE:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(text, encoding="utf-8")
    assert snapshot.exists(), f"no snapshot: run with URBANPULSE_UPDATE_SNAPSHOTS=1 to write {snapshot}"
    expected = snapshot.read_text("utf-8")
    hint = "generated dashboard differs from the snapshot; if intended, rerun with URBANPULSE_UPDATE_SNAPSHOTS=1"
    assert json.loads(text) == json.loads(expected), hint
    assert text == expected, hint + " (formatting only)"


def test_no_stale_snapshots() -> None:
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json")) == sorted(UIDS)


@pytest.mark.parametrize("uid", UIDS)
def test_every_panel_queries_urbanpulse(uid: str) -> None:
    document = dashboard_json(panels.BY_UID[uid])
    assert document["uid"] == uid
    assert dashboard_json(panels.BY_UID[uid]) == document  # deterministic
    for panel in document["panels"]:
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["rawSql"].strip()
            assert target["rawQuery"] is True
            assert target["editorMode"] == "code"
    ids = [p["id"] for p in document["panels"]]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_panel_queries_walk_the_json(board: Dashboard) -> None:
    queries = panel_queries(dashboard_json(board))
    expected = [(p.title, p.type, sql) for p in board.panels for sql in (p.sql, *p.layers)]
    assert [(q.panel_title, q.panel_type, q.raw_sql) for q in queries] == expected
    assert {q.datasource_uid for q in queries} == {DATASOURCE_UID}
    assert variable_queries(dashboard_json(board)) == {v.name: v.query for v in board.variables}


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_every_query_is_range_bounded(board: Dashboard) -> None:
    for panel in board.panels:
        for sql in (panel.sql, *panel.layers):
            bounded = "$__timeFilter(" in sql or ("$__timeFrom()" in sql or "$__timeTo()" in sql)
            assert bounded or panel.current, panel.title


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_variables_are_used_and_chained(board: Dashboard) -> None:
    sqls = " ".join(sql for p in board.panels for sql in (p.sql, *p.layers))
    for variable in board.variables:
        assert "$" + "{" + variable.name in sqls or f"${variable.name}" in sqls, (board.uid, variable.name)
    templating = {v["name"]: v for v in dashboard_json(board)["templating"].get("list", [])}
    for variable in board.variables:
        assert templating[variable.name]["datasource"]["uid"] == DATASOURCE_UID
        assert templating[variable.name]["multi"] is not variable.single


def test_template_variables_cover_the_issue() -> None:
    names = {v.name for b in panels.DASHBOARDS for v in b.variables}
    assert {"province", "district", "device", "operator"} <= names


def test_events_are_annotations_on_every_dashboard() -> None:
    for board in panels.DASHBOARDS:
        annotations = dashboard_json(board)["annotations"]["list"]
        sql = [a for a in annotations if a.get("target", {}).get("rawSql")]
        assert len(sql) == 1, board.uid
        assert "grafana_events" in sql[0]["target"]["rawSql"]


def test_overview_drills_down_to_the_device() -> None:
    document = dashboard_json(panels.BY_UID["urbanpulse-city"])
    links = [link["url"] for p in document["panels"] for link in p["fieldConfig"]["defaults"].get("links", [])]
    assert any(url.startswith("/d/urbanpulse-device/") and "var-device=${__data.fields.device_id}" in url
               for url in links)
    assert any(url.startswith("/d/urbanpulse-air/") for url in links)
    device = panels.BY_UID["urbanpulse-device"]
    assert [v.name for v in device.variables] == ["device"]


def test_panels_on_typical_speeds_say_when_they_are_blank() -> None:
    """Every panel that joins the typical speeds is blank for an hour of the week without history, and says so,
    naming the setting that holds the weeks."""
    from urbanpulse.dashboards import traffic  # noqa: PLC0415

    typical = [p for b in panels.DASHBOARDS for p in b.panels if "typical" in p.sql]
    assert {p.title for p in typical} >= {"Congestion index per district", "Today against the typical week",
                                          "Hot spots"}
    for panel in typical:
        assert "URBANPULSE_STORAGE__TYPICAL_WEEKS" in panel.description, panel.title
        assert "a week of readings" in panel.description, panel.title
    assert traffic.NEEDS_HISTORY in traffic.CONGESTION.description


def test_aqi_uses_the_official_colours() -> None:
    document = dashboard_json(panels.BY_UID["urbanpulse-air"])
    steps = document["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [
        (None, "rgb(0, 228, 0)"), (51, "rgb(255, 255, 0)"), (101, "rgb(255, 126, 0)"),
        (151, "rgb(255, 0, 0)"), (201, "rgb(143, 63, 151)"), (301, "rgb(126, 0, 35)")]
    assert document["panels"][0]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "area"}


@pytest.mark.parametrize("board", panels.DASHBOARDS, ids=lambda b: b.uid)
def test_panels_do_not_overlap(board: Dashboard) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_json(board)["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, (board.uid, panel["title"])
        cells |= area


def test_sdk_reads_the_targets_back() -> None:
    for board in panels.DASHBOARDS:
        model = models.Dashboard.from_json(dashboard_json(board))
        targets = [t for p in model.panels or [] if isinstance(p, models.Panel) for t in p.targets or []]
        assert len(targets) == sum(1 + len(p.layers) for p in board.panels)
        assert all(isinstance(t, SqlQuery) for t in targets)


def test_the_datasource_sslmode_is_a_setting() -> None:
    """A database across a network: ``URBANPULSE_GRAFANA__DB_SSLMODE=verify-full`` (it was always 'disable')."""
    from urbanpulse.dashboards.build import datasource_config  # noqa: PLC0415
    from urbanpulse.settings import GrafanaSettings, Settings  # noqa: PLC0415

    settings = Settings(grafana=GrafanaSettings(db_sslmode="verify-full"))
    assert datasource_config(settings)["datasources"][0]["jsonData"]["sslmode"] == "verify-full"
    assert datasource_config(Settings())["datasources"][0]["jsonData"]["sslmode"] == "disable"
