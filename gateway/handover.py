"""How the gateway's receiving loop hands batches to its writer task, and waits on it.

The loop (``Gateway._pump``) parses messages into a batch while the writer commits the previous one;
these helpers wait on the writer, the broker connection and the inbox together, so that a failed
writer re-raises where the loop is, and a dropped connection is noticed wherever the loop waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiomqtt

from urbanpulse.gateway.committer import Pending

__all__ = ["STOP_GRACE", "cancel_writer", "first_of", "hand_over", "next_batch", "settle"]

log = logging.getLogger("urbanpulse.gateway")

STOP_GRACE = 15.0  # seconds a stop (or a dropped connection) waits for the writer's batches to become durable


async def next_batch(queue: asyncio.Queue[Pending], seconds: float) -> Pending | None:
    """The writer's next batch, or None after ``seconds`` without one.

    Not ``asyncio.wait_for(queue.get(), seconds)``: on Python 3.11 that returns the batch, and swallows
    the cancellation, when the writer is cancelled in the very turn of the event loop in which a batch
    reaches it -- and a writer that lives on after its cancellation is awaited for ever (the hang of the
    fault tests' gateway, once in about 20 CI runs). ``asyncio.timeout`` lets the cancellation through;
    the batch then stays queued, unacknowledged.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            return await queue.get()
    return None


async def cancel_writer(writer: asyncio.Task[None], *others: asyncio.Future[Any] | None) -> None:
    """Cancel the writer and ``others`` (None: not there), and wait for the writer to end: at most
    ``STOP_GRACE`` seconds, so a stop never hangs (a writer still running then is a bug, and logged)."""
    for task in (writer, *others):
        if task is not None:
            task.cancel()
    await asyncio.wait({writer}, timeout=STOP_GRACE)
    if not writer.done():
        log.error("the writer did not stop within %.0f s of its cancellation; leaving it", STOP_GRACE)
    elif not writer.cancelled() and not isinstance(writer.exception(), aiomqtt.MqttError | None):
        writer.result()  # an error of its own, raised here as before


async def settle(queue: asyncio.Queue[Pending], writer: asyncio.Task[None]) -> None:
    """Give the writer up to ``STOP_GRACE`` seconds to commit the batches it holds and has queued."""
    joined = asyncio.create_task(queue.join())
    await asyncio.wait({joined, writer}, timeout=STOP_GRACE, return_when=asyncio.FIRST_COMPLETED)
    joined.cancel()


async def hand_over(
    queue: asyncio.Queue[Pending], pending: Pending, writer: asyncio.Task[None], disconnected: asyncio.Future[None]
) -> None:
    """Put ``pending`` on the writer's queue (it holds one batch while the writer commits another). A writer
    that failed re-raises here, and a broker connection that drops meanwhile raises MqttError (the batch is
    not acknowledged: the broker sends it again), instead of waiting on a queue nobody empties."""
    put = asyncio.ensure_future(queue.put(pending))
    try:
        await asyncio.wait({put, writer, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not put.done():
            put.cancel()
    if put.done() and not put.cancelled():
        return
    if writer.done():
        writer.result()
    msg = "Disconnected while the batch waited for the writer"
    cause = disconnected.exception() if disconnected.done() and not disconnected.cancelled() else None
    raise aiomqtt.MqttError(msg) from cause


async def first_of(
    getter: asyncio.Future[aiomqtt.Message],
    writer: asyncio.Task[None],
    others: set[asyncio.Future[Any]],
    seconds: float,
) -> aiomqtt.Message | None:
    """Wait until ``getter``, ``writer`` or one of ``others`` is done, or ``seconds``; the message, if one
    came. A failed writer re-raises here; ``getter`` is cancelled when it is not done (nothing is lost:
    an item stays queued until a getter takes it)."""
    waiting: set[asyncio.Future[Any]] = {getter, writer, *others}
    done, _ = await asyncio.wait(waiting, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    if writer in done:
        writer.result()
    if getter.done():
        return getter.result()
    getter.cancel()
    return None
