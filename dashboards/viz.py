"""One grafana-foundation-sdk panel builder per visualisation, from a :class:`~urbanpulse.dashboards.model.Panel`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import bargauge, geomap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import geomap as geomap_models

from urbanpulse.dashboards.model import AQI_STEPS, Panel, Steps
from urbanpulse.dashboards.sqlquery import QueryFormat, SqlQueryBuilder, datasource_ref

AnyPanel = timeseries.Panel | table.Panel | stat.Panel | geomap.Panel | bargauge.Panel
REF_IDS = "ABCDEFGH"


def targets(panel: Panel) -> list[cogbuilder.Builder[Any]]:
    """The panel's queries: ``sql`` as refId A, each layer as B, C, ..."""
    fmt: QueryFormat = "time_series" if panel.type == "timeseries" else "table"
    return [SqlQueryBuilder().ref_id(REF_IDS[i]).raw_sql(sql).format(fmt)
            for i, sql in enumerate((panel.sql, *panel.layers))]


def _thresholds(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (dashboard_builders.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(value=value, color=colour) for value, colour in steps]))


def _value_map(colours: tuple[tuple[str, str], ...]) -> models.ValueMap:
    return models.ValueMap(options={text: models.ValueMappingResult(color=colour, index=i)
                                    for i, (text, colour) in enumerate(colours)})


def _links(panel: Panel) -> list[cogbuilder.Builder[models.DashboardLink]]:
    return [dashboard_builders.DashboardLink(link.title).url(link.url).type(models.DashboardLinkType.LINK)
            for link in panel.links]


def _common(builder: Any, panel: Panel, panel_id: int) -> Any:
    builder = (builder.id(panel_id).title(panel.title).description(panel.description)
               .datasource(datasource_ref()).targets(targets(panel))
               .grid_pos(models.GridPos(x=panel.grid.x, y=panel.grid.y, w=panel.grid.w, h=panel.grid.h))
               .unit(panel.unit))
    if panel.min_interval:
        builder = builder.interval(panel.min_interval)
    if panel.time_from:
        builder = builder.time_from(panel.time_from)
    if panel.max_value is not None:
        builder = builder.max(panel.max_value)
    if panel.links:
        builder = builder.data_links(_links(panel))
    if panel.steps and panel.type != "table":
        builder = builder.thresholds(_thresholds(panel.steps))
    return builder


def _timeseries(panel: Panel, panel_id: int) -> timeseries.Panel:
    colour = models.FieldColorModeId.PALETTE_CLASSIC
    builder = (
        _common(timeseries.Panel(), panel, panel_id)
        .color_scheme(dashboard_builders.FieldColor().mode(colour))
        .line_width(1).fill_opacity(80 if panel.bars else 10).show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max"]))
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                 .sort(common.SortOrder.DESCENDING))
    )
    if panel.bars:
        builder = (builder.draw_style(common.GraphDrawStyle.BARS)
                   .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)))
    styles = {"dashed": common.GraphThresholdsStyleMode.DASHED, "area": common.GraphThresholdsStyleMode.AREA}
    if panel.threshold_style in styles:
        builder = builder.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(styles[panel.threshold_style]))
    return builder  # type: ignore[no-any-return]


def _table(panel: Panel, panel_id: int) -> table.Panel:
    builder = (_common(table.Panel(), panel, panel_id).show_header(True)
               .cell_height(common.TableCellHeight.SM))
    if panel.colour_by:
        properties = [models.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})]
        if panel.steps:
            properties.append(models.DynamicConfigValue(id_val="thresholds", value=_thresholds(panel.steps).build()))
        builder = builder.override_by_name(panel.colour_by, properties)
    if panel.value_colours:
        builder = builder.mappings([_value_map(panel.value_colours)])
        category = next((c for c in panel.columns if c.endswith(("_category", "severity", "status"))), None)
        if category and category != panel.colour_by:
            builder = builder.override_by_name(category, [
                models.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})])
    return builder  # type: ignore[no-any-return]


def _stat(panel: Panel, panel_id: int) -> stat.Panel:
    return (  # type: ignore[no-any-return]
        _common(stat.Panel(), panel, panel_id)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs(["lastNotNull"]).limit(10))
        .color_mode(common.BigValueColorMode.BACKGROUND if panel.steps else common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    )


def _bargauge(panel: Panel, panel_id: int) -> bargauge.Panel:
    builder = (
        _common(bargauge.Panel(), panel, panel_id)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]).limit(100))
        .display_mode(common.BarGaugeDisplayMode.BASIC).orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True).min(0)
    )
    if panel.steps:
        builder = builder.color_scheme(dashboard_builders.FieldColor().mode(models.FieldColorModeId.THRESHOLDS))
    return builder  # type: ignore[no-any-return]


def _marker_layer(name: str, ref_id: str, colour_field: str | None, size: int) -> common_builders.MapLayerOptions:
    colour: dict[str, Any] = {"fixed": "dark-green"}
    if colour_field:
        colour["field"] = colour_field
    return (
        common_builders.MapLayerOptions().type("markers").name(name)
        .location(common_builders.FrameGeometrySource().mode(common.FrameGeometrySourceMode.COORDS)
                  .latitude("lat").longitude("lon"))
        .filter_data({"id": "byRefId", "options": ref_id})
        .config({"showLegend": True, "style": {"color": colour, "size": {"fixed": size},
                                               "opacity": 0.8, "symbol": {"fixed": "img/icons/marker/circle.svg"}}})
    )


def _geomap(panel: Panel, panel_id: int) -> geomap.Panel:
    layers = [_marker_layer(panel.title, "A", panel.colour_by, 5)]
    # A second query on a device map is the air stations' AQI, coloured by category.
    layers += [_marker_layer("VN_AQI", REF_IDS[i + 1], "aqi", 9) for i in range(len(panel.layers))]
    builder = (
        _common(geomap.Panel(), panel, panel_id)
        .view(geomap.MapViewConfig().id("coords").lat(16).lon(106).zoom(5))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers(layers)
        .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS))
    )
    if panel.layers:
        builder = builder.override_by_name("aqi", [
            models.DynamicConfigValue(id_val="thresholds", value=_thresholds(AQI_STEPS).build()),
            models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"})])
    if panel.steps:
        builder = builder.color_scheme(dashboard_builders.FieldColor().mode(models.FieldColorModeId.THRESHOLDS))
    return builder  # type: ignore[no-any-return]


BUILDERS: dict[str, Callable[[Panel, int], AnyPanel]] = {
    "timeseries": _timeseries, "table": _table, "stat": _stat, "bargauge": _bargauge, "geomap": _geomap,
}


def panel_builder(panel: Panel, panel_id: int) -> AnyPanel:
    """The SDK builder of ``panel`` with Grafana id ``panel_id``."""
    return BUILDERS[panel.type](panel, panel_id)
