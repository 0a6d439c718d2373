"""Sessions a gateway left behind: found at start, drained into the database, then ended.

A gateway's broker session outlives it (``clean_start=False``, a week's expiry), which is what keeps a
backlog across restarts. It becomes a trap when the number of workers goes down, or from one gateway to
several: Mosquitto (2.0) spreads a shared subscription's messages round-robin over *every* member with a
session, connected or not, so the session of a worker that no longer runs keeps taking its share of all
readings (and the session of a former single gateway, subscribed without ``$share``, a copy of every
one), acknowledged to the devices and never stored; its queue is dropped when the session expires.

``urbanpulse gateway [--workers N]`` therefore looks, before it starts, for sessions of the gateway's
other client ids (``<client_id>`` and ``<client_id>-<k>``, k below ``PROBE``) and retires each one it
finds: a ``Gateway`` takes the session over, drops its subscriptions (no new messages come to it; those
it holds still do), stores what it holds as any gateway does (acknowledged once durable), and once it
has been idle for ``idle`` seconds with nothing unacknowledged or spooled, the session is ended.

A client id is probed by connecting with it: the broker's CONNACK says whether it held a session. A
probe that finds none leaves none (it ends the empty session it made); one that finds a session leaves
it as it was (nothing is acknowledged). A gateway of the same client id must not be running elsewhere:
give each machine's gateways their own ``URBANPULSE_GATEWAY__CLIENT_ID``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from urbanpulse.gateway.committer import GatewayStats
from urbanpulse.gateway.service import OPERATION_TIMEOUT, SESSION_EXPIRY_SECONDS, Gateway
from urbanpulse.settings import Settings

log = logging.getLogger("urbanpulse.gateway")

PROBE = 64
"""Worker numbers probed for a session left behind: ``<client_id>-0`` .. ``<client_id>-63``."""


def client_ids(settings: Settings, workers: int) -> list[str]:
    """The client ids ``urbanpulse gateway --workers N`` runs under."""
    base = settings.gateway.client_id
    return [base] if workers <= 1 else [f"{base}-{k}" for k in range(workers)]


def _properties(packet: int, expiry: int) -> Properties:
    props = Properties(packet)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry
    return props


def _connect(settings: Settings, client_id: str, delivered: list[int]) -> tuple[mqtt.Client, bool]:
    """A connection under ``client_id`` that resumes its session (or makes one); whether one was there.
    What the session delivers is noted in ``delivered`` (from the first message on) and not acknowledged:
    the broker sends it again later."""
    b = settings.broker
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    client.on_message = lambda _c, _u, message: delivered.append(message.mid)
    if b.username is not None:
        client.username_pw_set(b.username, b.password)
    if (context := b.ssl_context()) is not None:
        client.tls_set_context(context)
    answer: dict[str, bool] = {}
    client.on_connect = lambda _c, _u, flags, reason, _p: answer.update(
        ok=not reason.is_failure, present=bool(flags.session_present)
    )
    expiry = _properties(PacketTypes.CONNECT, SESSION_EXPIRY_SECONDS)
    client.connect(b.host, b.port, clean_start=False, properties=expiry)
    client.loop_start()
    deadline = time.monotonic() + OPERATION_TIMEOUT
    while "ok" not in answer and time.monotonic() < deadline:
        time.sleep(0.005)
    if not answer.get("ok"):
        client.loop_stop()
        msg = f"the broker did not accept {client_id!r} ({answer or 'no CONNACK'})"
        raise ConnectionError(msg)
    return client, answer["present"]


def _disconnect(client: mqtt.Client, end: bool) -> None:
    """Disconnect; ``end``: the session ends with the connection (expiry 0)."""
    props = _properties(PacketTypes.DISCONNECT, 0) if end else None
    client.disconnect(properties=props)
    client.loop_stop()


def left_behind(settings: Settings, current: list[str], probe: int = PROBE) -> list[str]:
    """The gateway's client ids, other than ``current``, under which the broker holds a session."""
    base = settings.gateway.client_id
    found = []
    for client_id in [base, *(f"{base}-{k}" for k in range(probe))]:
        if client_id in current:
            continue
        client, present = _connect(settings, client_id, [])
        _disconnect(client, end=not present)  # an empty session of our own making goes at once
        if present:
            found.append(client_id)
    return found


def end_session(settings: Settings, client_id: str, quiet: float = 0.5) -> bool:
    """End ``client_id``'s session if it holds nothing: True when it was ended. A message delivered within
    ``quiet`` seconds keeps it (unacknowledged, it is sent again)."""
    delivered: list[int] = []
    client, _ = _connect(settings, client_id, delivered)
    time.sleep(quiet)
    _disconnect(client, end=not delivered)
    return not delivered


async def retire(settings: Settings, client_id: str, idle: float = 2.0) -> GatewayStats:
    """Store what ``client_id``'s session holds and end it (see the module docstring); its counters."""
    quiet = settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"metrics_port": None})})
    stop = asyncio.Event()
    async with Gateway(quiet, client_id=client_id, retiring=True) as gateway:
        task = asyncio.create_task(gateway.run(stop))
        await gateway.subscribed.wait()
        seen, since = -1, time.monotonic()
        while not task.done():
            await asyncio.sleep(0.1)
            s = gateway.stats
            if s.messages != seen or s.unacked or s.spool_files:
                seen, since = s.messages, time.monotonic()
            elif time.monotonic() - since >= idle:
                break
        stop.set()
        await task
    ended = await asyncio.to_thread(end_session, settings, client_id)
    log.warning("retired the session of %s: %d messages, %d readings stored, %s", client_id,
                gateway.stats.messages, gateway.stats.readings_stored,
                "session ended" if ended else "still delivering, kept for the next start")
    return gateway.stats
