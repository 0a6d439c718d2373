"""Live mode: every device publishes a reading stamped with the current time, every ``interval`` seconds.

Presence as devices give it: on connecting, each device's ``online`` on its status topic (retained,
so a gateway that starts later learns it too); on a clean stop, ``offline``. All devices share one
connection, so there is no last will for each: a simulator killed outright leaves them online.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt

from urbanpulse.contract import reading_topic, status_topic
from urbanpulse.settings import BrokerSettings, SimSettings
from urbanpulse.sim.city import Device, fleet
from urbanpulse.sim.signals import reading
from urbanpulse.sim.stream import MALFORMATIONS, malform

log = logging.getLogger("urbanpulse.sim")


@dataclass(slots=True)
class LiveStats:
    published: int = 0
    acked: int = 0
    malformed: int = 0
    rounds: int = 0


async def run_live(
    broker: BrokerSettings,
    sim: SimSettings,
    stop: asyncio.Event,
    *,
    stats: LiveStats | None = None,
    on_round: Callable[[LiveStats], None] | None = None,
) -> LiveStats:
    """Publish rounds of readings from ``sim.devices_per_kind`` devices of each kind until ``stop``."""
    stats = stats or LiveStats()
    devices = fleet(sim.devices_per_kind, sim.seed)
    rng = random.Random(sim.seed)
    seq = 0
    while not stop.is_set():
        try:
            async with aiomqtt.Client(broker.host, broker.port, username=broker.username,
                                      password=broker.password, identifier=f"urbanpulse-sim-live-{os.getpid()}",
                                      max_inflight_messages=500, timeout=30,
                                      tls_context=broker.ssl_context()) as client:
                client.pending_calls_threshold = len(devices) + 1
                await _presence(client, devices, b"online")
                while not stop.is_set():
                    started = asyncio.get_running_loop().time()
                    await _round(client, devices, seq, rng, sim.malformed_rate, stats)
                    seq += 1
                    stats.rounds += 1
                    if on_round:
                        on_round(stats)
                    wait = sim.interval_seconds - (asyncio.get_running_loop().time() - started)
                    if wait > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), wait)
                await _presence(client, devices, b"offline")
        except aiomqtt.MqttError as exc:
            log.warning("simulator lost the broker (%s); reconnecting", exc)
            await asyncio.sleep(1.0)
    return stats


async def _presence(client: aiomqtt.Client, devices: list[Device], state: bytes) -> None:
    """Each device's presence, retained (QoS 1, acknowledged before this returns)."""
    await asyncio.gather(*(client.publish(status_topic(d.device_id), state, qos=1, retain=True, timeout=30)
                           for d in devices))


async def _round(client: aiomqtt.Client, devices: list[Device], seq: int, rng: random.Random,
                 malformed_rate: float, stats: LiveStats) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    publishes = []
    for device in devices:
        body = reading(device, now, seq, rng)
        if malformed_rate and rng.random() < malformed_rate:
            message = malform(rng.choice(MALFORMATIONS), device, body)
            topic, payload = message.topic, message.payload
            stats.malformed += 1
        else:
            topic, payload = reading_topic(device.kind, device.device_id), json.dumps(body).encode()
        stats.published += 1
        publishes.append(client.publish(topic, payload, qos=1, timeout=30))
    results = await asyncio.gather(*publishes, return_exceptions=True)
    stats.acked += sum(1 for r in results if not isinstance(r, BaseException))
    errors = [r for r in results if isinstance(r, aiomqtt.MqttError)]
    if errors:
        raise errors[0]
