"""The whole chain on real parts: simulator -> Mosquitto -> gateway -> PostgreSQL -> analytics -> events."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from faults import through_gateway

from urbanpulse.analytics.service import Analytics
from urbanpulse.dashboards import panels
from urbanpulse.dashboards.macros import auto_interval, expand
from urbanpulse.dashboards.render import dashboard_json, panel_queries, variable_queries
from urbanpulse.ingest.maintain import maintain
from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.register import register_fleet
from urbanpulse.sim.stream import MALFORMATIONS, SimMessage, Spike, messages

pytestmark = pytest.mark.integration

FLEET = fleet(10, seed=7)
SPIKE = Spike(device_id="air-00003", metric="pm25", start=60, length=4, factor=8.0)


FIRST_LOOK = {
    ("urbanpulse-city", "Readings per minute"), ("urbanpulse-city", "Devices"),
    ("urbanpulse-city", "Devices and air quality"), ("urbanpulse-air", "PM2.5 per district"),
    ("urbanpulse-traffic", "Speed per district"), ("urbanpulse-network", "Median download per province"),
    ("urbanpulse-events", "Events"), ("urbanpulse-platform", "Ingest rate"),
    ("urbanpulse-platform", "Dead letters by reason"), ("urbanpulse-device", "Readings"),
    ("urbanpulse-device", "Events of the device"),
}


def simulation() -> list[SimMessage]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    return list(messages(FLEET, start, steps=80, step=timedelta(minutes=1), seed=7,
                         malformed_rate=0.05, spikes=(SPIKE,)))


def test_simulated_city_end_to_end(settings: Settings) -> None:
    sent = simulation()
    malformed = [m for m in sent if not m.valid]
    valid = [m for m in sent if m.valid]
    assert len(sent) >= 2000
    assert 0.03 < len(malformed) / len(sent) < 0.07
    assert set(Counter(m.malformed for m in malformed)) == set(MALFORMATIONS)

    register_fleet(settings.database.dsn, FLEET)  # the gateway's registry and the dashboards' places
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

    # the dashboards on the same data: every panel of every dashboard runs as Grafana's read-only role with
    # its variables on every value (the device page on the spiked station), and the panels an operator
    # opens first show this short simulation
    maintain(settings.database.dsn)
    lo, hi = min(m.time for m in valid if m.time is not None) - timedelta(minutes=1), datetime.now(UTC)
    interval = auto_interval(hi - lo)
    shown = set()
    with psycopg.connect(settings.database.dsn, autocommit=True) as conn:
        conn.execute("SET ROLE urbanpulse_grafana")
        for board in panels.DASHBOARDS:
            document = dashboard_json(board)
            queries = variable_queries(document)
            chosen: dict[str, list[str]] = {}
            for variable in board.variables:
                sql = expand(queries[variable.name], time_from=lo, time_to=hi, interval=interval, variables=chosen)
                values = [str(row[0]) for row in conn.execute(sql.encode()).fetchall()]
                assert values, (board.uid, variable.name)
                chosen[variable.name] = [SPIKE.device_id] if variable.single else values
            for query in panel_queries(document):
                sql = expand(query.raw_sql, time_from=lo, time_to=hi, interval=interval, variables=chosen)
                if conn.execute(sql.encode()).fetchall():
                    shown.add((board.uid, query.panel_title))
    assert shown >= FIRST_LOOK, sorted(FIRST_LOOK - shown)
