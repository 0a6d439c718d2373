"""The gateway process: MQTT in, batches to the database, acknowledgements only after the commit.

``Gateway`` is an async context manager owning the connection pool; ``run()`` owns the MQTT client,
reconnecting with back-off. Messages are parsed as they arrive and collected into a batch that is
flushed when it holds ``batch_size`` readings or is ``batch_seconds`` old. A writer task commits
batches in order while the next one fills, then acknowledges (PUBACK) their messages.

Delivery: aiomqtt 2.x would acknowledge a QoS 1 message as soon as it is queued, so the gateway puts
its paho client into manual-acknowledgement mode before connecting. A message not yet committed is
not acknowledged; after a crash or reconnect the broker redelivers it (persistent session, fixed
client id) and the idempotent write stores it once.

Errors: a connection error while writing is retried with back-off, forever, holding the batch (and
its acknowledgements) -- the broker keeps the backlog. Any other database error on a batch makes the
writer store its messages one by one, so a single message the database refuses is dead-lettered
with the database's reason instead of blocking the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg_pool import AsyncConnectionPool

from urbanpulse.contract import READINGS_FILTER, utc_now
from urbanpulse.gateway.parse import Limits, Parsed, parse_message
from urbanpulse.ingest.batch import Batch, BatchResult, DeadLetter
from urbanpulse.ingest.writer import write_batch
from urbanpulse.settings import Settings

log = logging.getLogger("urbanpulse.gateway")

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600


@dataclass(slots=True)
class GatewayStats:
    """Counters since start; every message ends in exactly one of acked or still pending."""

    messages: int = 0
    readings_accepted: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    write_retries: int = 0
    acked: int = 0
    reconnects: int = 0
    rejections: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    parsed: Parsed


@dataclass(slots=True)
class _Pending:
    messages: list[_Message] = field(default_factory=list)
    readings: int = 0

    def batch(self) -> Batch:
        out = Batch()
        for message in self.messages:
            _add(out, message)
        return out


def _add(batch: Batch, message: _Message) -> None:
    if message.parsed.kind is not None:
        for reading in message.parsed.readings:
            batch.add(message.parsed.kind, reading, message.parsed.received_at)
    for letter in message.parsed.rejected:
        batch.reject(letter)


class Gateway:
    """MQTT -> PostgreSQL with at-least-once delivery and dead letters.

    >>> async def main(settings: Settings) -> None:  # doctest: +SKIP
    ...     async with Gateway(settings) as gateway:
    ...         await gateway.run()
    """

    def __init__(self, settings: Settings, *, worker: int | None = None) -> None:
        self.settings = settings
        self.stats = GatewayStats()
        g = settings.gateway
        self.client_id = g.client_id if worker is None else f"{g.client_id}-{worker}"
        self.limits = Limits(
            max_payload_bytes=g.max_payload_bytes,
            max_readings_per_message=g.max_readings_per_message,
            max_future_skew=timedelta(seconds=g.max_future_skew_seconds),
        )
        self._pool: AsyncConnectionPool | None = None

    async def __aenter__(self) -> Self:
        db = self.settings.database
        self._pool = AsyncConnectionPool(
            db.dsn, min_size=db.pool_min, max_size=db.pool_max, open=False,
            kwargs={"autocommit": True}, reconnect_timeout=0,
        )
        await self._pool.open(wait=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def subscription(self) -> str:
        group = self.settings.gateway.share_group
        return f"$share/{group}/{READINGS_FILTER}" if group else READINGS_FILTER

    def _client(self) -> aiomqtt.Client:
        b, g = self.settings.broker, self.settings.gateway
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        props.ReceiveMaximum = min(max(g.receive_maximum, 1), 65535)
        client = aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password, identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            keepalive=b.keepalive,
        )
        # aiomqtt 2.x has no public manual-ack switch; paho's must be set before connecting,
        # or a resumed session's backlog is acknowledged on arrival.
        client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set (or forever), reconnecting to the broker on failure."""
        stop = stop or asyncio.Event()
        delay = self.settings.gateway.retry_seconds
        while not stop.is_set():
            try:
                async with self._client() as client:
                    delay = self.settings.gateway.retry_seconds
                    await client.subscribe(self.subscription, qos=1)
                    log.info("gateway %s subscribed to %s", self.client_id, self.subscription)
                    await self._pump(client, stop)
            except aiomqtt.MqttError as exc:
                if stop.is_set():
                    break
                self.stats.reconnects += 1
                log.warning("broker connection lost (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(self._writer(client, queue))
        stopper = asyncio.create_task(stop.wait())
        pending = _Pending()
        g = self.settings.gateway
        messages = aiomqtt.client.MessagesIterator(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + g.batch_seconds
        # The receive is never cancelled while the connection lives: cancelling aiomqtt's
        # __anext__ can drop a message it already took from the queue.
        nxt: asyncio.Future[Any] | None = None
        try:
            while not stop.is_set():
                timeout = deadline - loop.time()
                if pending.messages and (timeout <= 0 or pending.readings >= g.batch_size):
                    await queue.put(pending)
                    pending = _Pending()
                if not pending.messages:
                    deadline = loop.time() + g.batch_seconds
                    timeout = g.batch_seconds
                if nxt is None:
                    nxt = asyncio.ensure_future(messages.__anext__())
                done, _ = await asyncio.wait({nxt, stopper, writer}, timeout=max(timeout, 0.0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if writer in done:
                    writer.result()  # re-raise the writer's failure
                if nxt in done:
                    message = nxt.result()  # raises MqttError when the connection dropped
                    nxt = None
                    accepted = self._accept(message)
                    pending.messages.append(accepted)
                    pending.readings += len(accepted.parsed.readings)
            # clean stop: flush what we hold, wait for the writer to commit and acknowledge it
            if pending.messages:
                await queue.put(pending)
            await queue.join()
        finally:
            # A message taken but not batched is not acknowledged: the broker sends it again.
            for task in (nxt, stopper, writer):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await writer

    def _accept(self, message: aiomqtt.Message) -> _Message:
        self.stats.messages += 1
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        parsed = parse_message(message.topic.value, bytes(payload), utc_now(), self.limits)
        self.stats.readings_accepted += len(parsed.readings)
        return _Message(message.topic.value, bytes(payload), message.mid, message.qos, parsed)

    async def _writer(self, client: aiomqtt.Client, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            pending = await queue.get()
            try:
                await self._commit(pending)
                for message in pending.messages:
                    if message.qos > 0 and not client._disconnected.done():
                        client._client.ack(message.mid, message.qos)
                        self.stats.acked += 1
            finally:
                queue.task_done()

    async def _commit(self, pending: _Pending) -> None:
        delay = self.settings.gateway.retry_seconds
        while True:
            try:
                result = await self._write(pending.batch())
            except psycopg.OperationalError as exc:
                self.stats.write_retries += 1
                log.warning("database unavailable (%s); retrying batch in %.1f s", exc, delay)
            except psycopg.Error as exc:
                log.error("database refused a batch (%s); writing its messages one by one", exc)
                await self._commit_one_by_one(pending)
                return
            else:
                self._count(result, pending)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _commit_one_by_one(self, pending: _Pending) -> None:
        for message in pending.messages:
            single = _Pending([message], len(message.parsed.readings))
            try:
                result = await self._write(single.batch())
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                letter = DeadLetter(topic=message.topic, payload=message.payload, received_at=utc_now(),
                                    reason=f"database refused the message: {exc}".replace("\x00", ""),
                                    field=None, device_id=None, kind=None)
                message.parsed = Parsed(kind=None, rejected=[letter], received_at=letter.received_at)
                result = await self._write(single.batch())
            self._count(result, single)

    async def _write(self, batch: Batch) -> BatchResult:
        assert self._pool is not None, "use Gateway as an async context manager"
        async with self._pool.connection(timeout=5.0) as conn:
            return await write_batch(conn, batch)

    def _count(self, result: BatchResult, pending: _Pending) -> None:
        self.stats.batches += 1
        self.stats.readings_stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.dead_letters += result.dead_letters
        for message in pending.messages:
            for letter in message.parsed.rejected:
                key = letter.field or "other"
                self.stats.rejections[key] = self.stats.rejections.get(key, 0) + 1
