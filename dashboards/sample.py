"""A database with something to show: simulated days of history, registered devices, events and incidents.

For the dashboard and report tests and for demos: the simulator's fleet is registered, its readings
(with a share of malformed messages) are written the way the simulator's backfill does (the gateway's
parser, ingest's writer) but received 2 s after they were measured -- the backfill stamps a malformed
message with the wall clock, which would put every dead letter after the history --, the rollups are
built from the beginning by ``maintain()``, some devices are marked
online, and a few events and incidents (open, acknowledged, resolved) are inserted by hand, as analytics
would have written them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from urbanpulse.contract import Kind
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.writer import write_batch
from urbanpulse.sim.city import Device, fleet
from urbanpulse.sim.register import register_fleet
from urbanpulse.sim.stream import SimMessage, Spike, messages

_DELAY = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class Sample:
    """What :func:`fill` wrote: the fleet, the end of its history, and the device that has events."""

    devices: tuple[Device, ...]
    end: datetime
    stored: int
    event_device: str


def _events(conn: psycopg.Connection[tuple[object, ...]], devices: tuple[Device, ...], end: datetime) -> str:
    """Per province, three incidents (open, acknowledged, resolved) with member events of every kind, and a
    fresh event per kind; returns the first air device with events."""
    first = ""
    for province in dict.fromkeys(d.province.name for d in devices):
        mine = tuple(d for d in devices if d.province.name == province)
        device = _province_events(conn, mine, end)
        first = first or device
    return first


def _province_events(conn: psycopg.Connection[tuple[object, ...]], devices: tuple[Device, ...], end: datetime) -> str:
    by_kind = {kind: next(d for d in devices if d.kind is kind) for kind in Kind}
    air, traffic, ispeed = by_kind[Kind.AIR], by_kind[Kind.TRAFFIC], by_kind[Kind.ISPEED]
    day = timedelta(days=1)
    incidents = [  # (device, family, status, severity, opened, acknowledged after, closed after)
        (air, "air_quality", "open", "critical", end - 3 * day, None, None),
        (traffic, "traffic", "acknowledged", "warning", end - 2 * day, timedelta(minutes=7), None),
        (ispeed, "network", "resolved", "warning", end - 5 * day, timedelta(minutes=3), timedelta(hours=2)),
    ]
    for device, family, status, severity, opened, ack, closed in incidents:
        row = conn.execute(
            "INSERT INTO incidents (scope, province, district, kind, status, severity, title, members, opened_at,"
            " last_opened_at, resolved_at, raised_at, acknowledged_at, acknowledged_by, closed_at)"
            " VALUES ('district', %s, %s, %s, %s, %s, %s, 2, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [device.province.name, device.district.name, family, status, severity,
             f"{family.replace('_', ' ')} in {device.district.name}", opened, opened,
             opened + closed if closed else None, opened, opened + ack if ack else None,
             "operator" if ack else None, opened + closed if closed else None]).fetchone()
        assert row is not None
        resolved = opened + closed if closed else None
        _event(conn, device, MAIN_METRIC[device.kind], "resolved" if resolved else status, severity, opened,
               resolved, end, row[0])
        _event(conn, device, FRESH_METRIC[device.kind], "open", "warning", end - timedelta(minutes=20), None, end, None)
    return air.device_id


MAIN_METRIC = {Kind.AIR: "pm25", Kind.TRAFFIC: "speed_kmh", Kind.ISPEED: "download_mbps"}
FRESH_METRIC = {Kind.AIR: "humidity", Kind.TRAFFIC: "occupancy_pct", Kind.ISPEED: "latency_ms"}


def _event(conn: psycopg.Connection[tuple[object, ...]], device: Device, metric: str, status: str, severity: str,
           opened: datetime, resolved: datetime | None, end: datetime, incident: object) -> None:
    conn.execute(
        "INSERT INTO events (device_id, kind, metric, detector, status, severity, opened_at, last_seen_at,"
        " resolved_at, peak_score, last_score, peak_value, readings, province, district, incident_id, raised_at,"
        " closed_at) VALUES (%s, %s, %s, 'ewma', %s, %s, %s, %s, %s, 0.97, 0.9, 180.0, 5, %s, %s, %s, %s, %s)",
        [device.device_id, device.kind.value, metric, status, severity, opened, resolved or end - timedelta(minutes=5),
         resolved, device.province.name, device.district.name, incident, opened, resolved])


async def _write(dsn: str, stream: Iterable[SimMessage], start: datetime, step: timedelta, per_step: int) -> int:
    """The simulator's backfill, but every message (malformed ones too) received 2 s after its round."""
    stored = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        batch = Batch()
        for index, message in enumerate(stream):
            parsed = parse_message(message.topic, message.payload, start + (index // per_step) * step + _DELAY)
            for reading in parsed.readings if parsed.kind is not None else ():
                batch.add(parsed.kind, reading, parsed.received_at)  # type: ignore[arg-type]
            for letter in parsed.rejected:
                batch.reject(letter)
            if len(batch) >= 5000:
                stored += (await write_batch(conn, batch)).stored
                batch = Batch()
        if len(batch):
            stored += (await write_batch(conn, batch)).stored
    return stored


def fill(dsn: str, end: datetime, *, days: float = 8, devices_per_kind: int = 5,
         step: timedelta = timedelta(minutes=10), provinces: tuple[str, ...] = ("Ha Noi", "Da Nang"),
         seed: int = 7) -> Sample:
    """Fill the migrated database at ``dsn`` with ``days`` of history ending at ``end`` (see the module doc)."""
    devices = tuple(fleet(devices_per_kind, seed, provinces_named=provinces))
    register_fleet(dsn, devices)
    steps = int(timedelta(days=days) / step)
    spike = Spike(device_id=devices[0].device_id, metric="pm25", start=steps - 30, length=12, factor=5.0)
    stream = messages(list(devices), end - steps * step, steps, step, seed, malformed_rate=0.02, spikes=(spike,))
    stored = asyncio.run(_write(dsn, stream, end - steps * step, step, len(devices)))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM rollup_state")  # history older than the refresh lookback: build from the start
    maintain(dsn, typical_every=timedelta(0))
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [d.device_id for d in devices]
        conn.execute("UPDATE devices SET online = true, last_seen = %s WHERE device_id = ANY(%s)",
                     [end, ids[::2]])
        conn.execute("UPDATE devices SET enabled = false WHERE device_id = %s", [ids[-1]])
        event_device = _events(conn, devices, end)
        conn.execute("ANALYZE")
    return Sample(devices, end, stored, event_device)
