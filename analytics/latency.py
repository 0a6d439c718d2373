"""Commit-to-event latency on the real stack: simulator -> MQTT -> gateway -> PostgreSQL -> analytics.

:func:`measure` runs, in one event loop, the gateway (:class:`~urbanpulse.gateway.service.Gateway`)
and the analytics service (:meth:`~urbanpulse.analytics.service.Analytics.run`, woken by ingest's
NOTIFY) against a broker and a database it is given, and publishes a simulated fleet in real time
(``devices_per_kind`` of each kind, one reading each every ``interval`` seconds, stamped with the
wall clock), with PM2.5 spikes at the air stations and latency spikes at the speed testers spread
over the run. Then, per event, :data:`LATENCY_SQL` takes

- the commit time of the ingest transaction that stored the reading which *confirmed* the event
  (the ``min_readings``-th from its ``opened_at``): ``pg_xact_commit_timestamp`` of its
  ``ingest_batches`` row;
- the commit time of the analytics transaction that wrote the event: that of its ``opened`` row in
  ``event_outbox``, written in the same transaction (publishing is off, so the row stays);

and the latency is the difference. The database must run with ``track_commit_timestamp = on``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from urbanpulse.analytics.service import Analytics
from urbanpulse.contract import Kind
from urbanpulse.gateway.service import Gateway
from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.stream import Spike, messages

__all__ = ["LATENCY_SQL", "Latency", "measure", "spikes"]

LATENCY_SQL = """
WITH opened AS (
    SELECT (o.payload->'event'->>'id')::bigint AS id, pg_xact_commit_timestamp(o.xmin) AS event_commit
    FROM event_outbox o WHERE o.payload->>'type' = 'event' AND o.payload->>'change' = 'opened'
), readings AS (
    SELECT device_id, time, batch_id FROM air_readings
    UNION ALL SELECT device_id, time, batch_id FROM ispeed_readings
    UNION ALL SELECT device_id, time, batch_id FROM traffic_readings
)
SELECT extract(epoch FROM o.event_commit - pg_xact_commit_timestamp(b.xmin))
FROM opened o JOIN events e ON e.id = o.id
CROSS JOIN LATERAL (SELECT r.batch_id FROM readings r WHERE r.device_id = e.device_id AND r.time >= e.opened_at
                    ORDER BY r.time OFFSET %(confirm)s LIMIT 1) c
JOIN ingest_batches b ON b.id = c.batch_id
ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class Latency:
    """Commit-to-event latencies in seconds (sorted), and the load they were measured under."""

    seconds: tuple[float, ...]
    readings: int  # published
    rate: float  # readings per second offered

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (nearest rank)."""
        if not self.seconds:
            return float("nan")
        return self.seconds[min(len(self.seconds) - 1, max(0, math.ceil(q * len(self.seconds)) - 1))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def p95(self) -> float:
        return self.quantile(0.95)


def spikes(devices_per_kind: int, steps: int, warmup: int, length: int = 4) -> tuple[Spike, ...]:
    """One spike per air station (PM2.5 x 6) and speed tester (latency x 8), starting between
    reading ``warmup + 5`` and ``steps - length - 2``."""
    first, last = warmup + 5, steps - length - 2
    out = []
    for k in range(devices_per_kind):
        at = first + (last - first) * k // max(1, devices_per_kind)
        out.append(Spike(f"air-{k:05d}", "pm25", at, length, 6.0))
        out.append(Spike(f"ispeed-{k:05d}", "latency_ms", at + (last - first) // (2 * devices_per_kind), length, 8.0))
    return tuple(out)


async def measure(settings: Settings, *, devices_per_kind: int, interval: float, seconds: float,
                  seed: int = 42) -> Latency:
    """Play the fleet for ``seconds`` through the gateway and analytics (see the module docstring)."""
    a = settings.analytics
    devices = fleet(devices_per_kind, seed, kinds=tuple(Kind))
    steps = max(1, round(seconds / interval))
    start = datetime.now(UTC)
    stream = list(messages(devices, start, steps, timedelta(seconds=interval), seed,
                           spikes=spikes(devices_per_kind, steps, a.warmup)))
    stop = asyncio.Event()
    async with Gateway(settings) as gateway, Analytics(settings) as analytics:
        running = [asyncio.create_task(gateway.run(stop)), asyncio.create_task(analytics.run(stop))]
        await asyncio.wait_for(gateway.subscribed.wait(), 30)
        await publish(stream, settings.simulator_broker(), rate=len(devices) / interval)
        deadline = asyncio.get_running_loop().time() + 30
        while gateway.stats.readings_stored + gateway.stats.duplicates < len(stream):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # the last batches reach analytics
        stop.set()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    with psycopg.connect(settings.database.dsn) as conn:
        rows = conn.execute(LATENCY_SQL, {"confirm": max(1, a.min_readings) - 1}).fetchall()
    return Latency(tuple(float(r[0]) for r in rows), len(stream), len(devices) / interval)
