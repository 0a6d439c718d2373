"""Backfill: weeks of history written straight into the database (no broker), for demos and benchmarks.

Readings go through the gateway's parser (so the contract holds) and ingest's writer, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psycopg

from urbanpulse.contract import utc_now
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.writer import write_batch
from urbanpulse.sim.stream import SimMessage


async def backfill(dsn: str, stream: Iterable[SimMessage], *, batch_size: int = 10000,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write every reading of ``stream``; returns how many were stored."""
    stored = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        batch = Batch()
        for message in stream:
            reading_times = message.reading_times
            received = max(reading_times) if reading_times else None
            parsed = parse_message(message.topic, message.payload, received or utc_now())
            if parsed.kind is not None:
                for reading in parsed.readings:
                    batch.add(parsed.kind, reading, parsed.received_at)
            for letter in parsed.rejected:
                batch.reject(letter)
            if len(batch) >= batch_size:
                stored += (await write_batch(conn, batch)).stored
                batch = Batch()
                if progress:
                    progress(stored)
        if len(batch):
            stored += (await write_batch(conn, batch)).stored
    return stored


