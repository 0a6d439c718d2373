"""Every change reaches a real Mosquitto through the outbox: in order, retained while open, none lost meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import psycopg
import pytest
from psycopg import AsyncConnection
from test_events_support import air_fleet, analyse, batches, in_province, outbox, query, register, settings_for
from test_events_support import spikes as spiked
from test_events_support import write as write_batches

from urbanpulse.analytics.lifecycle import Target, acknowledge, resolve
from urbanpulse.analytics.publish import EVENTS_FILTER, Publisher, drain, topic
from urbanpulse.analytics.service import Analytics
from urbanpulse.localstack import MosquittoServer
from urbanpulse.settings import Settings

pytestmark = pytest.mark.integration

DEVICES = air_fleet()
HA_NOI = in_province(DEVICES, "Ha Noi")


@contextlib.asynccontextmanager
async def listening(port: int, into: list[aiomqtt.Message]) -> AsyncIterator[None]:
    """A subscriber to every event and incident topic, collecting what arrives into ``into``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"listener-{id(into)}") as client:
        await client.subscribe(EVENTS_FILTER, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                into.append(message)

        task = asyncio.create_task(collect())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def publish_all(settings: Settings) -> Publisher:
    """Run a publisher until the outbox is empty."""
    stop = asyncio.Event()
    publisher = Publisher(settings, poll=0.05)
    task = asyncio.create_task(publisher.run(stop))
    await until(lambda: not outbox(settings.database.dsn))
    stop.set()
    await asyncio.wait_for(task, 10)
    return publisher


def body(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    return dict(json.loads(message.payload))


def city_with_haze(database: str) -> Settings:
    register(database, DEVICES)
    asyncio.run(write_batches(database, batches(DEVICES, 50, spiked(HA_NOI, start=40))))
    return settings_for(database)


def test_changes_are_published_in_order_and_open_ones_retained(database: str, broker: MosquittoServer) -> None:
    settings = city_with_haze(database).model_copy(update={"broker": settings_for(database, broker.port).broker})
    asyncio.run(analyse(settings))
    queued = outbox(database)
    events = query(database, "SELECT id, status, incident_id FROM events ORDER BY id")
    (incident,) = {e["incident_id"] for e in events if e["status"] == "open"}
    assert len(queued) == len(events) + len(query(database, "SELECT id FROM incidents"))  # one 'opened' each

    async def live() -> tuple[list[aiomqtt.Message], list[aiomqtt.Message]]:
        got: list[aiomqtt.Message] = []
        async with listening(broker.port, got):
            publisher = await publish_all(settings)
            await until(lambda: len(got) >= len(queued))
        assert publisher.stats.published == len(queued)
        late: list[aiomqtt.Message] = []
        async with listening(broker.port, late):  # subscribes after the fact: gets the retained states
            await until(lambda: len(late) >= len(queued))
        return got, late

    got, late = asyncio.run(live())
    assert [(str(m.topic), body(m)["change"]) for m in got] == queued
    assert [body(m)["change_id"] for m in got] == sorted(body(m)["change_id"] for m in got)
    assert all(m.qos == 1 for m in got)
    first = body(got[0])
    assert (first["schema"], first["type"], first["event"]["id"]) == (1, "event", events[0]["id"])
    assert {"status", "severity", "incident_id", "province", "district", "peak_value"} <= set(first["event"])
    haze = next(body(m)["incident"] for m in got if str(m.topic) == topic("incident", incident))
    assert haze["members"] == len(haze["event_ids"]) >= 6
    assert haze["scope"] == "province"
    assert {str(m.topic) for m in late} == {t for t, _ in queued}
    assert all(m.retain for m in late)

    # acknowledged, then resolved: the retained state follows, and a resolved topic is cleared
    with psycopg.connect(database, autocommit=True) as conn:
        acknowledge(conn, Target(True, incident), "alice")
        resolve(conn, Target(True, incident), "bob")
    members = {e["id"] for e in events if e["incident_id"] == incident}

    async def after() -> tuple[list[aiomqtt.Message], list[aiomqtt.Message]]:
        got: list[aiomqtt.Message] = []
        async with listening(broker.port, got):
            await until(lambda: len(got) >= len(queued))  # the retained ones first
            assert all(m.retain for m in got)
            got.clear()
            await publish_all(settings)
            await until(lambda: len(got) >= 3 * len(members) + 3)  # acknowledged, resolved, cleared
        late: list[aiomqtt.Message] = []
        async with listening(broker.port, late):
            await asyncio.sleep(0.5)
        return got, late

    got, late = asyncio.run(after())
    changes = [(str(m.topic), body(m)["change"] if m.payload else None) for m in got]
    assert changes[0] == (topic("incident", incident), "acknowledged")
    assert changes[-2:] == [(topic("incident", incident), "resolved"), (topic("incident", incident), None)]
    for event_id in members:
        assert [c for t, c in changes if t == topic("event", event_id)] == ["acknowledged", "resolved", None]
    assert not {str(m.topic) for m in late} & ({topic("event", e) for e in members} | {topic("incident", incident)})


def test_nothing_is_lost_while_the_broker_is_down(database: str, broker: MosquittoServer) -> None:
    settings = city_with_haze(database).model_copy(update={"broker": settings_for(database, broker.port).broker})
    broker.kill()
    asyncio.run(analyse(settings))
    queued = outbox(database)
    assert queued

    async def scenario() -> tuple[Publisher, list[aiomqtt.Message]]:
        stop = asyncio.Event()
        publisher = Publisher(settings, poll=0.05)
        task = asyncio.create_task(publisher.run(stop))
        await until(lambda: publisher.stats.failures >= 2)
        assert outbox(database) == queued  # nothing taken while nobody acknowledges it
        broker.start()
        got: list[aiomqtt.Message] = []
        async with listening(broker.port, got):
            await until(lambda: not outbox(database), seconds=30)
            await until(lambda: len({str(m.topic) for m in got}) == len({t for t, _ in queued}))
        stop.set()
        await asyncio.wait_for(task, 10)
        return publisher, got

    publisher, got = asyncio.run(scenario())
    assert publisher.stats.published == len(queued)
    assert {str(m.topic) for m in got} == {t for t, _ in queued}  # live or retained, every open one arrived


def test_one_drainer_at_a_time(database: str, broker: MosquittoServer) -> None:
    settings = city_with_haze(database).model_copy(update={"broker": settings_for(database, broker.port).broker})
    asyncio.run(analyse(settings))
    queued = outbox(database)

    async def scenario() -> tuple[int, int]:
        async with (
            await AsyncConnection.connect(database, autocommit=True) as holder,
            await AsyncConnection.connect(database, autocommit=True) as conn,
            aiomqtt.Client("127.0.0.1", broker.port) as client,
        ):
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x75726265, 0x6F757462))
                blocked = await drain(conn, client)
            return blocked, await drain(conn, client, limit=3)

    assert asyncio.run(scenario()) == (0, 3)
    assert outbox(database) == queued[3:]


def test_analytics_run_publishes_what_it_raises(database: str, broker: MosquittoServer) -> None:
    register(database, DEVICES)
    settings = settings_for(database, broker.port, poll_seconds=0.1)

    async def scenario() -> list[aiomqtt.Message]:
        got: list[aiomqtt.Message] = []
        stop = asyncio.Event()
        async with listening(broker.port, got), Analytics(settings) as analytics:
            task = asyncio.create_task(analytics.run(stop))
            await write_batches(database, batches(DEVICES, 50, spiked(HA_NOI, start=40)))
            await until(lambda: any(str(m.topic).startswith("urbanpulse/v1/ops/incidents/") for m in got))
            stop.set()
            await asyncio.wait_for(task, 10)
        assert analytics.publisher.stats.published >= 7
        return got

    got = asyncio.run(scenario())
    changes = {body(m)["change"] for m in got}
    assert "opened" in changes
    assert changes <= {"opened", "updated"}
    assert {body(m)["event"]["device_id"] for m in got if body(m)["type"] == "event"} >= {d.device_id for d in HA_NOI}


def test_an_incident_opened_and_resolved_in_one_step_is_published_opened_first(database: str) -> None:
    """A backlog (a restart, a spool replay) can open an incident and resolve it in one analytics chunk: its
    'opened' carries the state it opened in, retained, then 'resolved' and the clearing message. It went out as
    'opened' with status resolved, not retained (the operator's review of the events, 2026-12-01)."""
    register(database, DEVICES)
    asyncio.run(write_batches(database, batches(DEVICES, 70, spiked(HA_NOI, start=30, length=10))))
    settings = settings_for(database)
    asyncio.run(analyse(settings))
    rows = query(database, "SELECT topic, retain, payload FROM event_outbox WHERE topic LIKE %s ORDER BY id",
                 ["%/incidents/%"])
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_incident.setdefault(row["topic"], []).append(row)
    assert by_incident
    resolved = 0
    for changes in by_incident.values():
        first = changes[0]
        assert first["payload"]["change"] == "opened"
        assert first["payload"]["incident"]["status"] == "open"
        assert first["retain"]
        if changes[-1]["payload"] is None:  # resolved in the same step: resolved, then cleared
            resolved += 1
            assert [c["payload"] and c["payload"]["change"] for c in changes[-2:]] == ["resolved", None]
    assert resolved >= 1
