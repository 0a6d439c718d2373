"""Helpers shared by the events tests: a simulated city written to the database, analytics over it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from urbanpulse.analytics.service import Analytics
from urbanpulse.contract import Kind
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.writer import write_batch
from urbanpulse.settings import AnalyticsSettings, BrokerSettings, DatabaseSettings, Settings
from urbanpulse.sim.city import Device, fleet
from urbanpulse.sim.stream import Spike, messages


def recent_start() -> datetime:
    """01:00 UTC of a weekday two to four days ago: the simulator's readings depend only on the hour and on
    whether it is a weekday, and data this recent is inside every retention and not yet compressed
    (TimescaleDB's policy jobs drop or compress older chunks while a test runs: a fixed date of March
    2026 lost its traffic readings to the 90-day retention mid-test)."""
    day = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=2)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


START = recent_start()
STEP = timedelta(minutes=1)
SECRET_HASH = "$7$101$c2FsdHNhbHQ=$aGFzaGhhc2g="  # the shape the devices table asks for; never checked here


def air_fleet(n: int = 36) -> list[Device]:
    """``n`` air stations; with 36, two in each of the 18 districts (Ha Noi: 0-2 and 18-20)."""
    return fleet(n, seed=3, kinds=(Kind.AIR,))


def in_province(devices: list[Device], province: str) -> list[Device]:
    return [d for d in devices if d.province.name == province]


def spikes(devices: list[Device], start: int, length: int = 15, metric: str = "pm25",
           factor: float = 8.0) -> tuple[Spike, ...]:
    return tuple(Spike(d.device_id, metric, start, length, factor) for d in devices)


def batches(devices: list[Device], steps: int, injected: tuple[Spike, ...] = (), seed: int = 11) -> list[Batch]:
    """One batch per simulated minute from ``START``, every device reporting once."""
    out: dict[int, Batch] = {}
    for message in messages(devices, START, steps, STEP, seed=seed, spikes=injected):
        received = message.time or START  # arrives when measured: the data is history, not late
        parsed = parse_message(message.topic, message.payload, received)
        assert parsed.kind is not None
        assert not parsed.rejected
        assert message.time is not None
        batch = out.setdefault(int((message.time - START) / STEP), Batch())
        for reading in parsed.readings:
            batch.add(parsed.kind, reading, received)
    return [out[i] for i in range(steps)]


async def write(dsn: str, written: list[Batch]) -> None:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        for batch in written:
            await write_batch(conn, batch)


def register(dsn: str, devices: list[Device]) -> None:
    """Put ``devices`` in the registry with their province and district."""
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            "INSERT INTO devices (device_id, kind, province, district, secret_hash) VALUES (%s, %s, %s, %s, %s)",
            [(d.device_id, d.kind.value, d.province.name, d.district.name, SECRET_HASH) for d in devices])


def settings_for(dsn: str, broker_port: int | None = None, **analytics: Any) -> Settings:
    broker = BrokerSettings(port=broker_port) if broker_port else BrokerSettings()
    return Settings(database=DatabaseSettings(dsn=dsn), broker=broker, analytics=AnalyticsSettings(**analytics))


async def analyse(settings: Settings) -> Analytics:
    """One step of analytics over everything committed."""
    async with Analytics(settings) as analytics:
        await analytics.step()
    return analytics


def query(dsn: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql.encode(), params).fetchall()


def outbox(dsn: str) -> list[tuple[str, str | None]]:
    """The queued changes, in order: (topic, change or None for a clearing message)."""
    return [(r["topic"], r["payload"] and r["payload"]["change"])
            for r in query(dsn, "SELECT topic, payload FROM event_outbox ORDER BY id")]
