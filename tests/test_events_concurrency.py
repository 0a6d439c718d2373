"""One open event per device x metric x detector, also under concurrent writers (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import fresh_database
from psycopg import AsyncConnection
from test_events_support import (
    START,
    air_fleet,
    batches,
    in_province,
    outbox,
    query,
    register,
    settings_for,
    spikes,
    write,
)

from urbanpulse.analytics.service import Analytics
from urbanpulse.analytics.store import _EVENT_UPSERT
from urbanpulse.localstack import PostgresServer

pytestmark = pytest.mark.integration

DEVICES = air_fleet()
DATA = batches(DEVICES, 70, spikes(in_province(DEVICES, "Ha Noi"), start=40))


def summary(dsn: str) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in query(
        dsn, "SELECT device_id, metric, status, opened_at, resolved_at, severity, province, district, readings "
             "FROM events ORDER BY device_id, metric, opened_at")]


def test_two_consumers_racing_on_the_same_data_never_duplicate_an_event(database: str,
                                                                        pg_cluster: PostgresServer) -> None:
    """Two analytics consumers (different checkpoints, same detector) step together after every batch."""
    register(database, DEVICES)

    async def race() -> tuple[Analytics, Analytics]:
        async with (
            Analytics(settings_for(database, checkpoint_name="one")) as one,
            Analytics(settings_for(database, checkpoint_name="two")) as two,
            await AsyncConnection.connect(database, autocommit=True) as conn,
        ):
            for batch in DATA:
                await write(database, [batch])
                await asyncio.gather(one.step(), two.step())
                row = await (await conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM events WHERE status <> 'resolved' "
                    "GROUP BY device_id, metric, detector HAVING count(*) > 1) d")).fetchone()
                assert row == (0,)
        return one, two

    one, two = asyncio.run(race())
    assert one.stats.readings == two.stats.readings == len(DATA) * len(DEVICES)

    reference = fresh_database(pg_cluster, f"{database}_alone")
    register(reference, DEVICES)

    async def alone() -> None:
        async with Analytics(settings_for(reference)) as analytics:
            for batch in DATA:  # batch by batch too: the same rate-limited 'updated' messages
                await write(reference, [batch])
                await analytics.step()

    asyncio.run(alone())
    raced, single = summary(database), summary(reference)
    assert len(single) >= 6
    assert [r[:-1] for r in raced] == [r[:-1] for r in single]  # the same events, once each
    assert [r[-1] for r in raced] == [2 * r[-1] for r in single]  # each consumer added its readings to the one row
    assert Counter(c for _, c in outbox(database)) == Counter(c for _, c in outbox(reference))
    assert [tuple(r.values()) for r in query(database, "SELECT scope, province, status, members FROM incidents "
                                                       "ORDER BY id")] == \
        [tuple(r.values()) for r in query(reference, "SELECT scope, province, status, members FROM incidents "
                                                     "ORDER BY id")]


def _params(readings: int) -> dict[str, Any]:
    return {"device_id": "air-00000", "kind": "air", "metric": "pm25", "detector": "ewma", "first_at": START,
            "last_seen_at": START + timedelta(minutes=readings), "peak_score": 0.9, "last_score": 0.9,
            "peak_value": 300.0, "readings": readings, "severity": "critical", "flapping": False}


def test_concurrent_upserts_meet_on_the_one_open_row(database: str) -> None:
    """The second transaction waits for the first and then updates its row instead of inserting."""

    async def scenario() -> tuple[bool, bool]:
        async with (
            await AsyncConnection.connect(database, autocommit=True) as first,
            await AsyncConnection.connect(database, autocommit=True) as second,
        ):
            async def upsert(conn: AsyncConnection[Any], readings: int, hold: asyncio.Event | None) -> bool:
                async with conn.transaction():
                    row = await (await conn.execute(_EVENT_UPSERT, _params(readings))).fetchone()
                    assert row is not None
                    if hold is not None:
                        await hold.wait()
                    return bool(row[1])

            release = asyncio.Event()
            one = asyncio.create_task(upsert(first, 3, release))
            await asyncio.sleep(0.2)
            two = asyncio.create_task(upsert(second, 4, None))
            await asyncio.sleep(0.3)
            assert not two.done()  # blocked on the unique index until the first commits
            release.set()
            return await one, await two

    assert asyncio.run(scenario()) == (True, False)
    assert [(r["readings"], r["status"]) for r in query(database, "SELECT * FROM events")] == [(7, "open")]
    with psycopg.connect(database) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO events (device_id, kind, metric, detector, opened_at, last_seen_at, peak_score, "
                     "last_score) VALUES ('air-00000', 'air', 'pm25', 'ewma', now(), now(), 1, 1)")
