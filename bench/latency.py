"""Commit-to-event latency of analytics on the real stack, under the simulator's load.

    python bench/latency.py [--devices-per-kind 20] [--interval 1] [--seconds 120] [--repeat 3]

Starts PostgreSQL (``track_commit_timestamp = on``) and Mosquitto from the system binaries, runs the
gateway and ``urbanpulse analytics`` in-process and publishes a simulated fleet in real time with
spikes that open events (``urbanpulse.analytics.latency``). The latency of an event is the commit
time of the analytics transaction that wrote it minus the commit time of the ingest transaction
that stored the reading confirming it. Prints p50 / p95 / max per run and their medians. The
default load is the simulator's default (20 devices of each kind, one reading a second each).

Target (issue 7): p95 < 2 s.

``--long-transaction``: a transaction that writes (holds a transaction id) stays open in the same
database for the whole run, as a long report or a TimescaleDB policy job would; analytics waits only
for ingest transactions (``urbanpulse.ingest.horizon``), so the latency should not change.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import psycopg

from urbanpulse.analytics.latency import measure
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import AnalyticsSettings, BrokerSettings, DatabaseSettings, GatewaySettings, Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices-per-kind", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two readings of a device")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-transaction", action="store_true", help="hold a write transaction open meanwhile")
    args = parser.parse_args()
    p50s, p95s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            with (PostgresServer(Path(tmp) / f"pg{run}", extra_conf={"track_commit_timestamp": "on"}) as pg,
                  MosquittoServer(Path(tmp) / f"mq{run}") as mq):
                migrate(pg.dsn)
                settings = Settings(
                    broker=BrokerSettings(port=mq.port), database=DatabaseSettings(dsn=pg.dsn),
                    gateway=GatewaySettings(spool_dir=Path(tmp) / f"spool{run}", metrics_port=None,
                                            require_registration=False),
                    analytics=AnalyticsSettings(publish=False))
                with psycopg.connect(pg.dsn, autocommit=True) as holder:
                    if args.long_transaction:
                        holder.execute("BEGIN")
                        holder.execute("SELECT pg_current_xact_id()")  # has an id, as any write gives it
                    lat = asyncio.run(measure(settings, devices_per_kind=args.devices_per_kind,
                                              interval=args.interval, seconds=args.seconds, seed=42 + run))
                    if args.long_transaction:
                        holder.execute("ROLLBACK")
            p50s.append(lat.p50)
            p95s.append(lat.p95)
            print(f"run {run + 1}: {lat.readings} readings at {lat.rate:.0f}/s, {len(lat.seconds)} events: "
                  f"p50 {lat.p50 * 1000:.0f} ms, p95 {lat.p95 * 1000:.0f} ms, max {max(lat.seconds) * 1000:.0f} ms",
                  flush=True)
    print(f"\nmedians of {args.repeat} runs: p50 {statistics.median(p50s) * 1000:.0f} ms, "
          f"p95 {statistics.median(p95s) * 1000:.0f} ms (target p95 < 2000 ms)")


if __name__ == "__main__":
    main()
