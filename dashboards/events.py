"""Events and incidents (uid ``urbanpulse-events``): open incidents with severity, age and members, the
event timeline, acknowledged state, time to acknowledge and to resolve."""

from __future__ import annotations

from urbanpulse.dashboards.common import EVENTS_IN_PROVINCE, PROVINCE, TO_DEVICE, events_annotation
from urbanpulse.dashboards.model import SEVERITY_COLOURS, Dashboard, Grid, Panel

ACTIVE = "opened_at <= $__timeTo() AND coalesce(resolved_at, 'infinity') >= $__timeFrom()"
IN_PROVINCE = "coalesce(province, 'unknown') IN ($province)"

OPEN_INCIDENTS = Panel(
    "Open incidents", "table",
    "SELECT id, severity, title, kind, province, district, status, coalesce(rule, members::text) AS members,\n"
    "  justify_interval(date_trunc('minute', $__timeTo()::timestamptz - opened_at))::text AS age,\n"
    "  acknowledged_by\n"
    f"FROM grafana_incidents WHERE status <> 'resolved' AND opened_at <= $__timeTo() AND {IN_PROVINCE}\n"
    "ORDER BY severity = 'critical' DESC, severity = 'warning' DESC, opened_at\nLIMIT 200",
    "none", Grid(0, 0, 16, 8),
    "Incidents not resolved yet (open or acknowledged), worst and oldest first; members are their events, or the"
    " rule that raised it (slow_download: a province whose speed tests' median is under the line).",
    columns=("id", "severity", "title", "kind", "province", "district", "status", "members", "age",
             "acknowledged_by"),
    colour_by="severity", value_colours=SEVERITY_COLOURS,
)
STATES = Panel(
    "Incidents by state", "stat",
    "SELECT count(*) FILTER (WHERE status = 'open') AS open,\n"
    "  count(*) FILTER (WHERE status = 'acknowledged') AS acknowledged,\n"
    "  count(*) FILTER (WHERE status = 'resolved') AS resolved\n"
    f"FROM grafana_incidents WHERE {ACTIVE} AND {IN_PROVINCE}",
    "none", Grid(16, 0, 8, 4), "Incidents active at some moment of the range, by their state now.",
    columns=("open", "acknowledged", "resolved"),
)
RESPONSE = Panel(
    "Time to acknowledge and to resolve", "stat",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM time_to_acknowledge)) AS ack_p50,\n"
    "  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM time_to_acknowledge)) AS ack_p90,\n"
    "  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM time_to_resolve))\n"
    "    FILTER (WHERE rule IS NULL) AS resolve_p50,\n"
    "  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM time_to_resolve))\n"
    "    FILTER (WHERE rule IS NULL) AS resolve_p90\n"
    f"FROM grafana_incidents WHERE {ACTIVE} AND {IN_PROVINCE}",
    "s", Grid(16, 4, 8, 4),
    "Median and 90th percentile, over incidents active in the range, from raised to acknowledged and to closed"
    " (to closed: not for a slow province, whose spell ends when its speeds recover).",
    columns=("ack_p50", "resolve_p50"),
)
TIMELINE = Panel(
    "Event timeline", "timeseries",
    "SELECT $__timeGroupAlias(opened_at, $__interval), severity AS metric, count(*) AS events\n"
    f"FROM grafana_events WHERE $__timeFilter(opened_at) AND {IN_PROVINCE}\n"
    "GROUP BY 1, 2\nORDER BY 1, 2",
    "short", Grid(0, 8, 24, 7), "Events opened per interval, by severity.", bars=True, min_interval="5m",
)
EVENTS = Panel(
    "Events", "table",
    "SELECT id, device_id, kind, metric, severity, status, flapping, province, district, opened_at, resolved_at,\n"
    "  acknowledged_by, incident_id\n"
    f"FROM grafana_events WHERE {ACTIVE} AND {IN_PROVINCE}\n"
    "ORDER BY status = 'resolved', severity = 'critical' DESC, opened_at DESC\nLIMIT 500",
    "none", Grid(0, 15, 24, 10), "Events active at some moment of the range: unresolved first, then by severity.",
    columns=("id", "device_id", "kind", "metric", "severity", "status", "flapping", "province", "district",
             "opened_at", "resolved_at", "acknowledged_by", "incident_id"),
    colour_by="severity", value_colours=SEVERITY_COLOURS, links=(TO_DEVICE,),
)

EVENTS_BOARD = Dashboard(
    uid="urbanpulse-events",
    title="urbanpulse — events and incidents",
    description="What the detectors raised: incidents per district or province, their events and how fast "
    "operators answered.",
    variables=(PROVINCE,),
    panels=(OPEN_INCIDENTS, STATES, RESPONSE, TIMELINE, EVENTS),
    annotations=(events_annotation("air", "traffic", "ispeed", chosen=EVENTS_IN_PROVINCE),),
)
