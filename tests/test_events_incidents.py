"""Incidents on the real PostgreSQL: simultaneous events of a place become one incident with its members."""

from __future__ import annotations

import asyncio

import pytest
from psycopg import AsyncConnection
from test_events_support import (
    START,
    STEP,
    air_fleet,
    analyse,
    batches,
    in_province,
    outbox,
    query,
    register,
    settings_for,
    spikes,
    write,
)

from urbanpulse.analytics.incidents import Place, place_of, title
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.writer import write_batch
from urbanpulse.sim.city import fleet

pytestmark = pytest.mark.integration

DEVICES = air_fleet()
HA_NOI = in_province(DEVICES, "Ha Noi")


def spiked_events(dsn: str) -> list[dict[str, object]]:
    return query(dsn, "SELECT * FROM events WHERE metric = 'pm25' AND peak_value > 150 ORDER BY device_id")


def test_a_province_spiking_together_is_one_incident_with_its_members(database: str) -> None:
    assert len(HA_NOI) == 6
    assert len({d.district.name for d in HA_NOI}) == 3
    register(database, DEVICES)
    asyncio.run(write(database, batches(DEVICES, 50, spikes(HA_NOI, start=40))))
    analytics = asyncio.run(analyse(settings_for(database)))

    events = spiked_events(database)
    assert [e["device_id"] for e in events] == [d.device_id for d in HA_NOI]
    assert {e["incident_id"] for e in events} == {events[0]["incident_id"]}  # one incident, not six alerts
    assert all(e["status"] == "open" and e["province"] == "Ha Noi" for e in events)
    assert {e["district"] for e in events} == {d.district.name for d in HA_NOI}
    assert all(e["opened_at"] == START + 40 * STEP and e["severity"] == "critical" for e in events)

    (incident,) = query(database, "SELECT * FROM incidents WHERE id = %s", [events[0]["incident_id"]])
    members = query(database, "SELECT id FROM events WHERE incident_id = %s", [incident["id"]])
    assert (incident["scope"], incident["province"], incident["district"]) == ("province", "Ha Noi", None)
    assert (incident["kind"], incident["status"], incident["severity"]) == ("air_quality", "open", "critical")
    assert incident["members"] == len(members) >= 6
    assert incident["title"] == f"Air quality: {len(members)} events in 3 districts of Ha Noi"
    assert incident["opened_at"] == START + 40 * STEP
    # no other province got an air-quality incident out of it
    assert query(database, "SELECT count(*) AS n FROM incidents WHERE province <> 'Ha Noi' AND status <> "
                           "'resolved' AND severity = 'critical'")[0]["n"] == 0
    assert analytics.stats.incidents_opened == len(query(database, "SELECT id FROM incidents"))
    changes = outbox(database)
    assert (f"urbanpulse/v1/ops/incidents/{incident['id']}", "opened") in changes
    assert sum(1 for _, change in changes if change == "opened") == len(query(database, "SELECT id FROM events")) \
        + analytics.stats.incidents_opened


def test_one_district_stays_a_district_incident_and_places_stay_apart(database: str) -> None:
    hoan_kiem = [d for d in HA_NOI if d.district.name == "Hoan Kiem"]
    quan_1 = [d for d in DEVICES if d.district.name == "Quan 1"][:1]
    assert len(hoan_kiem) == 2
    register(database, DEVICES)
    asyncio.run(write(database, batches(DEVICES, 50, spikes([*hoan_kiem, *quan_1], start=40))))
    asyncio.run(analyse(settings_for(database)))

    events = spiked_events(database)
    assert len(events) == 3
    by_district = {e["district"]: e["incident_id"] for e in events}
    assert len(set(by_district.values())) == 2
    (hk,) = query(database, "SELECT * FROM incidents WHERE id = %s", [by_district["Hoan Kiem"]])
    assert (hk["scope"], hk["province"], hk["district"], hk["members"]) == ("district", "Ha Noi", "Hoan Kiem", 2)
    assert hk["title"] == "Air quality: 2 events in Hoan Kiem, Ha Noi"
    (q1,) = query(database, "SELECT * FROM incidents WHERE id = %s", [by_district["Quan 1"]])
    assert (q1["scope"], q1["district"], q1["members"]) == ("district", "Quan 1", 1)
    assert q1["title"].startswith("Air quality: pm25 anomaly at air-")


def test_events_apart_by_more_than_the_window_are_separate_incidents(database: str) -> None:
    first, second = [d for d in HA_NOI if d.district.name == "Hoan Kiem"]
    register(database, DEVICES)
    injected = (*spikes([first], start=35, length=5), *spikes([second], start=60, length=5))  # 25 min apart
    asyncio.run(write(database, batches(DEVICES, 80, injected)))
    asyncio.run(analyse(settings_for(database)))

    events = spiked_events(database)
    assert len(events) == 2
    assert events[0]["incident_id"] != events[1]["incident_id"]
    assert all(e["status"] == "resolved" for e in events)  # 5 readings each, then the hold
    incidents = query(database, "SELECT * FROM incidents WHERE id = ANY(%s) ORDER BY id",
                      [[e["incident_id"] for e in events]])
    assert [i["status"] for i in incidents] == ["resolved", "resolved"]  # when their last member resolved
    assert [i["resolved_at"] for i in incidents] == [START + 40 * STEP, START + 65 * STEP]


def test_an_incident_resolves_with_its_last_member(database: str) -> None:
    register(database, DEVICES)
    both = [d for d in HA_NOI if d.district.name == "Cau Giay"]
    injected = (*spikes(both[:1], start=40, length=5), *spikes(both[1:], start=40, length=12))
    data = batches(DEVICES, 70, injected)
    settings = settings_for(database)
    asyncio.run(write(database, data[:51]))  # the first spike ended at 45 and held calm 5 minutes
    asyncio.run(analyse(settings))
    events = spiked_events(database)
    assert [e["status"] for e in events] == ["resolved", "open"]
    (incident,) = query(database, "SELECT * FROM incidents WHERE id = %s", [events[0]["incident_id"]])
    assert incident["status"] == "open"

    asyncio.run(write(database, data[51:]))
    asyncio.run(analyse(settings))
    (incident,) = query(database, "SELECT * FROM incidents WHERE id = %s", [incident["id"]])
    assert (incident["status"], incident["resolved_at"], incident["resolved_by"]) == (
        "resolved", START + 52 * STEP, None)
    assert incident["closed_at"] is not None
    assert incident["time_to_resolve"] is not None
    changes = outbox(database)
    topic = f"urbanpulse/v1/ops/incidents/{incident['id']}"
    assert [c for t, c in changes if t == topic] == ["opened", "resolved", None]  # None: the retained state cleared


def test_a_speed_test_is_placed_by_its_reading_and_a_registered_device_by_the_registry(database: str) -> None:
    phone = next(d for d in fleet(4, seed=1) if d.kind.value == "ispeed")
    station = DEVICES[0]
    register(database, [station])
    from urbanpulse.sim.stream import messages  # noqa: PLC0415

    (message,) = list(messages([phone], START, 1, STEP, seed=1))
    batch = Batch()
    parsed = parse_message(message.topic, message.payload, START)
    batch.add(parsed.kind, parsed.readings[0], START)  # type: ignore[arg-type]

    async def places() -> list[Place]:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            await write_batch(conn, batch)
            return [await place_of(conn, phone.device_id, "ispeed", START),
                    await place_of(conn, phone.device_id, "ispeed", START + STEP),  # no such reading
                    await place_of(conn, station.device_id, "air", START),
                    await place_of(conn, "air-99999", "air", START)]

    assert asyncio.run(places()) == [Place(phone.province.name, None), Place("unknown", None),
                                     Place(station.province.name, station.district.name), Place("unknown", None)]


def test_titles() -> None:
    assert title("network", "province", "Can Tho", None, 4, 0, "x", "y") == "Mobile network: 4 events in Can Tho"
    assert title("traffic", "district", "Ha Noi", "Long Bien", 1, 1, "traffic-00002", "speed_kmh") == (
        "Traffic: speed_kmh anomaly at traffic-00002 in Long Bien, Ha Noi")
    assert title("noise", "province", "unknown", None, 1, 0, "air-1", "noise") == (
        "Noise: noise anomaly at air-1 in an unknown place")
