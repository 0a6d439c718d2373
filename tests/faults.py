"""Helpers for fault tests: a gateway in its own process, a steady publisher, reconciliation with the database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from urbanpulse.gateway.child import GatewayProcess
from urbanpulse.gateway.service import Gateway
from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.stream import SimMessage, messages


def steady_stream(devices_per_kind: int, steps: int, seed: int = 11) -> list[SimMessage]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    return list(messages(fleet(devices_per_kind, seed), start, steps, timedelta(seconds=10), seed))


def gateway_process(settings: Settings, spool_dir: Path, log: Path) -> GatewayProcess:
    return GatewayProcess({
        "URBANPULSE_BROKER__PORT": str(settings.broker.port),
        "URBANPULSE_DATABASE__DSN": settings.database.dsn,
        "URBANPULSE_GATEWAY__SPOOL_DIR": str(spool_dir),
        "URBANPULSE_GATEWAY__RETRY_SECONDS": "0.2",
        "URBANPULSE_GATEWAY__METRICS_PORT": "0",
        "URBANPULSE_GATEWAY__REQUIRE_REGISTRATION": "false",
    }, log)


async def through_gateway(settings: Settings, sent: list[SimMessage], *, concurrency: int = 100,
                          published_at: dict[int, float] | None = None) -> tuple[Gateway, set[int]]:
    """Run a gateway, publish ``sent`` (every PUBACK awaited), wait until the gateway acknowledged as many
    messages, stop it cleanly; returns the gateway (for its stats) and the acknowledged indices."""
    stop = asyncio.Event()
    async with Gateway(settings) as gateway:
        task = asyncio.create_task(gateway.run(stop))
        await gateway.subscribed.wait()
        report = await publish(sent, settings.broker, concurrency=concurrency, published_at=published_at)
        assert len(report.acked) == len(sent)
        for _ in range(600):
            if gateway.stats.acked >= len(sent):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
    return gateway, report.acked


def stored_keys(dsn: str) -> dict[str, list[tuple[str, datetime]]]:
    with psycopg.connect(dsn) as conn:
        return {kind: conn.execute(f"SELECT device_id, time FROM {kind}_readings").fetchall()  # type: ignore[misc]
                for kind in ("air", "traffic", "ispeed")}


def wait_for_rows(dsn: str, expected: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        try:
            total = sum(len(v) for v in stored_keys(dsn).values())
        except psycopg.OperationalError:
            total = 0
        if total >= expected:
            return total
        time.sleep(0.25)
    return total


def reconcile(dsn: str, sent: list[SimMessage], acked: set[int]) -> tuple[int, int, int]:
    """(acked readings, stored readings, acked readings missing from the database); asserts no duplicates."""
    rows = stored_keys(dsn)
    stored = {(kind, device, t) for kind, keys in rows.items() for device, t in keys}
    assert len(stored) == sum(len(v) for v in rows.values()), "duplicate rows"
    wanted = {(sent[i].kind, sent[i].device_id, sent[i].time) for i in acked}
    return len(wanted), len(stored), len(wanted - stored)
