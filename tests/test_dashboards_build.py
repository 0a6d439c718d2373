"""The generated provisioning files and dashboard JSON (snapshot-tested).

Refresh the snapshot after an intended change with
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
from urbanpulse.dashboards.build import build, database_name
from urbanpulse.dashboards.render import dashboard_json, dumps, panel_queries, variable_queries
from urbanpulse.dashboards.sqlquery import DATASOURCE_TYPE, DATASOURCE_UID, SqlQuery
from urbanpulse.settings import DatabaseSettings, Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "urbanpulse-city.json"
UPDATE = os.environ.get("URBANPULSE_UPDATE_SNAPSHOTS") == "1"


def _load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("timescaledb", [False, True])
def test_layout_and_datasource(tmp_path: Path, timescaledb: bool) -> None:
    written = build(tmp_path, Settings(), timescaledb=timescaledb)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "dashboards/urbanpulse-city.json",
        "provisioning/dashboards/urbanpulse.yaml",
        "provisioning/datasources/urbanpulse.yaml",
    ]
    document = _load_yaml(tmp_path / "provisioning" / "datasources" / "urbanpulse.yaml")
    assert document["apiVersion"] == 1
    (ds,) = document["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["uid"] == "urbanpulse-pg"
    assert ds["url"] == "${URBANPULSE_GRAFANA_DB_HOST}"
    assert ds["user"] == "${URBANPULSE_GRAFANA_DB_USER}"
    assert ds["jsonData"] == {
        "database": "urbanpulse", "sslmode": "disable", "postgresVersion": 1500, "timescaledb": timescaledb,
    }
    assert ds["secureJsonData"] == {"password": "${URBANPULSE_GRAFANA_DB_PASSWORD}"}
    # the flag only changes the data source: the dashboard (and its SQL) is the same
    assert (tmp_path / "dashboards" / "urbanpulse-city.json").read_text("utf-8") == dumps(dashboard_json())


def test_dashboard_provider(tmp_path: Path) -> None:
    build(tmp_path, Settings())
    document = _load_yaml(tmp_path / "provisioning" / "dashboards" / "urbanpulse.yaml")
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "urbanpulse"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [("postgresql://urbanpulse@127.0.0.1:5432/urbanpulse", "urbanpulse"),
     ("host=db user=grafana_reader dbname=city", "city"),
     ("postgresql://ops@db", "ops")],
)
def test_database_name_comes_from_the_dsn(dsn: str, expected: str) -> None:
    assert database_name(Settings(database=DatabaseSettings(dsn=dsn))) == expected


def test_dashboard_matches_snapshot(tmp_path: Path) -> None:
    build(tmp_path, Settings())
    text = (tmp_path / "dashboards" / "urbanpulse-city.json").read_text("utf-8")
    if UPDATE:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot: run with URBANPULSE_UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    expected = SNAPSHOT.read_text("utf-8")
    hint = "generated dashboard differs from the snapshot; if intended, rerun with URBANPULSE_UPDATE_SNAPSHOTS=1"
    assert json.loads(text) == json.loads(expected), hint
    assert text == expected, hint + " (formatting only)"


def test_dashboard_identity() -> None:
    document = dashboard_json()
    assert document["uid"] == "urbanpulse-city"
    assert document["title"] == "urbanpulse — city telemetry"
    assert dashboard_json() == document  # deterministic


def test_every_panel_queries_urbanpulse() -> None:
    document = dashboard_json()
    for panel in document["panels"]:
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        for target in targets:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["rawSql"].strip()
            assert target["rawQuery"] is True
            assert target["editorMode"] == "code"
            assert target["format"] in ("time_series", "table")
    ids = [p["id"] for p in document["panels"]]
    assert len(set(ids)) == len(ids)


def test_panel_queries_walk_the_json() -> None:
    queries = panel_queries(dashboard_json())
    assert [(q.panel_title, q.panel_type, q.format, q.raw_sql) for q in queries] == [
        (p.title, p.type, p.format, p.sql) for p in panels.CITY.panels
    ]
    assert {q.datasource_uid for q in queries} == {DATASOURCE_UID}
    assert variable_queries(dashboard_json()) == {"province": panels.PROVINCE.query}


def test_every_query_is_range_bounded() -> None:
    for query in panel_queries(dashboard_json()):
        sql = query.raw_sql
        bounded = "$__timeFilter(" in sql or ("$__timeFrom()" in sql and "$__timeTo()" in sql)
        assert bounded, query.panel_title
    for name, sql in variable_queries(dashboard_json()).items():
        assert "$__timeFilter(" in sql, name


def test_variables_are_used() -> None:
    sqls = " ".join(q.raw_sql for q in panel_queries(dashboard_json()))
    for variable in panels.CITY.variables:
        assert f"${variable.name}" in sqls, variable.name
    templating = {v["name"]: v for v in dashboard_json()["templating"]["list"]}
    assert templating["kind"]["type"] == "custom"
    assert templating["province"]["datasource"]["uid"] == DATASOURCE_UID
    assert all(v["multi"] and v["includeAll"] for v in templating.values())


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_json()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, panel["title"]
        cells |= area


def test_sdk_reads_the_targets_back() -> None:
    model = models.Dashboard.from_json(dashboard_json())
    targets = [t for p in model.panels or [] if isinstance(p, models.Panel) for t in p.targets or []]
    assert len(targets) == len(panels.CITY.panels)
    assert all(isinstance(t, SqlQuery) for t in targets)
