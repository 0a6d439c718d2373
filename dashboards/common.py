"""What several dashboards share: template variables, SQL fragments, event annotations, drill-down links.

Every relation named here is readable by the read-only role ``urbanpulse_grafana`` (migrations 008 and
011): the readings, the rollup views, and the ``grafana_*`` views and ``grafana_storage()``.
"""

from __future__ import annotations

from urbanpulse.contract import LINE_NETWORK, SLOW_DOWNLOAD_MBPS
from urbanpulse.dashboards.model import Annotation, Link, Variable


# Rollup rows whose bucket overlaps the range: an hour that started before the range still counts.
def overlapping(column: str, width: str) -> str:
    """``column`` (a bucket start) of a bucket ``width`` wide overlapping the dashboard's range."""
    return f"{column} > $__timeFrom()::timestamptz - interval '{width}' AND {column} < $__timeTo()"


ORIGIN = "'2000-01-03 00:00+00'"  # the rollups' date_bin origin (a Monday, midnight UTC)
_FROM_HOUR = "$__timeFrom()::timestamptz - interval '1 hour'"  # hours after this overlap the range
# Ranges over a day: tables read whole days and edge hours, time series coarser rollups.
LONG_RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '1 day'"
# Grafana's interval is a whole multiple of 3 hours: 3-hour rollups nest in it.
THREE_HOURLY = "$__interval_ms % 10800000 = 0"


def interval_bin(column: str) -> str:
    """The interval's bucket of ``column`` as epoch seconds (what $__timeGroup gives on plain PostgreSQL): date_bin
    is cheaper than Grafana's numeric epoch arithmetic, a float decodes in half the time of a timestamptz."""
    return f"date_part('epoch', date_bin($__interval_ms * interval '1 millisecond', {column}, {ORIGIN}))"


def _first_whole(width: str) -> str:
    """The start of the first ``width`` bucket whose hours all overlap the range."""
    return f"date_bin('{width}', {_FROM_HOUR}, {ORIGIN}) + interval '{width}'"


def _end_of_whole(width: str) -> str:
    """The end of the last ``width`` bucket whose hours all overlap the range (its last hour starts before
    the range's end)."""
    return (f"date_bin('{width}', $__timeTo()::timestamptz - interval '{width}' + interval '1 hour'"
            f" - interval '1 microsecond', {ORIGIN}) + interval '{width}'")


def whole_buckets(column: str, width: str) -> str:
    """``column`` (a bucket start) of a ``width`` bucket made only of hours overlapping the range: with
    :func:`edge_hours`, the same hours as ``overlapping(column, '1 hour')``, in coarser rows."""
    return f"{column} >= {_first_whole(width)} AND {column} < {_end_of_whole(width)}"


def edge_hours(column: str, width: str) -> str:
    """``column`` (an hourly bucket) of the hours overlapping the range outside :func:`whole_buckets`."""
    first, end = _first_whole(width), _end_of_whole(width)
    return (f"(({column} > {_FROM_HOUR} AND {column} < least($__timeTo()::timestamptz, {first}))"
            f" OR ({column} >= greatest({end}, {first}) AND {column} < $__timeTo()))")


PLACE = "province IN ($province) AND district IN ($district)"

PROVINCE = Variable(
    "province",
    "Province",
    "SELECT province FROM grafana_devices\n"
    "UNION\n"
    f"SELECT province FROM ispeed_1d WHERE {overlapping('bucket', '1 day')}\n"
    "ORDER BY 1",
    "Provinces with registered devices or speed tests in the range ('unknown': devices registered without one).",
)
DISTRICT = Variable(
    "district",
    "District",
    "SELECT DISTINCT district FROM grafana_devices WHERE province IN ($province) ORDER BY 1",
    "Districts of the chosen provinces ('unknown': devices registered without one).",
)
OPERATOR = Variable(
    "operator",
    "Operator",
    f"SELECT DISTINCT operator FROM ispeed_1d WHERE {overlapping('bucket', '1 day')} AND province IN ($province)"
    " ORDER BY 1",
    "Mobile operators with speed tests in the chosen provinces and range.",
)
RADIO = Variable(
    "network",
    "Network",
    f"SELECT DISTINCT network FROM ispeed_1d WHERE {overlapping('bucket', '1 day')} AND province IN ($province)"
    " ORDER BY 1",
    f"Radio networks (4G, 5G) of the speed tests; {LINE_NETWORK} when the dashboard opens, the network the"
    f" {SLOW_DOWNLOAD_MBPS:g} Mbit/s line is drawn for (5G tests would lift a 4G median).",
    default=LINE_NETWORK,
)


def device_variable(kind: str) -> Variable:
    """The devices of ``kind`` in the chosen provinces and districts."""
    return Variable(
        "device",
        "Device",
        f"SELECT device_id FROM grafana_devices WHERE kind = '{kind}' AND {PLACE} ORDER BY 1",
        f"Registered {kind} devices of the chosen districts.",
    )


DEVICE_ONE = Variable(
    "device", "Device", "SELECT device_id FROM grafana_devices ORDER BY 1", "The device shown.", single=True
)


# What an events annotation is narrowed to, as the dashboard's variables narrow its panels (a device without a
# place is 'unknown' to the Province and District variables, grafana_devices' coalesce).
EVENTS_IN_PROVINCE = "coalesce(province, 'unknown') IN ($province)"
# An event without a district (a phone's, whose tests have a province only) is the whole province's.
EVENTS_IN_PLACE = f"{EVENTS_IN_PROVINCE} AND (district IS NULL OR district IN ($district))"
EVENTS_OF_DEVICES = f"{EVENTS_IN_PLACE} AND device_id IN ($device)"
EVENTS_OF_DEVICE = "device_id = ${device:sqlstring}"


def events_annotation(*kinds: str, chosen: str = "true") -> Annotation:
    """Events of ``kinds`` (warning and critical) on the time axis, from opening to resolution, of the places
    or devices ``chosen`` (a condition on grafana_events: ``EVENTS_IN_PLACE`` ...) -- on a dashboard narrowed
    to one province or device, another's events would read as this one's."""
    listed = ", ".join(f"'{k}'" for k in kinds)
    return Annotation(
        "Events",
        "SELECT opened_at AS time, coalesce(resolved_at, last_seen_at) AS timeend,\n"
        "  format('%s %s: %s on %s (%s)', severity, kind, metric, device_id, status) AS text,\n"
        "  concat_ws(',', severity, kind, province, district) AS tags\n"
        "FROM grafana_events\n"
        f"WHERE kind IN ({listed}) AND severity <> 'info' AND {chosen}\n"
        "  AND opened_at <= $__timeTo() AND coalesce(resolved_at, 'infinity') >= $__timeFrom()\n"
        "ORDER BY opened_at\n"
        "LIMIT 500",
    )


TO_DEVICE = Link(
    "Device detail", "/d/urbanpulse-device/device?var-device=${__data.fields.device_id}&${__url_time_range}"
)
TO_AIR = Link(
    "Air quality of this district",
    "/d/urbanpulse-air/air-quality?var-province=${__data.fields.province}"
    "&var-district=${__data.fields.district}&${__url_time_range}",
)
