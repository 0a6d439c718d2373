"""After a load test: compare what the broker acknowledged with what the database holds.

For every acknowledged message the readings it carried must be stored exactly once, or the message
must be in ``dead_letters``. A reading stored twice under two keys (same device and ``seq``) is a
duplicate; an acknowledged reading neither stored nor dead-lettered is lost. End-to-end latency is
publish (wall clock) to the commit of the batch that stored the reading (``ingest_batches.created_at``,
the start of that transaction, a lower bound by the length of one write).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from urbanpulse.sim.stream import SimMessage

Key = tuple[str, str, datetime]  # kind, device, time


@dataclass(slots=True)
class Reconciliation:
    published_messages: int = 0
    acked_messages: int = 0
    acked_readings: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    dead_lettered_messages: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    lost_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1),
            "max": round(max(values), 1)}


def reconcile(
    dsn: str, messages: list[SimMessage], acked: Iterable[int], published_at: Mapping[int, float]
) -> Reconciliation:
    """Check acknowledged ``messages`` (by index) against the database at ``dsn``."""
    acked = set(acked)
    out = Reconciliation(published_messages=len(published_at), acked_messages=len(acked))
    wanted: dict[Key, float] = {}
    for index in acked:
        message = messages[index]
        for t in message.reading_times:
            wanted.setdefault((message.kind, message.device_id, t), published_at.get(index, 0.0))
    out.acked_readings = len(wanted)
    with psycopg.connect(dsn) as conn:
        stored: dict[Key, float] = {}
        for kind in ("air", "traffic", "ispeed"):
            rows = conn.execute(
                f"SELECT r.device_id, r.time, extract(epoch FROM b.created_at) FROM {kind}_readings r "
                "JOIN ingest_batches b ON b.id = r.batch_id"
            ).fetchall()
            for device, t, committed in rows:
                stored[(kind, device, t)] = float(committed)
            extra = conn.execute(
                f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {kind}_readings "
                "GROUP BY device_id, seq HAVING count(*) > 1) AS copies"
            ).fetchone()
            out.duplicates += int(extra[0]) if extra else 0
        letters = {(topic, bytes(payload)) for topic, payload in conn.execute(
            "SELECT topic, payload FROM dead_letters").fetchall()}
    out.stored = len(stored)
    refused = {(messages[i].topic, messages[i].payload) for i in acked} & letters
    out.dead_lettered_messages = len(refused)
    latencies = []
    for index in sorted(acked):
        message = messages[index]
        if (message.topic, message.payload) in letters:
            continue
        for t in message.reading_times:
            key = (message.kind, message.device_id, t)
            if key in stored:
                latencies.append(max(0.0, (stored[key] - wanted[key]) * 1000))
            else:
                out.lost += 1
                if len(out.lost_examples) < 5:
                    out.lost_examples.append(f"{key[0]} {key[1]} {key[2].isoformat()}")
    out.latency_ms = _percentiles(latencies)
    return out
