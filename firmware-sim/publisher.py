"""Publish a simulation's messages with QoS 1 and keep track of every PUBACK.

Multiplexed mode: one MQTT connection carries many devices' messages (raw throughput). A message
whose PUBACK did not arrive is published again after a reconnect -- at-least-once, like firmware
with store-and-forward -- so the report's ``acked`` set is exactly what the broker took charge of.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiomqtt

from urbanpulse.settings import BrokerSettings
from urbanpulse.sim.stream import SimMessage

log = logging.getLogger("urbanpulse.sim")
_publishers = itertools.count(1)


@dataclass(slots=True)
class PublishReport:
    published: int = 0
    acked: set[int] = field(default_factory=set)  # indices of messages whose PUBACK arrived
    attempts: int = 0
    reconnects: int = 0
    seconds: float = 0.0


async def publish(
    messages: Iterable[SimMessage],
    broker: BrokerSettings,
    *,
    rate: float | None = None,
    concurrency: int = 200,
    client_id: str | None = None,
    on_ack: Callable[[int, SimMessage], None] | None = None,
    stop: asyncio.Event | None = None,
    published_at: dict[int, float] | None = None,
) -> PublishReport:
    """Publish ``messages`` (``rate`` per second at most, if given) until every one is acknowledged.

    ``client_id``: by default one of this call's own, so that two simulators never take each other's
    connection over."""
    client_id = client_id or f"urbanpulse-sim-{os.getpid()}-{next(_publishers)}"
    report = PublishReport()
    todo = list(enumerate(messages))
    started = time.monotonic()
    stop = stop or asyncio.Event()
    while todo and not stop.is_set():
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, username=broker.username, password=broker.password,
                identifier=client_id, max_inflight_messages=concurrency, timeout=30,
                tls_context=broker.ssl_context(),
            ) as client:
                client.pending_calls_threshold = concurrency + 1
                todo = await _publish_round(client, todo, report, rate, concurrency, started, on_ack, stop,
                                            published_at)
        except aiomqtt.MqttError as exc:
            report.reconnects += 1
            todo = [(i, m) for i, m in todo if i not in report.acked]
            log.warning("simulator lost the broker (%s); %d messages not yet acknowledged", exc, len(todo))
            await asyncio.sleep(0.5)
    report.seconds = time.monotonic() - started
    return report


async def _publish_round(
    client: aiomqtt.Client,
    todo: list[tuple[int, SimMessage]],
    report: PublishReport,
    rate: float | None,
    concurrency: int,
    started: float,
    on_ack: Callable[[int, SimMessage], None] | None,
    stop: asyncio.Event,
    published_at: dict[int, float] | None,
) -> list[tuple[int, SimMessage]]:
    slots = asyncio.Semaphore(concurrency)
    failed: list[tuple[int, SimMessage]] = []

    async def one(index: int, message: SimMessage) -> None:
        if published_at is not None:
            published_at.setdefault(index, time.time())
        try:
            await client.publish(message.topic, message.payload, qos=1, timeout=30)
        except aiomqtt.MqttError:
            failed.append((index, message))
        else:
            report.acked.add(index)
            if on_ack:
                on_ack(index, message)
        finally:
            slots.release()

    tasks: set[asyncio.Task[None]] = set()
    # A dropped connection does not fail the publishes waiting for their PUBACK (they would time out one
    # by one, and paho queues new ones silently once its in-flight window is full): on a drop, stop
    # waiting for all of them and let publish() reconnect and send what is not acknowledged.
    lost = client._disconnected  # aiomqtt has no public signal for a dropped connection

    def abandon(_: object) -> None:
        for task in tasks:
            task.cancel()

    lost.add_done_callback(abandon)
    try:
        for index, message in todo:
            if stop.is_set():
                failed.append((index, message))
                continue
            if failed or lost.done():  # the connection is gone: reconnect before sending more
                break
            if index in report.acked:
                continue
            if rate:
                ahead = report.attempts / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await slots.acquire()
            if lost.done():
                slots.release()
                break
            report.attempts += 1
            report.published += 1
            task = asyncio.create_task(one(index, message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        lost.remove_done_callback(abandon)
    if (failed or lost.done()) and not stop.is_set():  # publish() reconnects, sends what is not acknowledged
        raise aiomqtt.MqttError(f"connection lost; {len(failed)} publishes were refused or timed out")
    return [(i, m) for i, m in failed if i not in report.acked]
