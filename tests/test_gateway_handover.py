"""The pump's hand-over of a batch to the writer (``handover.hand_over``) never waits on a queue nobody empties,
and a stop (``handover.settle``) waits for the writer's batches, not for its whole grace period."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest

from urbanpulse.gateway.committer import Pending
from urbanpulse.gateway.handover import STOP_GRACE, hand_over, settle


async def _idle_writer() -> None:
    await asyncio.Event().wait()


async def _failed_writer() -> None:
    raise RuntimeError("the database refused the batch")


def test_a_batch_is_put_on_a_free_queue() -> None:
    async def scenario() -> int:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(_idle_writer())
        await hand_over(queue, Pending(), writer, asyncio.get_running_loop().create_future())
        writer.cancel()
        return queue.qsize()

    assert asyncio.run(scenario()) == 1


def test_a_failed_writer_is_raised_instead_of_waited_for() -> None:
    async def scenario() -> None:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        queue.put_nowait(Pending())  # full: only the writer could make room
        writer = asyncio.create_task(_failed_writer())
        await asyncio.wait_for(hand_over(queue, Pending(), writer, asyncio.get_running_loop().create_future()), 5)

    with pytest.raises(RuntimeError, match="refused the batch"):
        asyncio.run(scenario())


def test_a_dropped_connection_ends_the_wait_and_queues_nothing() -> None:
    async def scenario() -> int:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        queue.put_nowait(Pending())
        writer = asyncio.create_task(_idle_writer())  # busy with another batch for good
        disconnected = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.1, disconnected.set_result, None)
        try:
            with pytest.raises(aiomqtt.MqttError, match="Disconnected"):
                await asyncio.wait_for(hand_over(queue, Pending(), writer, disconnected), 5)
        finally:
            writer.cancel()
        return queue.qsize()

    assert asyncio.run(scenario()) == 1


async def _writer_of(queue: asyncio.Queue[Pending], seconds: float) -> None:
    """A writer that takes ``seconds`` to commit each batch, and runs until cancelled."""
    while True:
        await queue.get()
        await asyncio.sleep(seconds)
        queue.task_done()


def test_settle_returns_once_the_writer_committed_what_it_had() -> None:
    async def scenario() -> tuple[float, int]:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(_writer_of(queue, 0.2))
        queue.put_nowait(Pending())
        started = time.monotonic()
        await settle(queue, writer)  # the writer lives on: settle must not wait for it to end
        took = time.monotonic() - started
        writer.cancel()
        return took, queue.qsize()

    took, left = asyncio.run(scenario())
    assert left == 0
    assert 0.15 < took < STOP_GRACE / 5
