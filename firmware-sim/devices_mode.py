"""Per-device mode: every device holds its own MQTT connection, with its own credentials, as real
firmware does. A device publishes its messages in order at its own pace, keeps each until the PUBACK
arrives, and after losing the broker reconnects with exponential back-off and full jitter (no
thundering herd), then sends again what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass

import aiomqtt

from urbanpulse.contract import status_topic
from urbanpulse.settings import BrokerSettings
from urbanpulse.sim.stream import SimMessage


@dataclass(slots=True)
class FleetReport:
    connected_now: int = 0
    connected_peak: int = 0
    reconnects: int = 0
    acked: int = 0


async def publish_per_device(
    messages: list[SimMessage],
    broker: BrokerSettings,
    *,
    duration: float,
    acked: set[int],
    published_at: dict[int, float],
    credentials: dict[str, str] | None = None,
    report: FleetReport | None = None,
    seed: int = 0,
) -> FleetReport:
    """Spread each device's messages evenly over ``duration`` seconds, one connection per device."""
    report = report or FleetReport()
    by_device: dict[str, list[int]] = defaultdict(list)
    for index, message in enumerate(messages):
        by_device[message.device_id].append(index)
    rng = random.Random(seed)
    started = time.monotonic() + 2.0  # connections first, then everybody publishes on schedule
    tasks = [
        asyncio.create_task(_device(device, indices, messages, broker, credentials, report, acked, published_at,
                                    started, duration, rng.random()))
        for device, indices in by_device.items()
    ]
    await asyncio.gather(*tasks)
    return report


async def _device(
    device_id: str, indices: list[int], messages: list[SimMessage], broker: BrokerSettings,
    credentials: dict[str, str] | None, report: FleetReport, acked: set[int], published_at: dict[int, float],
    started: float, duration: float, phase: float,
) -> None:
    period = duration / max(len(indices), 1)
    position = 0
    attempt = 0
    await asyncio.sleep(phase * 2.0)  # devices boot over two seconds, not all at once
    while position < len(indices):
        password = credentials.get(device_id) if credentials else None
        will = aiomqtt.Will(status_topic(device_id), b"offline", qos=1, retain=True)
        try:
            async with aiomqtt.Client(broker.host, broker.port, identifier=f"dev-{device_id}",
                                      username=device_id if credentials else None, password=password,
                                      will=will, keepalive=60, timeout=30,
                                      tls_context=broker.ssl_context()) as client:
                report.connected_now += 1
                report.connected_peak = max(report.connected_peak, report.connected_now)
                attempt = 0
                try:
                    await client.publish(status_topic(device_id), b"online", qos=1, retain=True)
                    while position < len(indices):
                        index = indices[position]
                        due = started + phase * period + position * period
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        published_at.setdefault(index, time.time())
                        await client.publish(messages[index].topic, messages[index].payload, qos=1, timeout=30)
                        acked.add(index)
                        report.acked += 1
                        position += 1
                finally:
                    report.connected_now -= 1
        except aiomqtt.MqttError:
            report.reconnects += 1
            attempt += 1
            await asyncio.sleep(random.uniform(0, min(30.0, 0.5 * 2**attempt)))
