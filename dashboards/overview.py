"""City overview (uid ``urbanpulse-city``) and the device page it drills down to (``urbanpulse-device``)."""

from __future__ import annotations

from urbanpulse.contract import LINE_NETWORK
from urbanpulse.dashboards.common import (
    DEVICE_ONE,
    DISTRICT,
    EVENTS_IN_PLACE,
    EVENTS_OF_DEVICE,
    PLACE,
    PROVINCE,
    TO_AIR,
    TO_DEVICE,
    events_annotation,
    overlapping,
)
from urbanpulse.dashboards.model import (
    AQI_CATEGORY_COLOURS,
    AQI_STEPS,
    SLOW_MBPS,
    STATUS_STEPS,
    Dashboard,
    Grid,
    Panel,
)
from urbanpulse.dashboards.network import UNDER_LINE

# Hours that ended in the last three before the range's end (the hour in progress has no AQI yet; an hour that
# starts at the range's end is after it).
RECENT_HOURS = ("$__timeTo()::timestamptz - interval '3 hours' < bucket"
                " AND bucket + interval '1 hour' <= $__timeTo()")
STATUS = ("CASE WHEN NOT enabled THEN 0 WHEN online THEN 2 ELSE 1 END AS status_code,\n"
          "  CASE WHEN NOT enabled THEN 'disabled' WHEN online THEN 'online' ELSE 'offline' END AS status")

ONLINE = Panel(
    "Devices online", "stat",
    f"SELECT count(*) FILTER (WHERE online AND enabled) AS online, count(*) FILTER (WHERE enabled) AS enabled\n"
    f"FROM grafana_devices WHERE {PLACE}",
    "none", Grid(0, 0, 5, 4), "Enabled devices of the chosen districts connected to the broker now.",
    columns=("online",), current=True,
)
IN_PLACE = f"SELECT device_id FROM grafana_devices WHERE {PLACE}"
# The last complete hour before the range's end: a tile says how the city is now, whatever the range.
LAST_HOUR = "bucket = date_bin('1 hour', $__timeTo()::timestamptz, '2000-01-03 00:00+00') - interval '1 hour'"
RATE = Panel(
    "Readings per minute", "stat",
    "SELECT coalesce(sum(n), 0) / 60.0 AS readings_per_minute\n"
    "FROM (\n"
    f"  SELECT sum(readings) AS n FROM air_device_1h WHERE {LAST_HOUR} AND device_id IN ({IN_PLACE})\n"
    f"  UNION ALL SELECT sum(readings) FROM traffic_device_1h WHERE {LAST_HOUR} AND device_id IN ({IN_PLACE})\n"
    f"  UNION ALL SELECT sum(tests) FROM ispeed_1h WHERE {LAST_HOUR} AND province IN ($province)\n"
    ") AS kinds",
    "short", Grid(5, 0, 5, 4),
    "Readings stored per minute over the last complete hour before the range's end, every kind (hourly rollups):"
    " the chosen districts' stations and detectors, and the speed tests of the chosen provinces (phones roam:"
    " a test has a province, not a district).",
    columns=("readings_per_minute",),
)
INCIDENTS = Panel(
    "Open incidents", "stat",
    "SELECT count(*) AS open, count(*) FILTER (WHERE severity = 'critical') AS critical\n"
    "FROM grafana_incidents WHERE status <> 'resolved' AND opened_at <= $__timeTo() AND province IN ($province)\n"
    "  AND (coalesce(district, 'unknown') IN ($district) OR scope = 'province')",
    "none", Grid(10, 0, 4, 4),
    "Incidents not resolved (open or acknowledged) in the chosen districts or across their province, and how many"
    " are critical.",
    columns=("open",), steps=((None, "green"), (1, "orange")),
)
WORST = Panel(
    "Worst district AQI", "stat",
    "SELECT district || ', ' || province AS district, aqi\n"
    f"FROM air_hourly_district WHERE {RECENT_HOURS} AND aqi IS NOT NULL AND {PLACE}\n"
    "ORDER BY bucket DESC, aqi DESC LIMIT 1",
    "none", Grid(14, 0, 5, 4), "Hourly VN_AQI of the worst district in the last completed hour of the range.",
    columns=("aqi",), steps=AQI_STEPS,
)
SLOW = Panel(
    f"Provinces under {SLOW_MBPS:g} Mbit/s", "stat",
    "SELECT count(*) AS provinces FROM (\n"
    f"  SELECT province FROM ispeed_1h WHERE {overlapping('bucket', '1 hour')} AND province IN ($province)"
    f" AND network = '{LINE_NETWORK}'\n"
    f"  GROUP BY province HAVING {UNDER_LINE}\n"
    ") AS slow",
    "none", Grid(19, 0, 5, 4),
    "Provinces whose median download over the range is under the line: more than half of their speed tests"
    f" were (exact; {LINE_NETWORK} tests, as the slow-province incidents count them, over the range rather than"
    " their last 24 hours; the line is the storage setting URBANPULSE_STORAGE__ISPEED_SLOW_MBPS the"
    " database was created with).",
    columns=("provinces",), steps=((None, "green"), (1, "red")),
)
MAP = Panel(
    "Devices and air quality", "geomap",
    f"SELECT device_id, kind, province, district, lat, lon, {STATUS}, last_seen\n"
    f"FROM grafana_devices WHERE lat IS NOT NULL AND lon IS NOT NULL AND {PLACE}",
    "none", Grid(0, 4, 14, 14),
    "Every device by status (green online, red offline, grey disabled); air stations by the hourly VN_AQI "
    "category of the last completed hour. Click a device for its page.",
    columns=("device_id", "lat", "lon", "status_code"), colour_by="status_code", steps=STATUS_STEPS,
    links=(TO_DEVICE,), current=True,
    layers=(
        "SELECT DISTINCT ON (h.device_id) h.device_id, d.lat, d.lon, h.aqi, h.aqi_category, h.aqi_pollutant,"
        " h.bucket AS hour\n"
        "FROM air_hourly AS h JOIN grafana_devices AS d USING (device_id)\n"
        f"WHERE {RECENT_HOURS.replace(' bucket', ' h.bucket')} AND h.aqi IS NOT NULL AND d.lat IS NOT NULL\n"
        "  AND h.province IN ($province) AND h.district IN ($district)\n"
        "ORDER BY h.device_id, h.bucket DESC",
    ),
)
DEVICES = Panel(
    "Devices", "table",
    f"SELECT device_id, kind, province, district, {STATUS.split(',', 1)[1].strip()}, last_seen, firmware_version\n"
    f"FROM grafana_devices WHERE {PLACE}\nORDER BY online, kind, device_id",
    "none", Grid(14, 4, 10, 7), "The registry of the chosen districts, offline first; click a device for its page.",
    columns=("device_id", "kind", "province", "district", "status", "last_seen", "firmware_version"),
    value_colours=(("online", "green"), ("offline", "red"), ("disabled", "grey")), colour_by="status",
    links=(TO_DEVICE,), current=True,
)
DISTRICTS = Panel(
    "Air quality by district", "table",
    "SELECT DISTINCT ON (province, district) district, province, aqi, aqi_category, aqi_pollutant,"
    " round(pm25_mean::numeric, 1) AS pm25_mean\n"
    f"FROM air_hourly_district WHERE {RECENT_HOURS} AND aqi IS NOT NULL AND {PLACE}\n"
    "ORDER BY province, district, bucket DESC",
    "none", Grid(14, 11, 10, 7), "Hourly VN_AQI of each district, last completed hour; click for its air page.",
    columns=("district", "province", "aqi", "aqi_category", "aqi_pollutant", "pm25_mean"),
    steps=AQI_STEPS, colour_by="aqi", value_colours=AQI_CATEGORY_COLOURS, links=(TO_AIR,),
)

CITY = Dashboard(
    uid="urbanpulse-city",
    title="urbanpulse — city overview",
    description="What the operations centre watches first: devices, readings, incidents, air and 4G at a glance.",
    variables=(PROVINCE, DISTRICT),
    panels=(ONLINE, RATE, INCIDENTS, WORST, SLOW, MAP, DEVICES, DISTRICTS),
    annotations=(events_annotation("air", "traffic", "ispeed", chosen=EVENTS_IN_PLACE),),
)

_ONE = "device_id = ${device:sqlstring} AND $__timeFilter(time)"
DEVICE_INFO = Panel(
    "Device", "table",
    f"SELECT device_id, kind, province, district, {STATUS.split(',', 1)[1].strip()}, last_seen, firmware_version,"
    " lat, lon\nFROM grafana_devices WHERE device_id = ${device:sqlstring}",
    "none", Grid(0, 0, 24, 4), "The device in the registry.",
    columns=("device_id", "kind", "province", "district", "status", "last_seen", "firmware_version", "lat", "lon"),
    current=True,
)
DEVICE_READINGS = Panel(
    "Readings", "timeseries",
    "SELECT $__timeGroupAlias(time, $__interval), metric, avg(value) AS value\n"
    "FROM (\n"
    f"  SELECT time, 'PM2.5 µg/m³' AS metric, pm25 AS value FROM air_readings WHERE {_ONE}\n"
    f"  UNION ALL SELECT time, 'PM10 µg/m³', pm10 FROM air_readings WHERE {_ONE}\n"
    f"  UNION ALL SELECT time, 'speed km/h', speed_kmh FROM traffic_readings WHERE {_ONE}\n"
    f"  UNION ALL SELECT time, 'occupancy %', occupancy_pct FROM traffic_readings WHERE {_ONE}\n"
    f"  UNION ALL SELECT time, 'download Mbit/s', download_mbps FROM ispeed_readings WHERE {_ONE}\n"
    f"  UNION ALL SELECT time, 'upload Mbit/s', upload_mbps FROM ispeed_readings WHERE {_ONE}\n"
    ") AS readings\nGROUP BY 1, 2\nORDER BY 1, 2",
    "short", Grid(0, 4, 24, 10), "The device's own readings (raw), mean per interval.",
)
DEVICE_EVENTS = Panel(
    "Events of the device", "table",
    "SELECT id, metric, detector, severity, status, opened_at, resolved_at, peak_value, incident_id\n"
    "FROM grafana_events WHERE device_id = ${device:sqlstring}\n"
    "  AND opened_at <= $__timeTo() AND coalesce(resolved_at, 'infinity') >= $__timeFrom()\n"
    "ORDER BY opened_at DESC LIMIT 200",
    "none", Grid(0, 14, 24, 8), "Events of this device active in the range.",
    columns=("id", "metric", "detector", "severity", "status", "opened_at", "resolved_at", "peak_value",
             "incident_id"),
)

DEVICE = Dashboard(
    uid="urbanpulse-device",
    title="urbanpulse — device",
    description="One device: registry, raw readings and events (linked from the overview's map and tables).",
    variables=(DEVICE_ONE,),
    panels=(DEVICE_INFO, DEVICE_READINGS, DEVICE_EVENTS),
    annotations=(events_annotation("air", "traffic", "ispeed", chosen=EVENTS_OF_DEVICE),),
)
