"""Two costs paho-mqtt (2.x) charges for every message received, taken off; paho's behaviour is unchanged.

**Property tables.** For every PUBLISH it receives over MQTT v5, paho (2.x) creates a ``Properties`` object whose
constructor builds its constant tables anew (two dicts and a list, some thirty entries, each found
with ``list.index``) and whose ``unpack`` first "clears" the fresh object by walking all of them:
about a fifth of the gateway's CPU time for a one-reading message. :func:`share_publish_tables`
makes ``paho.mqtt._packet`` (where paho decodes every packet it receives) use
:class:`PublishProperties`, the same class with the tables built once and shared (paho only reads
them), and a ``clear`` that deletes only what is set. What a packet's properties hold is unchanged
(``tests/test_gateway_paho_speedups.py`` decodes packets with properties of every type both ways).
Properties the gateway builds itself (CONNECT) keep paho's own class.

**Copies of a message's payload.** paho's ``decode_publish`` cuts a PUBLISH apart with ``struct.unpack``
on formats built for each packet's length, copying what follows each field (the payload) four to
five times, and has ``Properties.unpack`` copy it once more to find that there are no properties.
:func:`quick_publish_decoding` makes ``paho.mqtt._packet`` decode an MQTT v5 PUBLISH with no properties
(a zero property length, what devices send) by slicing topic, packet id and payload out once
(:func:`decode_publish`); every other packet still goes to paho's own function. A 12 kB pack: ~18 us
-> ~12 us over 200 distinct packets (cold caches), ~17 -> ~3.5 us for one decoded again and again; a
one-reading message ~6 -> ~3 us.

**One packet per turn of the event loop.** ``loop_read``, which aiomqtt calls when the socket is
readable, reads one packet unless paho has outgoing QoS messages queued; each received message then
costs a turn of the event loop (an ``epoll_wait`` and the callbacks around it). :func:`read_many`
makes it read what is there, up to ``budget`` packets, as paho's own loop does when it has more
queued; the socket stays readable if more is left, so the next turn continues.
"""

from __future__ import annotations

import importlib
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["PublishProperties", "decode_publish", "quick_publish_decoding", "read_many", "share_publish_tables"]

_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_OWN = frozenset(("packetType", "types", "names", "properties"))


class PublishProperties(Properties):
    """paho's ``Properties``, sharing one copy of paho's constant tables (never written to)."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's name
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TABLES.types)
        object.__setattr__(self, "names", _TABLES.names)
        object.__setattr__(self, "properties", _TABLES.properties)

    def clear(self) -> None:
        for name in [name for name in vars(self) if name not in _OWN]:
            delattr(self, name)


def share_publish_tables() -> bool:
    """Have paho decode PUBLISH properties with :class:`PublishProperties`; False (nothing changed) when
    this paho has no ``paho.mqtt._packet.Properties`` to replace."""
    try:
        packet: Any = importlib.import_module("paho.mqtt._packet")
    except ImportError:
        return False
    if getattr(packet, "Properties", None) not in (Properties, PublishProperties):
        return False
    packet.Properties = PublishProperties
    return True


_packet: Any = importlib.import_module("paho.mqtt._packet")  # paho's packet decoding (internal)
_paho_decode_publish = _packet.decode_publish


def decode_publish(header: int, packet: bytes | bytearray, protocol: MQTTProtocolVersion) -> Any:
    """paho's ``decode_publish``, the same PublishPacket, with one copy of the payload when the packet is
    MQTT v5 and has no properties (a property length of one zero byte); any other packet goes to paho's."""
    qos = (header & 0x06) >> 1
    start = 2 + int.from_bytes(packet[:2], "big")  # after the topic
    end = start + 2 if qos else start  # after the packet id
    if protocol != MQTTProtocolVersion.MQTTv5 or len(packet) <= end or packet[end] != 0:
        return _paho_decode_publish(header, packet, protocol)
    return _packet.PublishPacket(
        dup=(header & 0x08) != 0,
        qos=qos,
        retain=(header & 0x01) != 0,
        topic=bytes(packet[2:start]),
        mid=int.from_bytes(packet[start:end], "big"),
        properties=_packet.Properties(PacketTypes.PUBLISH),  # as paho's unpack leaves it for no properties
        payload=bytes(packet[end + 1 :]),
    )


def quick_publish_decoding() -> bool:
    """Have paho decode PUBLISH packets with :func:`decode_publish`; False (nothing changed) when this paho
    has no ``paho.mqtt._packet.decode_publish`` and ``PublishPacket`` as 2.1 has them."""
    if getattr(_packet, "decode_publish", None) not in (_paho_decode_publish, decode_publish) or not hasattr(
        _packet, "PublishPacket"
    ):
        return False
    _packet.decode_publish = decode_publish
    return True


def read_many(client: mqtt.Client, budget: int = 256) -> None:
    """Make ``client.loop_read`` read up to ``budget`` packets a call, until the socket has no more."""
    paho: Any = client  # its packet reader and error handling are internal

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:  # max_packets: paho ignores it too
        for _ in range(budget):
            if paho._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc: MQTTErrorCode = paho._packet_read()
            if rc > 0:
                handled: MQTTErrorCode = paho._loop_rc_handle(rc)
                return handled
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho.loop_read = loop_read
