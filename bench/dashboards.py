"""Every dashboard panel's query on 30 days x 500 devices: p50 / p95, run as Grafana's read-only role.

    python bench/dashboards.py [--devices 500] [--days 30] [--step-minutes 10] [--runs 15]
                               [--ranges 1h,24h,7d,30d] [--backend postgres|timescaledb]

Generates ``--days`` of readings for ``--devices`` devices (40 % air, 40 % traffic, 20 % speed-test
phones; 8 provinces, 40 districts; air and traffic every ``--step-minutes``, a speed test every 30 min)
straight into the database with SQL, plus events and incidents, runs the maintenance job (rollups, AQI,
typical speeds from the beginning), then expands each panel as Grafana would -- every variable on "All"
(the values its own query returns), ``$__interval`` for ~200 points -- and times it after
``SET ROLE urbanpulse_grafana``. Target: every panel p95 < 250 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from queries import GENERATE as AIR  # the air readings, as bench/queries.py makes them
from queries import server_conf

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.macros import auto_interval, expand, parse_interval
from urbanpulse.dashboards.render import dashboard_json, panel_queries, variable_queries
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import StorageSettings

TARGET_MS = 250.0
DEVICES = """
INSERT INTO devices (device_id, kind, province, district, lat, lon, secret_hash, online, last_seen)
SELECT format('%%s-%%s', k, lpad(i::text, 5, '0')), k, format('P%%s', i %% 8), format('D%%s', i %% 40),
       10 + (i %% 40) * 0.3, 104 + (i %% 13) * 0.3, '$7$101$c2FsdA==$aGFzaA==', i %% 3 > 0, now()
FROM generate_series(0, %(n)s - 1) AS i,
     LATERAL (SELECT CASE WHEN i %% 5 < 2 THEN 'air' WHEN i %% 5 < 4 THEN 'traffic' ELSE 'ispeed' END AS k) AS kk
"""
TRAFFIC = """
INSERT INTO traffic_readings (device_id, time, seq, vehicle_count, interval_s, speed_kmh, occupancy_pct,
                              received_at, batch_id)
SELECT d.device_id, t, extract(epoch FROM t)::bigint, (20 + 30 * random())::bigint, 60,
       greatest(3, 45 - 15 * sin(extract(hour FROM t) / 3.82) + 10 * random()), 5 + 30 * random(),
       t + interval '2 seconds', %(batch)s
FROM (SELECT device_id FROM devices WHERE kind = 'traffic') AS d,
     generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 second', %(step)s::interval) AS t
"""
ISPEED = """
INSERT INTO ispeed_readings (device_id, time, seq, download_mbps, upload_mbps, latency_ms, jitter_ms,
                             packet_loss_pct, operator, network, rsrp_dbm, lat, lon, province, received_at, batch_id)
SELECT d.device_id, t, extract(epoch FROM t)::bigint, 10 + 60 * random(), 5 + 20 * random(), 20 + 40 * random(),
       3 * random(), 0, (ARRAY['Viettel', 'VNPT', 'MobiFone'])[1 + (hashtext(d.device_id || t::text) & 1)
       + (hashtext(d.device_id) & 1)], '4G', -90, d.lat, d.lon, d.province, t + interval '2 seconds', %(batch)s
FROM (SELECT device_id, lat, lon, province FROM devices WHERE kind = 'ispeed') AS d,
     generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 second', interval '30 minutes') AS t
"""
EVENTS = """
INSERT INTO events (device_id, kind, metric, detector, status, severity, opened_at, last_seen_at, resolved_at,
                    peak_score, last_score, readings, province, district)
SELECT device_id, kind, 'm' || (i %% 3), 'ewma', CASE WHEN i %% 10 = 0 THEN 'open' ELSE 'resolved' END,
       (ARRAY['info', 'warning', 'critical'])[1 + i %% 3], %(end)s::timestamptz - i * interval '37 minutes',
       %(end)s::timestamptz - i * interval '37 minutes' + interval '20 minutes',
       CASE WHEN i %% 10 = 0 THEN NULL
            ELSE %(end)s::timestamptz - i * interval '37 minutes' + interval '20 minutes' END,
       0.9, 0.5, 5, province, district
FROM (SELECT device_id, kind, province, district, row_number() OVER () AS i FROM devices) AS d
"""
INCIDENTS = """
INSERT INTO incidents (scope, province, district, kind, status, severity, title, members, opened_at,
                       last_opened_at, raised_at, acknowledged_at, closed_at, resolved_at)
SELECT 'district', format('P%%s', i %% 8), format('D%%s', i %% 40), 'air_quality',
       (ARRAY['open', 'acknowledged', 'resolved'])[1 + i %% 3], 'warning', 'incident ' || i, 3, o, o, o,
       o + interval '5 minutes', CASE WHEN i %% 3 = 2 THEN o + interval '1 hour' END,
       CASE WHEN i %% 3 = 2 THEN o + interval '1 hour' END
FROM generate_series(1, 300) AS i, LATERAL (SELECT %(end)s::timestamptz - i * interval '2 hours' AS o) AS oo
"""


def populate(dsn: str, devices: int, days: int, step_minutes: int, end: datetime) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DEVICES, {"n": devices})
        for day in range(days):
            lo = end - timedelta(days=days - day)
            row = conn.execute("INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (0, 0, 0)"
                               " RETURNING id").fetchone()
            assert row is not None
            params = {"batch": row[0], "lo": lo, "hi": lo + timedelta(days=1), "step": f"{step_minutes} minutes"}
            for statement in (AIR, TRAFFIC, ISPEED):
                conn.execute(statement, params)
            conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason, field, kind, batch_id)"
                         " SELECT %(lo)s::timestamptz + i * interval '3 minutes', 't', '\\x00', "
                         " (ARRAY['invalid json', 'out of range', 'unknown device'])[1 + i %% 3], 'pm25', 'air',"
                         " %(batch)s FROM generate_series(0, 479) AS i", params)
        conn.execute(EVENTS, {"end": end})
        conn.execute(INCIDENTS, {"end": end})
        conn.execute("ANALYZE")
        counts = [conn.execute(f"SELECT count(*) FROM {k}_readings").fetchone() for k in ("air", "traffic", "ispeed")]
        print(f"generated {', '.join(f'{c[0]:,}' for c in counts if c)} air / traffic / speed-test readings"
              f" ({devices} devices x {days} days)")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def bench(dsn: str, end: datetime, spans: list[timedelta], runs: int, timescale: bool) -> list[tuple[str, float]]:
    worst = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE urbanpulse_grafana")
        for board in panels.DASHBOARDS:
            document = dashboard_json(board)
            for span in spans:
                chosen: dict[str, list[str]] = {}
                for variable in board.variables:
                    sql = expand(variable_queries(document)[variable.name], time_from=end - span, time_to=end,
                                 interval=auto_interval(span), variables=chosen)
                    values = [str(r[0]) for r in conn.execute(sql.encode()).fetchall()]
                    chosen[variable.name] = values[:1] if variable.single else values
                for query in panel_queries(document):
                    panel = next(p for p in board.panels if p.title == query.panel_title)
                    shown = min(span, parse_interval(panel.time_from)) if panel.time_from else span
                    floor = parse_interval(panel.min_interval) if panel.min_interval else timedelta(0)
                    sql = expand(query.raw_sql, time_from=end - shown, time_to=end,
                                 interval=max(auto_interval(shown, 200), floor), variables=chosen,
                                 timescaledb=timescale).encode()
                    conn.execute(sql).fetchall()  # warm up
                    took = []
                    for _ in range(runs):
                        started = time.perf_counter()
                        rows = conn.execute(sql).fetchall()
                        took.append((time.perf_counter() - started) * 1000)
                    name = f"{board.uid.removeprefix('urbanpulse-')} / {query.panel_title}"
                    name += f" [{query.ref_id}]" if query.ref_id != "A" else ""
                    mark = "" if p95(took) < TARGET_MS else "  <-- over target"
                    print(f"{name:<58} {int(span.total_seconds() // 3600):>4} h | {statistics.median(took):7.1f}"
                          f" / {p95(took):7.1f} ms | {len(rows):>6} rows{mark}")
                    worst.append((f"{name} ({span})", p95(took)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step-minutes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--ranges", default="1h,24h,7d,30d", help="dashboard ranges to time, e.g. 1h,24h,7d,30d")
    parser.add_argument("--backend", choices=("postgres", "timescaledb"), default="postgres")
    args = parser.parse_args()
    conf = server_conf(args.backend)
    spans = [parse_interval(r) for r in args.ranges.split(",")]
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(Path(tmp) / "pg", extra_conf=conf) as pg:
        migrate(pg.dsn, StorageSettings(backend=args.backend, premake=timedelta(days=2)))
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        started = time.perf_counter()
        populate(pg.dsn, args.devices, args.days, args.step_minutes, end)
        print(f"  in {time.perf_counter() - started:.0f} s")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM rollup_state")  # older than the refresh lookback: build from the beginning
        started = time.perf_counter()
        maintain(pg.dsn, typical_every=timedelta(0))
        print(f"maintain (rollups, AQI, typical speeds from the beginning): {time.perf_counter() - started:.0f} s")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        print(f"backend {args.backend}; every variable on All; p50 / p95 over {args.runs} runs")
        worst = bench(pg.dsn, end, spans, args.runs, args.backend == "timescaledb")
        over = [w for w in worst if w[1] >= TARGET_MS]
        print(f"slowest p95: {max(worst, key=lambda w: w[1])[0]} {max(w[1] for w in worst):.1f} ms;"
              f" {len(over)} of {len(worst)} over {TARGET_MS:g} ms")


if __name__ == "__main__":
    main()
