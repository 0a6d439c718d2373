"""Replay a simulated scenario through the real analytics path and collect what operators would see.

:func:`arrivals` (pure) cuts a played scenario's messages into the batches a gateway would commit:
a message arrives at the step of the newest reading time published so far (a store-and-forward
backlog arrives when the device is back, a skewed clock within its step). :func:`replay` writes each
batch with ingest's own ``write_batch`` into a migrated database, runs one
:meth:`~urbanpulse.analytics.service.Analytics.step` after each (the code ``urbanpulse analytics``
runs), notes at which step every event row first appears, and returns the incidents with their
member events as :class:`~urbanpulse.analytics.alert_eval.Item` s, plus every stored reading for the
naive baseline and each province's speed tests with the slow-province incidents raised for it (a
standing condition, not an injected incident: reported apart). The database must be empty of readings
and events; the devices are registered with their province and district first, as ``urbanpulse up`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from urbanpulse.analytics.alert_eval import Item, Signal
from urbanpulse.analytics.service import Analytics
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.writer import write_batch
from urbanpulse.settings import Settings
from urbanpulse.sim.engine import Played
from urbanpulse.sim.register import register_fleet
from urbanpulse.sim.scenario import Scenario
from urbanpulse.sim.stream import SimMessage

__all__ = ["ProvinceDay", "Replayed", "arrivals", "replay"]

Reading = tuple[str, datetime, dict[str, float | None]]


def arrivals(scenario: Scenario, messages: list[SimMessage]) -> list[tuple[datetime, list[SimMessage]]]:
    """``(step time, messages)`` per step, in publish order; a message arrives at the step of the newest
    reading time published so far (malformed messages with the one before them)."""
    out: list[tuple[datetime, list[SimMessage]]] = []
    newest = scenario.start
    for message in messages:
        times = message.reading_times
        if times:
            newest = max(newest, *times)
        step_time = scenario.start + ((newest - scenario.start) // scenario.step) * scenario.step
        if not out or out[-1][0] != step_time:
            out.append((step_time, []))
        out[-1][1].append(message)
    return out


@dataclass(frozen=True, slots=True)
class ProvinceDay:
    """A province's speed tests over the whole replay, and the slow-province incidents raised for it."""

    province: str
    tests: int
    median_mbps: float  # of its stored tests of the rule's networks (4G): the truth the rule is checked against
    incidents: tuple[tuple[str, str], ...]  # (status, severity) of each


@dataclass(slots=True)
class Replayed:
    """What a replay produced: analytics' items, the stored readings, the provinces' speeds, and counts."""

    items: list[Item] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    provinces: list[ProvinceDay] = field(default_factory=list)
    events: int = 0
    batches: int = 0


_EVENTS = "SELECT id, device_id, metric, opened_at, COALESCE(resolved_at, last_seen_at), incident_id FROM events"
_PROVINCES = """
SELECT r.province, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY r.download_mbps),
       (SELECT coalesce(array_agg(i.status || ' ' || i.severity ORDER BY i.id), '{}') FROM incidents i
        WHERE i.rule = 'slow_download' AND i.province = r.province)
FROM ispeed_readings r WHERE r.network = ANY(%s) GROUP BY r.province ORDER BY r.province
"""


async def replay(settings: Settings, scenario: Scenario, played: Played) -> Replayed:
    """Play ``played`` into ``settings.database`` batch by batch, analytics stepping after each."""
    register_fleet(settings.database.dsn, played.devices)
    out = Replayed()
    seen_at: dict[int, datetime] = {}
    stored: set[tuple[str, datetime]] = set()
    async with (await AsyncConnection.connect(settings.database.dsn, autocommit=True) as conn,
                Analytics(settings) as analytics):
        for step_time, messages in arrivals(scenario, played.messages):
            received = step_time + scenario.step  # the batch commits at the end of its step
            batch = Batch()
            for message in messages:
                parsed = parse_message(message.topic, message.payload, received)
                if parsed.kind is None:
                    continue
                for reading in parsed.readings:
                    batch.add(parsed.kind, reading, received)
                    key = (reading.device_id, reading.time)
                    if key not in stored:
                        stored.add(key)
                        out.readings.append((reading.device_id, reading.time, _values(reading.model_dump())))
            if not batch.reading_count:
                continue
            await write_batch(conn, batch)
            out.batches += 1
            await analytics.step()
            last = max(seen_at, default=0)
            cur = await conn.execute("SELECT id FROM events WHERE id > %s", [last])
            for (event_id,) in await cur.fetchall():
                seen_at[int(event_id)] = step_time
        rows = await (await conn.execute(_EVENTS)).fetchall()
        out.provinces = [ProvinceDay(str(p), int(n), float(m), tuple(tuple(s.split(" ", 1)) for s in spells))
                         for p, n, m, spells in await (await conn.execute(
                             _PROVINCES, [settings.analytics.slow_province_networks])).fetchall()]
    by_incident: dict[int, list[Signal]] = {}
    for event_id, device, metric, start, end, incident_id in rows:
        signal = Signal(device, metric, start, end, seen_at[int(event_id)])
        by_incident.setdefault(int(incident_id), []).append(signal)
    out.items = [Item(f"I{i}", tuple(signals)) for i, signals in sorted(by_incident.items())]
    out.events = len(rows)
    return out


def _values(doc: dict[str, Any]) -> dict[str, float | None]:
    return {k: float(v) for k, v in doc.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def device_days(scenario: Scenario, played: Played) -> float:
    return len(played.devices) * scenario.duration / timedelta(days=1)
