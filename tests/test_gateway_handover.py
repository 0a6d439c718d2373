"""The pump's hand-over of a batch to the writer (``service._hand_over``) never waits on a queue nobody empties."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from urbanpulse.gateway.committer import Pending
from urbanpulse.gateway.service import _hand_over


async def _idle_writer() -> None:
    await asyncio.Event().wait()


async def _failed_writer() -> None:
    raise RuntimeError("the database refused the batch")


def test_a_batch_is_put_on_a_free_queue() -> None:
    async def scenario() -> int:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(_idle_writer())
        await _hand_over(queue, Pending(), writer, asyncio.get_running_loop().create_future())
        writer.cancel()
        return queue.qsize()

    assert asyncio.run(scenario()) == 1


def test_a_failed_writer_is_raised_instead_of_waited_for() -> None:
    async def scenario() -> None:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        queue.put_nowait(Pending())  # full: only the writer could make room
        writer = asyncio.create_task(_failed_writer())
        await asyncio.wait_for(_hand_over(queue, Pending(), writer, asyncio.get_running_loop().create_future()), 5)

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
                await asyncio.wait_for(_hand_over(queue, Pending(), writer, disconnected), 5)
        finally:
            writer.cancel()
        return queue.qsize()

    assert asyncio.run(scenario()) == 1
