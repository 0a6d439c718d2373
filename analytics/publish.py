"""Every change of an event or incident, published on MQTT through a transactional outbox.

Whoever changes an event or incident (analytics, an operator through ``urbanpulse events``) writes
the change to ``event_outbox`` in the same transaction (:func:`outbox_rows`), so a change is
published if and only if it was committed. :class:`Publisher` drains the outbox: it sends the rows
in id order with QoS 1 and deletes them after the broker acknowledged them -- at least once: a
crash between the acknowledgement and the delete sends them again (``change_id`` tells repeats).

Topics (5 levels, so neither the gateway's ``urbanpulse/v1/+/+`` nor a device's
``urbanpulse/v1/+/<own id>`` ACL pattern can match them)::

    urbanpulse/v1/ops/events/<event id>        urbanpulse/v1/ops/incidents/<incident id>

The payload is JSON: ``{"schema": 1, "type": "event" | "incident", "change": "opened" | "updated" |
"acknowledged" | "flapping" | "resolved", "change_id": <outbox id>, "event" | "incident": {...state}}``.
Changes of an event or incident that is not resolved are **retained**, so a subscriber learns the
current state of everything open on subscription; ``resolved`` is sent without retain and then
followed by an empty retained message that clears the topic (subscribers ignore empty payloads).

Errors: a broker or database failure ends the drain without deleting; :meth:`Publisher.run` retries
with back-off (doubling from ``poll`` up to 30 s), forever, until ``stop`` is set; after ``stop`` it
drains once more (when connected) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
import psycopg
from psycopg import AsyncConnection, sql

from urbanpulse.contract import OPS_TOPIC
from urbanpulse.settings import Settings, env_name

__all__ = ["EVENTS_FILTER", "TOPIC_PREFIX", "Publisher", "PublisherStats", "Refusals", "drain", "enqueue",
           "outbox_rows", "topic"]

log = logging.getLogger("urbanpulse.analytics.publish")

TOPIC_PREFIX = OPS_TOPIC
EVENTS_FILTER = f"{TOPIC_PREFIX}/#"
BATCH = 500  # rows per drain transaction
MAX_RETRY_SECONDS = 30.0
_DRAIN_LOCK = (0x75726265, 0x6F757462)  # one drainer at a time, so the broker sees the rows in order

Subject = Literal["event", "incident"]
Change = Literal["opened", "updated", "acknowledged", "flapping", "resolved"]


def topic(subject: Subject, subject_id: int) -> str:
    """The topic of event or incident ``subject_id``."""
    return f"{TOPIC_PREFIX}/{subject}s/{subject_id}"


# The state is the row as it is inside the writing transaction, without the bookkeeping columns.
_STATE = {
    "event": "to_jsonb(s) - 'notified_at' - 'notified_severity'",
    "incident": "(to_jsonb(s) - 'notified_at') || jsonb_build_object('event_ids', (SELECT "
                "coalesce(jsonb_agg(e.id ORDER BY e.id), '[]') FROM events e WHERE e.incident_id = s.id))",
}
_ENQUEUE = """
INSERT INTO event_outbox (topic, retain, payload)
SELECT %(topic)s::text, s.status <> 'resolved', jsonb_build_object(
    'schema', 1, 'type', %(subject)s::text, 'change', %(change)s::text, %(subject)s::text, {state})
FROM {table} s WHERE s.id = %(id)s
"""
_CLEAR = "INSERT INTO event_outbox (topic, retain, payload) VALUES (%(topic)s, true, NULL)"


Statement = tuple[sql.SQL | sql.Composed, dict[str, Any]]


def outbox_rows(subject: Subject, subject_id: int, change: Change) -> list[Statement]:
    """The statements (SQL, parameters) that queue ``change`` of a subject with its current state."""
    params = {"topic": topic(subject, subject_id), "subject": subject, "change": change, "id": subject_id}
    table = "events" if subject == "event" else "incidents"
    out: list[Statement] = [
        (sql.SQL(_ENQUEUE).format(state=sql.SQL(_STATE[subject]), table=sql.Identifier(table)), params)
    ]
    if change == "resolved":
        out.append((sql.SQL(_CLEAR), params))
    return out


async def enqueue(conn: AsyncConnection[Any], subject: Subject, subject_id: int, change: Change) -> int:
    """Queue ``change`` of a subject in the caller's transaction; returns the rows written."""
    statements = outbox_rows(subject, subject_id, change)
    for statement, params in statements:
        await conn.execute(statement, params)
    return len(statements)


@dataclass(slots=True)
class PublisherStats:
    published: int = 0  # messages the broker acknowledged
    drains: int = 0
    failures: int = 0  # drains ended by a broker or database error


_TAKE = "SELECT id, topic, retain, payload FROM event_outbox ORDER BY id LIMIT %s"


class Refusals:
    """The publications a broker refused (MQTT 5 PUBACK reason codes from 128 on, 135 "not authorized"): aiomqtt
    resolves a publish on any PUBACK, so without this a refused event counted as sent and left the outbox."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.codes: list[int] = []
        paho = client._client
        chained: Any = paho.on_publish  # aiomqtt's, which resolves the publish (paho types it loosely)

        def on_publish(c: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            if getattr(reason, "is_failure", False):
                self.codes.append(int(reason.value))
            chained(c, userdata, mid, reason, properties)

        paho.on_publish = on_publish


async def drain(conn: AsyncConnection[Any], client: aiomqtt.Client, limit: int = BATCH,
                ack_seconds: float = 10.0, refusals: Refusals | None = None) -> int:
    """Publish up to ``limit`` outbox rows in order, delete them once acknowledged; the rows sent.

    0 when another drainer holds the outbox. The transaction takes no transaction id before its
    final delete, so it never holds back the analytics horizon while it waits for the broker. A
    publication ``refusals`` saw refused raises ``MqttCodeError`` before the delete: the rows stay.
    """
    async with conn.transaction():
        cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", _DRAIN_LOCK)
        row = await cur.fetchone()
        if row is None or not row[0]:
            return 0
        rows = await (await conn.execute(_TAKE, [limit])).fetchall()
        if not rows:
            return 0
        sends = []
        for row_id, row_topic, retain, payload in rows:
            body = b"" if payload is None else json.dumps({**payload, "change_id": row_id}).encode()
            sends.append(client.publish(row_topic, body, qos=1, retain=retain, timeout=ack_seconds))
        await asyncio.gather(*sends)  # paho sends them in call order; every PUBACK is awaited
        if refusals is not None and refusals.codes:
            code = refusals.codes[0]
            refusals.codes.clear()
            raise aiomqtt.MqttCodeError(code, f"the broker refused a publication: {_REASONS.get(code, code)}")
        await conn.execute("DELETE FROM event_outbox WHERE id = ANY(%s)", [[r[0] for r in rows]])
    return len(rows)


_REASONS = {135: "not authorized (135)", 151: "quota exceeded (151)", 153: "payload format invalid (153)"}


def _refusal_hint(exc: Exception, settings: Settings) -> str:
    """What to do when the broker refuses the publisher's account (a secured broker lets the gateway's only read)."""
    if getattr(exc, "rc", None) != 135 and "not authori" not in str(exc).lower():
        return ""
    return (f": the broker does not let {settings.analytics_broker().username!r} publish to {EVENTS_FILTER}; give"
            f" analytics its own account ({env_name('analytics', 'broker_username')} and __BROKER_PASSWORD, then"
            " `urbanpulse broker files`)")


class Publisher:
    """Drains ``event_outbox`` to the broker of ``settings``, whenever woken or every ``poll`` seconds."""

    def __init__(self, settings: Settings, *, poll: float | None = None, client_id: str | None = None) -> None:
        self.settings = settings
        self.poll = poll if poll is not None else settings.analytics.poll_seconds
        self.client_id = client_id or f"urbanpulse-analytics-{os.getpid()}"
        self.stats = PublisherStats()
        self.wake = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        b = self.settings.analytics_broker()
        client = aiomqtt.Client(b.host, b.port, username=b.username, password=b.password,
                                identifier=self.client_id, keepalive=b.keepalive, timeout=10.0,
                                tls_context=b.ssl_context(),
                                protocol=aiomqtt.ProtocolVersion.V5)  # 3.1.1 acknowledges a refused publish
        client.pending_calls_threshold = BATCH  # a drain has up to BATCH publishes in flight, on purpose
        return client

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Publish until ``stop`` is set, reconnecting to broker and database on failure."""
        stop = stop or asyncio.Event()
        delay = self.poll
        while not stop.is_set():
            try:
                async with (
                    await AsyncConnection.connect(self.settings.database.dsn, autocommit=True) as conn,
                    self._client() as client,
                ):
                    delay = self.poll
                    await self._loop(conn, client, stop)
            except (aiomqtt.MqttError, psycopg.OperationalError, TimeoutError) as exc:
                self.stats.failures += 1
                log.warning("cannot publish events (%s)%s; retrying in %.1f s", exc, _refusal_hint(exc, self.settings),
                            delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _loop(self, conn: AsyncConnection[Any], client: aiomqtt.Client, stop: asyncio.Event) -> None:
        refusals = Refusals(client)
        while True:
            self.wake.clear()
            sent = await drain(conn, client, refusals=refusals)
            self.stats.drains += 1
            self.stats.published += sent
            if stop.is_set():
                return  # after one last drain: what was committed before the stop goes out now
            if sent == BATCH:
                continue  # more waiting
            waiters = {asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())}
            await asyncio.wait(waiters, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
