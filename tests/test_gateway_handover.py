"""The pump's hand-over of a batch to the writer (``handover.hand_over``) never waits on a queue nobody empties,
a stop (``handover.settle``) waits for the writer's batches, not for its whole grace period, and a cancelled
writer ends (``next_batch``) or is waited for no longer than the grace (``cancel_writer``)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiomqtt
import pytest

from urbanpulse.gateway import handover
from urbanpulse.gateway.committer import Pending
from urbanpulse.gateway.handover import STOP_GRACE, cancel_writer, hand_over, next_batch, settle


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


def test_a_writer_cancelled_as_its_batch_arrives_ends_and_leaves_the_batch_queued() -> None:
    """On Python 3.11 ``asyncio.wait_for(queue.get(), t)`` returns the batch and swallows a cancellation
    that comes in the same turn of the event loop as the batch: the writer lived on, and the stop that
    awaited it hung (the fault tests, once in about 20 CI runs). ``next_batch`` lets it through."""

    async def scenario() -> tuple[bool, int]:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(next_batch(queue, 5.0))
        for _ in range(3):
            await asyncio.sleep(0)  # the reader waits on the queue
        queue.put_nowait(Pending())
        reader.cancel()  # before the reader runs again
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        return reader.cancelled(), queue.qsize()

    assert asyncio.run(scenario()) == (True, 1)


def test_next_batch_gives_none_after_its_wait() -> None:
    async def scenario() -> tuple[Pending | None, Pending | None]:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        nothing = await next_batch(queue, 0.05)
        queue.put_nowait(Pending(readings=3))
        return nothing, await next_batch(queue, 0.05)

    nothing, batch = asyncio.run(scenario())
    assert nothing is None
    assert batch is not None
    assert batch.readings == 3


async def _stubborn_writer() -> None:
    """A writer that lives on after its first cancellation (what a swallowed one looks like); the second ends it."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


def test_cancel_writer_waits_for_a_stubborn_writer_no_longer_than_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handover, "STOP_GRACE", 0.2)

    async def scenario() -> float:
        writer = asyncio.create_task(_stubborn_writer())
        await asyncio.sleep(0)
        started = time.monotonic()
        await cancel_writer(writer, None)
        took = time.monotonic() - started
        assert not writer.done()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        return took

    assert 0.15 < asyncio.run(scenario()) < 2.0


def test_cancel_writer_raises_a_writers_own_error_and_not_a_dropped_connection() -> None:
    async def scenario(error: Exception) -> None:
        async def failing() -> None:
            raise error

        writer = asyncio.create_task(failing())
        await asyncio.sleep(0)
        await cancel_writer(writer)

    asyncio.run(scenario(aiomqtt.MqttError("gone")))
    with pytest.raises(RuntimeError, match="refused"):
        asyncio.run(scenario(RuntimeError("refused")))
