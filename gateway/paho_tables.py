"""paho-mqtt's MQTT v5 properties of a received packet, without rebuilding paho's tables for each one.

For every PUBLISH it receives over MQTT v5, paho (2.x) creates a ``Properties`` object whose
constructor builds its constant tables anew (two dicts and a list, some thirty entries, each found
with ``list.index``) and whose ``unpack`` first "clears" the fresh object by walking all of them:
about a fifth of the gateway's CPU time for a one-reading message. :func:`share_publish_tables`
makes ``paho.mqtt._packet`` (where paho decodes every packet it receives) use
:class:`PublishProperties`, the same class with the tables built once and shared (paho only reads
them), and a ``clear`` that deletes only what is set. What a packet's properties hold is unchanged
(``tests/test_gateway_paho_tables.py`` decodes packets with properties of every type both ways).
Properties the gateway builds itself (CONNECT) keep paho's own class.
"""

from __future__ import annotations

import importlib
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["PublishProperties", "share_publish_tables"]

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
