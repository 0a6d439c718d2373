"""The whole chain on real parts: simulator -> Mosquitto -> gateway -> PostgreSQL -> analytics -> events."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from faults import through_gateway

from urbanpulse.analytics.service import Analytics
from urbanpulse.dashboards.macros import expand
from urbanpulse.dashboards.render import dashboard_json, panel_queries
from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet, provinces
from urbanpulse.sim.stream import MALFORMATIONS, SimMessage, Spike, messages

pytestmark = pytest.mark.integration

SPIKE = Spike(device_id="air-00003", metric="pm25", start=60, length=4, factor=8.0)


def simulation() -> list[SimMessage]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    return list(messages(fleet(10, seed=7), start, steps=80, step=timedelta(minutes=1), seed=7,
                         malformed_rate=0.05, spikes=(SPIKE,)))


def test_simulated_city_end_to_end(settings: Settings) -> None:
    sent = simulation()
    malformed = [m for m in sent if not m.valid]
    valid = [m for m in sent if m.valid]
    assert len(sent) >= 2000
    assert 0.03 < len(malformed) / len(sent) < 0.07
    assert set(Counter(m.malformed for m in malformed)) == set(MALFORMATIONS)

    gateway, _ = asyncio.run(through_gateway(settings, sent))
    assert gateway.stats.messages == len(sent)

    with psycopg.connect(settings.database.dsn) as conn:
        for kind in ("air", "traffic", "ispeed"):
            expected = {(m.device_id, m.time) for m in valid if m.kind == kind}
            rows = conn.execute(f"SELECT device_id, time FROM {kind}_readings").fetchall()
            assert len(rows) == len(expected), kind  # exactly once: no more rows than readings
            assert set(rows) == expected, kind
        letters = conn.execute("SELECT topic, payload, reason, field FROM dead_letters").fetchall()
        assert len(letters) == len(malformed)
        by_payload = {(topic, bytes(payload)): (reason, field) for topic, payload, reason, field in letters}
        for m in malformed:
            reason, field = by_payload[(m.topic, m.payload)]
            assert field == m.expected_field, (m.malformed, reason)
            assert m.expected_field in reason, (m.malformed, reason)

    async def detect() -> None:
        async with Analytics(settings) as analytics:
            await analytics.step()

    asyncio.run(detect())
    with psycopg.connect(settings.database.dsn) as conn:
        events = conn.execute("SELECT device_id, metric FROM events").fetchall()
    assert (SPIKE.device_id, SPIKE.metric) in events
    # few events: the spike, and not a flood of false alarms over 30 devices x 80 readings
    assert len(events) <= 10, events

    # every panel of the generated dashboard, macros expanded for the simulated range, returns rows
    document = dashboard_json()
    times = [m.time for m in valid if m.time is not None]
    variables = {"kind": ["air", "traffic", "ispeed"], "province": sorted({p.name for p in provinces()})}
    with psycopg.connect(settings.database.dsn) as conn:
        queries = panel_queries(document)
        assert len(queries) >= 6
        for query in queries:
            sql = expand(query.raw_sql, time_from=min(times) - timedelta(minutes=1), time_to=datetime.now(UTC),
                         interval=timedelta(minutes=1), variables=variables)
            rows = conn.execute(sql.encode()).fetchall()
            assert rows, query.panel_title
