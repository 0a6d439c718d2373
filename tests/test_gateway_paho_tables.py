"""paho decodes a packet's MQTT v5 properties alike with its own class and with the shared-table one."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from urbanpulse.gateway.paho_tables import PublishProperties, share_publish_tables

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
