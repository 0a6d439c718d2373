"""paho decodes a packet's MQTT v5 properties alike with its own class and with the shared-table one."""

from __future__ import annotations

import importlib
import select
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from urbanpulse.gateway import paho_speedups
from urbanpulse.gateway.paho_speedups import (
    PublishProperties,
    decode_publish,
    quick_publish_decoding,
    read_many,
    share_publish_tables,
)
from urbanpulse.localstack import MosquittoServer

packet_module: Any = importlib.import_module("paho.mqtt._packet")


def _publish(properties: Properties | None) -> tuple[int, bytes]:
    """A QoS 1 PUBLISH (fixed header's first byte, and the rest after the remaining length)."""
    topic = b"urbanpulse/v1/air/a-1"
    props = properties.pack() if properties is not None else b"\x00"  # type: ignore[no-untyped-call]
    return 0x32, len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + props + b'{"x": 1}'


def _every_type() -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.PayloadFormatIndicator = 1  # byte
    props.TopicAlias = 3  # two-byte integer
    props.MessageExpiryInterval = 3600  # four-byte integer
    props.SubscriptionIdentifier = 300  # variable-byte integer, repeatable
    props.CorrelationData = b"\x00\xffid"  # binary
    props.ContentType = "application/senml+json"  # UTF-8 string
    props.UserProperty = [("site", "hanoi"), ("ward", "ba-dinh")]  # string pairs, repeatable
    return props


@pytest.mark.parametrize("properties", [None, "every type"])
def test_publish_properties_decode_alike(properties: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    header, body = _publish(_every_type() if properties else None)
    monkeypatch.setattr(packet_module, "Properties", Properties)
    theirs = packet_module.decode_publish(header, body, MQTTProtocolVersion.MQTTv5)
    assert share_publish_tables()
    assert packet_module.Properties is PublishProperties
    ours = packet_module.decode_publish(header, body, MQTTProtocolVersion.MQTTv5)
    assert type(ours.properties) is PublishProperties
    assert ours.properties.json() == theirs.properties.json()
    assert (ours.topic, ours.mid, ours.payload) == (theirs.topic, theirs.mid, theirs.payload)
    if properties:
        assert ours.properties.UserProperty == [("site", "hanoi"), ("ward", "ba-dinh")]
        assert ours.properties.SubscriptionIdentifier == [300]


def test_tables_are_shared_and_unpack_starts_clean() -> None:
    first, second = PublishProperties(PacketTypes.PUBLISH), PublishProperties(PacketTypes.PUBACK)
    assert first.names is second.names
    assert first.properties is second.properties
    first.unpack(_every_type().pack())  # type: ignore[no-untyped-call]
    first.unpack(b"\x00")  # type: ignore[no-untyped-call]  # an empty property list clears what was there
    assert first.json() == {}  # type: ignore[no-untyped-call]
    with pytest.raises(Exception, match="does not apply"):
        second.ContentType = "text/plain"  # paho's checks still run


def _decoded(header: int, body: bytes | bytearray, protocol: MQTTProtocolVersion, decode: Any) -> object:
    """What a decoding gives, or the type of error it raises."""
    try:
        got = decode(header, body, protocol)
    except Exception as exc:  # the error is what is compared
        return type(exc)
    props = got.properties.json() if got.properties is not None else None
    return (got.dup, got.qos, got.retain, got.topic, type(got.topic), got.mid, props, got.payload, type(got.payload))


def _bodies() -> list[tuple[int, bytes]]:
    """PUBLISH packets of every QoS and flag, with and without properties, and every cut of some."""
    out = []
    for qos in (0, 1, 2):
        for topic in (b"urbanpulse/v1/air/a-1", b""):
            for props in (b"\x00", _every_type().pack(), b"\x80\x00", b"\x05"):  # type: ignore[no-untyped-call]
                for flags in (0, 0x08, 0x01):
                    header = 0x30 | flags | qos << 1
                    mid = (513).to_bytes(2, "big") if qos else b""
                    out.append((header, len(topic).to_bytes(2, "big") + topic + mid + props + b'{"x": 1}'))
    cut = [(h, body[:k]) for h, body in out[:6] for k in range(len(body))]
    return out + cut + [(0x32, b""), (0x32, b"\xff\xff/x\x00")]


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
def test_quick_decoding_gives_what_paho_gives(protocol: MQTTProtocolVersion, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same packet, flags, topic, id, properties and payload (as bytes), or the same error, for every packet."""
    paho = paho_speedups._paho_decode_publish  # paho's own, even once the gateway has replaced it
    monkeypatch.setattr(packet_module, "decode_publish", paho)
    bodies = _bodies()
    assert len(bodies) > 400
    for header, body in bodies:
        theirs = _decoded(header, body, protocol, paho)
        assert _decoded(header, body, protocol, decode_publish) == theirs, (header, body)
        assert _decoded(header, bytearray(body), protocol, decode_publish) == theirs, (header, body)
    assert quick_publish_decoding()
    assert packet_module.decode_publish is decode_publish
    assert _decoded(0x32, b"\x00\x01\x00", protocol, paho) is MalformedPacket


def test_read_many_reads_what_is_there_in_one_call(broker: MosquittoServer) -> None:
    """A backlog of 300 messages arrives in two calls of ``loop_read`` (budget 256), not 300."""
    got: list[bytes] = []

    def client(name: str) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        c.on_message = lambda _c, _u, message: got.append(message.payload)
        c.connect("127.0.0.1", broker.port)
        return c

    sub = client("reader")
    sub.subscribe("t/#", qos=1)
    pub = client("writer")
    pub.loop_start()
    for k in range(300):
        pub.publish("t/x", str(k), qos=1).wait_for_publish(5)
    pub.loop_stop()
    read_many(sub)
    calls = 0
    deadline = time.monotonic() + 10
    sub.loop_write()
    while len(got) < 300 and time.monotonic() < deadline:
        if select.select([sub.socket()], [], [], 0.5)[0]:
            calls += 1
            assert sub.loop_read() == mqtt.MQTT_ERR_SUCCESS
        sub.loop_write()
    assert got == [str(k).encode() for k in range(300)]
    assert calls <= 30  # paho's own loop_read: at least 300
    sub.disconnect()
    pub.disconnect()
