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
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["PublishProperties", "read_many", "share_publish_tables"]

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
