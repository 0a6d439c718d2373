"""``Analytics.step`` over a backlog: a stop ends it between chunks, and the next step goes on from the checkpoint."""

from __future__ import annotations

import asyncio

import pytest
from test_analytics_service import BATCHES, PER_BATCH, settings_for, step_through, write

from urbanpulse.analytics.service import Analytics

pytestmark = pytest.mark.integration


def test_a_stop_ends_a_step_between_chunks(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog is many chunks: with ``stop`` set, a step scores the chunk it is in and returns (a Ctrl-C
    waited for the whole backlog); the next step goes on from the checkpoint, nothing scored twice."""
    from urbanpulse.analytics import store  # noqa: PLC0415

    monkeypatch.setattr(store, "MAX_TRANSACTIONS", 10)  # chunks of 10 batches

    async def run() -> tuple[int, int]:
        await write(database, BATCHES[:30])
        async with Analytics(settings_for(database)) as analytics:
            stop = asyncio.Event()
            stop.set()
            first = await analytics.step(stop)
            rest = await step_through(analytics, 30 * PER_BATCH - first)
        return first, rest

    first, rest = asyncio.run(run())
    assert first == 10 * PER_BATCH
    assert first + rest == 30 * PER_BATCH
