"""From the panel declarations to Grafana dashboard JSON, with grafana-foundation-sdk's builders.

:func:`dashboard_json` builds the (v1, file-provisionable) dashboard model and returns it as plain JSON
data; :func:`dumps` serialises it with sorted keys so generated files diff cleanly; :func:`panel_queries`
and :func:`variable_queries` walk generated JSON back to its SQL (for tests and reports).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from urbanpulse.dashboards import model as spec
from urbanpulse.dashboards.sqlquery import SqlQueryBuilder, datasource_ref
from urbanpulse.dashboards.viz import panel_builder

_ALL = models.VariableOption(selected=True, text=["All"], value=["$__all"])


def _variable(variable: spec.Variable) -> dashboard_builders.QueryVariable:
    builder = (
        dashboard_builders.QueryVariable(variable.name)
        .label(variable.label)
        .description(variable.description)
        .datasource(datasource_ref())
        .query(variable.query)
        .definition(variable.query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.DISABLED)
    )
    if variable.single:
        return builder.multi(False).include_all(False)
    chosen = _ALL if variable.default is None else models.VariableOption(
        selected=True, text=[variable.default], value=[variable.default])
    return builder.multi(True).include_all(True).current(chosen)


def _builtin_annotations() -> dashboard_builders.AnnotationQuery:
    """Grafana's own "Annotations & Alerts" entry, which every saved dashboard carries."""
    return (
        dashboard_builders.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


def _annotation(annotation: spec.Annotation) -> dashboard_builders.AnnotationQuery:
    return (
        dashboard_builders.AnnotationQuery()
        .name(annotation.name)
        .datasource(datasource_ref())
        .enable(True)
        .icon_color(annotation.colour)
        .target(SqlQueryBuilder().ref_id("Anno").raw_sql(annotation.sql).format("table"))
    )


def _nav_links() -> list[dashboard_builders.DashboardLink]:
    """A drop-down to every urbanpulse dashboard, keeping the time range and the variables."""
    return [
        dashboard_builders.DashboardLink("urbanpulse")
        .type(models.DashboardLinkType.DASHBOARDS)
        .tags(["urbanpulse"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


def dashboard_model(board: spec.Dashboard) -> models.Dashboard:
    """The SDK's dashboard model of ``board``."""
    builder = (
        dashboard_builders.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time(board.time_from, "now")
        .refresh(board.refresh)
        .timezone("browser")
        .annotation(_builtin_annotations())
        .links(_nav_links())  # type: ignore[arg-type]
    )
    for annotation in board.annotations:
        builder = builder.annotation(_annotation(annotation))
    for variable in board.variables:
        builder = builder.with_variable(_variable(variable))
    for panel_id, panel in enumerate(board.panels, start=1):
        builder = builder.with_panel(panel_builder(panel, panel_id))
    return builder.build()


def dashboard_json(board: spec.Dashboard) -> dict[str, Any]:
    """``board`` as Grafana dashboard JSON data (plain dicts and lists)."""
    return cast(dict[str, Any], json.loads(json.dumps(dashboard_model(board), cls=JSONEncoder)))


def dumps(document: Mapping[str, Any]) -> str:
    """Stable text of a JSON document: sorted keys, two-space indent, UTF-8 kept, final newline."""
    return json.dumps(document, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One SQL target of a generated dashboard's panel."""

    panel_title: str
    panel_type: str
    ref_id: str
    raw_sql: str
    format: str
    datasource_uid: str | None


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _panels(item.get("panels") or [])  # panels inside collapsed rows


def panel_queries(document: Mapping[str, Any]) -> list[PanelQuery]:
    """Every SQL target of every panel in dashboard JSON ``document``, in panel order."""
    out = []
    for panel in _panels(list(document.get("panels") or [])):
        panel_ds = (panel.get("datasource") or {}).get("uid")
        for target in panel.get("targets") or []:
            if "rawSql" not in target:
                continue
            out.append(
                PanelQuery(
                    panel_title=str(panel.get("title", "")),
                    panel_type=str(panel.get("type", "")),
                    ref_id=str(target.get("refId", "")),
                    raw_sql=str(target["rawSql"]),
                    format=str(target.get("format", "time_series")),
                    datasource_uid=(target.get("datasource") or {}).get("uid", panel_ds),
                )
            )
    return out


def annotation_queries(document: Mapping[str, Any]) -> dict[str, str]:
    """The SQL of every SQL annotation in dashboard JSON ``document``, by annotation name."""
    items = (document.get("annotations") or {}).get("list") or []
    return {a["name"]: str(a["target"]["rawSql"]) for a in items if "rawSql" in (a.get("target") or {})}


def variable_queries(document: Mapping[str, Any]) -> dict[str, str]:
    """The SQL of every query variable in dashboard JSON ``document``, by variable name."""
    variables = (document.get("templating") or {}).get("list") or []
    return {v["name"]: str(v["query"]) for v in variables if v.get("type") == "query"}
