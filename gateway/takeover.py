"""Telling a session taken over from a lost connection.

Two clients under one MQTT client id take the session from each other: the broker closes the older
connection as the newer one connects, each reconnects after its back-off, and the two alternate for
good, while the log says only "connection lost". A broker may say why (MQTT 5 DISCONNECT reason 142,
"Session taken over"); Mosquitto 2.0.11 just closes the socket. So :class:`TakeoverWatch` also counts:
a connection lost within ``SHORT_SECONDS`` of its subscription ``IN_A_ROW`` times running is taken for
a takeover, and the gateway's log names the setting to change.

>>> watch = TakeoverWatch()
>>> seen = []
>>> for t in (0.0, 1.0, 2.0):  # subscribed, and lost half a second later, three times running
...     watch.subscribed(now=t)
...     seen.append(watch.lost(now=t + 0.5))
>>> seen
[False, False, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["IN_A_ROW", "SESSION_TAKEN_OVER", "SHORT_SECONDS", "TakeoverWatch"]

SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason code
SHORT_SECONDS = 5.0
IN_A_ROW = 3


@dataclass(slots=True)
class TakeoverWatch:
    """Whether the connections of one client id are being taken over by another client."""

    said_so: bool = False  # the broker's last DISCONNECT gave reason 142
    short_in_a_row: int = 0
    subscribed_at: float | None = None

    def watch(self, paho: Any) -> None:
        """Record the reason code of the broker's DISCONNECT on ``paho`` (aiomqtt's client drops it)."""
        forward = paho.on_disconnect

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
            self.said_so = getattr(reason, "value", None) == SESSION_TAKEN_OVER
            forward(client, userdata, flags, reason, properties)

        paho.on_disconnect = on_disconnect

    def subscribed(self, now: float) -> None:
        self.subscribed_at = now

    def lost(self, now: float) -> bool:
        """The connection was lost at ``now``: whether it looks taken over."""
        short = self.subscribed_at is not None and now - self.subscribed_at < SHORT_SECONDS
        self.short_in_a_row = self.short_in_a_row + 1 if short else 0
        taken = self.said_so or self.short_in_a_row >= IN_A_ROW
        self.said_so, self.subscribed_at = False, None
        return taken
