"""Platform health (uid ``urbanpulse-platform``): ingest rate, accepted against dead-lettered by reason,
gateway lag and the readings waiting for their commit, devices online, database size and compression.

The gateway's live spool gauges are Prometheus metrics (``urbanpulse_gateway_spool_bytes``, gateway
README); from the database the same backlog shows as readings received but not yet committed: at each
moment, the readings received so far in the panel's window minus those whose batch committed.
"""

from __future__ import annotations

from urbanpulse.dashboards.common import events_annotation, overlapping
from urbanpulse.dashboards.model import Dashboard, Grid, Panel

# Summed per rollup bucket first: Grafana's numeric epoch grouping then sees few rows. Hourly rollups only:
# these panels group by an hour at least; per district (air_hourly_district, traffic_district_1h: every
# station and detector, unregistered ones under 'unknown') rather than per device, a fifth of the rows. Every
# hour that overlaps the range (the one the range starts in too: over the last hour, that is most of the data).
_HOURS = overlapping("bucket", "1 hour")
_RATE_KINDS = (
    f"  SELECT bucket, 'air' AS kind, sum(readings) AS n FROM air_hourly_district WHERE {_HOURS} GROUP BY 1\n"
    f"  UNION ALL SELECT bucket, 'traffic', sum(readings) FROM traffic_district_1h WHERE {_HOURS} GROUP BY 1\n"
    f"  UNION ALL SELECT bucket, 'ispeed', sum(tests) FROM ispeed_1h WHERE {_HOURS} GROUP BY 1\n"
)
# Seconds of an hourly bucket gone by now (a minute at least, an hour at most: readings stamped ahead of the
# clock make an hour that has not begun): the hour in progress is counted at its rate so far,
# not as a whole hour, whose count would read as a drop in ingest at every hour's start.
_ELAPSED = "least(greatest(extract(epoch FROM least(now(), bucket + interval '1 hour') - bucket), 60), 3600)"
# Raw readings received in the range (their measurement time may be a little earlier): for the lag panels.
_RECEIVED = " ".join(
    f"{'UNION ALL ' if i else ''}SELECT '{kind}' AS kind, time, received_at, batch_id FROM {kind}_readings"
    " WHERE time BETWEEN $__timeFrom()::timestamptz - interval '1 hour' AND $__timeTo()"
    " AND $__timeFilter(received_at)\n"
    for i, kind in enumerate(("air", "traffic", "ispeed"))
)

INGEST = Panel(
    "Ingest rate", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), kind AS metric,\n"
    f"  sum(n * 3600.0 / {_ELAPSED}) * 60000.0 / $__interval_ms AS readings_per_minute\n"
    f"FROM (\n{_RATE_KINDS}) AS stored\nGROUP BY 1, 2\nORDER BY 1, 2",
    "short", Grid(0, 0, 12, 8),
    "Readings stored per minute of measurement time, per kind (from the rollups); the hour in progress at the"
    " rate of its minutes so far.",
    min_interval="1h",
)
ACCEPTED = Panel(
    "Accepted and dead-lettered", "timeseries",
    "SELECT $__timeGroupAlias(bucket, $__interval), metric, sum(n) AS messages\n"
    f"FROM (\n  SELECT bucket, 'accepted' AS metric, n FROM (\n{_RATE_KINDS}  ) AS stored\n"
    "  UNION ALL SELECT received_at, 'dead: ' || reason, 1 FROM grafana_dead_letters WHERE $__timeFilter(received_at)\n"
    ") AS flows\nGROUP BY 1, 2\nORDER BY 1, 2",
    "short", Grid(12, 0, 12, 8), "Readings stored and messages refused (by reason) per interval.",
    min_interval="1h", bars=True,
)
DEAD = Panel(
    "Dead letters by reason", "table",
    "SELECT reason, field, kind, count(*) AS messages, max(received_at) AS last_received_at\n"
    "FROM grafana_dead_letters WHERE $__timeFilter(received_at)\n"
    "GROUP BY reason, field, kind\nORDER BY messages DESC, last_received_at DESC\nLIMIT 100",
    "none", Grid(0, 8, 12, 8), "Messages the gateway refused in the range, by reason and field.",
    columns=("reason", "field", "kind", "messages", "last_received_at"),
)
LAG = Panel(
    "Gateway lag", "timeseries",
    "SELECT $__timeGroupAlias(r.received_at, $__interval), r.kind || ' device→gateway p95' AS metric,\n"
    "  percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM r.received_at - r.time)) AS seconds\n"
    f"FROM ({_RECEIVED}) AS r\nGROUP BY 1, 2\n"
    "UNION ALL\n"
    "SELECT $__timeGroupAlias(r.received_at, $__interval), 'gateway→commit p95',\n"
    "  percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM b.created_at - r.received_at))\n"
    f"FROM ({_RECEIVED}) AS r JOIN grafana_ingest_batches AS b ON b.id = r.batch_id\nGROUP BY 1, 2\n"
    "ORDER BY 1, 2",
    "s", Grid(12, 8, 12, 8),
    "95th percentile of the time from measurement to the gateway, per kind, and from the gateway to the "
    "commit (batching, retries, spool), last 6 h.",
    time_from="6h", min_interval="1m",
)
WAITING = Panel(
    "Readings waiting for commit", "timeseries",
    "SELECT t AS time, 'waiting' AS metric, sum(sum(n)) OVER (ORDER BY t) AS readings\n"
    "FROM (\n"
    f"  SELECT $__timeGroup(r.received_at, $__interval) AS t, 1 AS n FROM ({_RECEIVED}) AS r\n"
    "  UNION ALL\n"
    f"  SELECT $__timeGroup(b.created_at, $__interval), -1 FROM ({_RECEIVED}) AS r\n"
    "  JOIN grafana_ingest_batches AS b ON b.id = r.batch_id WHERE b.created_at <= $__timeTo()\n"
    ") AS flows\nGROUP BY t\nORDER BY t",
    "short", Grid(0, 16, 12, 8),
    "Readings received and not yet committed (in the gateway's queue or spool), last 6 h; the live spool "
    "size is the gateway's Prometheus gauge urbanpulse_gateway_spool_bytes.",
    time_from="6h", min_interval="1m",
)
ONLINE = Panel(
    "Devices online by kind", "bargauge",
    "SELECT kind, count(*) FILTER (WHERE online AND enabled) AS online\n"
    "FROM grafana_devices GROUP BY kind ORDER BY kind",
    "none", Grid(12, 16, 6, 8), "Enabled devices connected to the broker now, per kind.",
    columns=("kind", "online"), current=True,
)
SIZE = Panel(
    "Database size", "stat",
    "SELECT total_bytes AS database_bytes FROM grafana_storage() WHERE relation = '(database)'",
    "bytes", Grid(18, 16, 6, 8), "On-disk size of the whole database.", columns=("database_bytes",), current=True,
)
STORAGE = Panel(
    "Storage and compression", "table",
    "SELECT relation, total_bytes, chunks, compressed_chunks,\n"
    "  round((before_compression_bytes::numeric / nullif(after_compression_bytes, 0)), 1) AS compression_ratio\n"
    "FROM grafana_storage() WHERE relation <> '(database)' ORDER BY relation",
    "none", Grid(0, 24, 24, 6),
    "Per readings table: size, chunks (TimescaleDB) or partitions (native), chunks in the columnstore and "
    "its compression ratio (TimescaleDB only).",
    columns=("relation", "total_bytes", "chunks", "compressed_chunks", "compression_ratio"), current=True,
)

PLATFORM = Dashboard(
    uid="urbanpulse-platform",
    title="urbanpulse — platform health",
    description="Is the pipeline keeping up: ingest, refusals, lag, backlog, devices and storage.",
    variables=(),
    panels=(INGEST, ACCEPTED, DEAD, LAG, WAITING, ONLINE, SIZE, STORAGE),
    annotations=(events_annotation("air", "traffic", "ispeed"),),
)
