"""Device identity in the gateway (registration required), and presence from status messages.

Runs with the broker ACL off (anonymous local broker), so the gateway is the only line of defence:
a device publishing under another device's topic, an unknown or disabled device, and a device
publishing a kind it is not registered for are all dead-lettered with that reason.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest import make_settings
from faults import through_gateway

from urbanpulse.contract import reading_topic, status_topic
from urbanpulse.gateway.registry import set_enabled, spec
from urbanpulse.localstack import MosquittoServer
from urbanpulse.sim.city import fleet
from urbanpulse.sim.register import register_fleet
from urbanpulse.sim.stream import SimMessage

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def air(device: str, minute: int, topic_device: str | None = None) -> SimMessage:
    body = {
        "device_id": device,
        "time": (T0 + timedelta(minutes=minute)).isoformat(),
        "seq": minute,
        "pm25": 20.0,
        "pm10": 30.0,
        "temperature": 28.0,
        "humidity": 70.0,
    }
    return SimMessage(
        reading_topic("air", topic_device or device),
        json.dumps(body).encode(),
        "air",
        topic_device or device,
        T0 + timedelta(minutes=minute),
    )


def test_only_registered_devices_may_publish(database: str, broker: MosquittoServer) -> None:
    settings = make_settings(database, broker, require_registration=True)
    register_fleet(database, fleet(2, seed=1))  # air-00000, air-00001, traffic-..., ispeed-...
    with psycopg.connect(database) as conn:
        set_enabled(conn, "air-00001", False)
        conn.commit()
    traffic_body = json.loads(air("air-00000", 9).payload)  # an air reading on a traffic device's topic
    traffic_body["device_id"] = "traffic-00000"
    sent = [
        air("air-00000", 1),  # registered, enabled: stored
        air("air-00000", 2, topic_device="air-00009"),  # unknown device in the topic
        air("air-00001", 3),  # disabled
        air("air-00009", 4, topic_device="air-00000"),  # payload speaks for another device than the topic
        SimMessage(
            reading_topic("air", "traffic-00000"), json.dumps(traffic_body).encode(), "air", "traffic-00000", None
        ),  # a traffic device sending air readings
        SimMessage(status_topic("air-00000"), b"online", "status", "air-00000", None),
    ]
    asyncio.run(through_gateway(settings, sent, concurrency=10))
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT device_id, seq FROM air_readings").fetchall()
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters ORDER BY id").fetchall()]
        online, last_seen = conn.execute(
            "SELECT online, last_seen FROM devices WHERE device_id = 'air-00000'"
        ).fetchone() or (None, None)
    assert stored == [("air-00000", 1)]
    assert len(reasons) == 4, reasons  # the status message is presence, not a dead letter
    assert any("unknown device 'air-00009'" in r for r in reasons)
    assert any("device 'air-00001' is disabled" in r for r in reasons)
    assert any("is registered as traffic, not air" in r for r in reasons)
    assert any("device_id 'air-00009' in payload differs from topic device 'air-00000'" in r for r in reasons)
    assert online is True
    assert last_seen is not None


def test_registry_spec_refuses_service_prefix() -> None:
    with pytest.raises(ValueError, match="reserved"):
        spec(device_id="urbanpulse-gateway", kind="air")


def test_a_status_that_is_not_presence_is_dead_lettered_once_saying_why(
    database: str, broker: MosquittoServer
) -> None:
    """Retained status messages of an unknown device, or neither 'online' nor 'offline': one dead letter each,
    naming the reason (they said "unknown kind 'status'"), not one more at every restart of the gateway."""
    import aiomqtt  # noqa: PLC0415

    settings = make_settings(database, broker, require_registration=True)
    register_fleet(database, fleet(1, seed=1))  # air-00000, ...

    async def retain() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="retainer") as client:
            await client.publish(status_topic("air-00009"), b"online", qos=1, retain=True)
            await client.publish(status_topic("air-00000"), b"dunno", qos=1, retain=True)

    asyncio.run(retain())
    with psycopg.connect(database) as conn:  # a disabled device's last will is still its presence
        set_enabled(conn, "air-00000", False)
        conn.execute("UPDATE devices SET online = true WHERE device_id = 'air-00000'")
    asyncio.run(through_gateway(settings, [SimMessage(status_topic("air-00000"), b"offline", "status", "air-00000",
                                                      None)]))
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT online FROM devices WHERE device_id = 'air-00000'").fetchone() == (False,)
        set_enabled(conn, "air-00000", True)
    reasons = []
    for minute in (1, 2):  # the gateway started twice, its session kept
        asyncio.run(through_gateway(settings, [air("air-00000", minute)]))
        with psycopg.connect(database) as conn:
            reasons.append(sorted(r[0] for r in conn.execute("SELECT reason FROM dead_letters").fetchall()))
    assert reasons[0] == ["a status payload must be 'online' or 'offline'", "status of unknown device 'air-00009'"]
    assert reasons[1] == reasons[0]


def test_a_spooled_status_or_platform_message_replays_as_it_was_taken() -> None:
    """Replayed from the spool, a status message is a presence (nothing to store) or its own dead letter, and
    analytics' events on the same root are nothing: all three used to replay as "unknown kind" dead letters."""
    from urbanpulse.contract import Kind  # noqa: PLC0415
    from urbanpulse.gateway.registry import DeviceDirectory  # noqa: PLC0415
    from urbanpulse.gateway.service import Gateway  # noqa: PLC0415
    from urbanpulse.gateway.spool import SpooledMessage  # noqa: PLC0415
    from urbanpulse.settings import Settings  # noqa: PLC0415

    gateway = Gateway(Settings())
    gateway.directory = DeviceDirectory({"air-00000": (Kind.AIR, True)})
    now = datetime.now(UTC)
    replayed = {topic: gateway._reparse(SpooledMessage(topic, payload, now)) for topic, payload in [
        (status_topic("air-00000"), b"offline"), (status_topic("air-00009"), b"online"),
        ("urbanpulse/v1/events/air-00000", b'{"id": 1}')]}
    assert [(len(p.readings), [d.reason for d in p.rejected]) for p in replayed.values()] == [
        (0, []), (0, ["status of unknown device 'air-00009'"]), (0, [])]
