"""The gateway process: MQTT in, batches to the database, acknowledgements only after the commit.

``Gateway`` is an async context manager owning the connection pool; ``run()`` owns the MQTT client,
reconnecting with back-off. Messages are parsed as they arrive and collected into a batch that is
flushed when it holds ``batch_size`` readings or is ``batch_seconds`` old. A writer task commits
batches in order while the next one fills, then acknowledges (PUBACK) their messages; the pump parses
a burst (``BURST_MESSAGES`` messages or ``BURST_READINGS`` readings) and then lets the event loop
turn, so the writer's COPY streams to the database while the next batch is parsed.

Delivery: aiomqtt 2.x would acknowledge a QoS 1 message as soon as it is queued, so the gateway puts
its paho client into manual-acknowledgement mode before connecting. A message not yet committed is
not acknowledged; after a crash or reconnect the broker redelivers it (persistent session, fixed
client id) and the idempotent write stores it once.

Errors: see ``committer.py`` -- while the database is unreachable batches go to a durable on-disk
spool (and are acknowledged); when the spool is full acknowledgements stop and the broker keeps the
backlog. A message the database refuses is dead-lettered with the database's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import AsyncConnectionPool

from urbanpulse.contract import READINGS_FILTER, STATUS_KIND, parse_topic, utc_now
from urbanpulse.gateway import metrics as http_metrics
from urbanpulse.gateway.committer import Committer, GatewayStats, Message, Pending
from urbanpulse.gateway.handover import cancel_writer, first_of, hand_over, next_batch, settle
from urbanpulse.gateway.metrics import GatewayMetrics
from urbanpulse.gateway.paho_speedups import quick_publish_decoding, read_many, share_publish_tables
from urbanpulse.gateway.parse import Limits, Parsed, failed, parse_message, parse_status
from urbanpulse.gateway.registry import DeviceDirectory, load_directory
from urbanpulse.gateway.spool import Spool, SpooledMessage
from urbanpulse.gateway.takeover import TakeoverWatch
from urbanpulse.ingest.problems import database_problem
from urbanpulse.settings import Settings, env_name

__all__ = ["Gateway", "GatewayStats", "tune_gc"]

log = logging.getLogger("urbanpulse.gateway")

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
DEFAULT_SHARE_GROUP = "urbanpulse"  # of `urbanpulse gateway --workers N` when no share group is set
OPERATION_TIMEOUT = 10.0  # seconds for CONNACK, SUBACK and the like
IGNORED_KINDS = frozenset({"events", "incidents"})  # analytics publishes these under the same root
BURST_MESSAGES, BURST_READINGS = 256, 200  # parsed between two turns of the event loop, whichever comes first
GC_THRESHOLDS = (50_000, 20, 100)  # Python's defaults: (700, 10, 10)


def tune_gc() -> None:
    """Garbage collection for a gateway process; call it once, at the start of the process.

    Parsing allocates many short-lived dicts and lists (a pack of 50 readings: over a thousand) and
    almost none of them in a reference cycle, so Python's default of a young collection every 700
    allocations, an older one every tenth, is mostly wasted work. ``gc.freeze()`` keeps what
    start-up allocated (modules, settings) out of every collection, and the young generation is
    collected every 50 000 allocations. Cycles are still collected, less often. Measured by
    ``bench/gateway.py``: 12 % more readings a second, single and packed (bench/journal/gateway.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Gateway:
    """MQTT -> PostgreSQL with at-least-once delivery, a durable spool and dead letters.

    >>> async def main(settings: Settings) -> None:  # doctest: +SKIP
    ...     async with Gateway(settings) as gateway:
    ...         await gateway.run()
    """

    def __init__(
        self, settings: Settings, *, worker: int | None = None, client_id: str | None = None, retiring: bool = False
    ) -> None:
        """``retiring``: take over the session of ``client_id`` (a gateway that no longer runs), drop its
        subscriptions and store what it holds; see ``sessions.retire``."""
        self.settings = settings
        self.stats = GatewayStats()
        self.worker = worker
        self.retiring = retiring
        self.metrics = GatewayMetrics(self._stats_view)
        g = settings.gateway
        self.client_id = client_id or (g.client_id if worker is None else f"{g.client_id}-{worker}")
        self.limits = Limits(
            max_payload_bytes=g.max_payload_bytes,
            max_readings_per_message=g.max_readings_per_message,
            max_future_skew=timedelta(seconds=g.max_future_skew_seconds),
            max_late=timedelta(seconds=g.max_late_seconds),
        )
        self.directory: DeviceDirectory | None = None
        self.connected = False
        self.takeover = TakeoverWatch()
        self.subscribed = asyncio.Event()  # set once the broker holds our subscription (and session)
        self.metrics_port: int | None = None
        self._pool: AsyncConnectionPool | None = None
        self._committer: Committer | None = None
        self._http: asyncio.Server | None = None

    def _stats_view(self) -> dict[str, object]:
        return {name: getattr(self.stats, name) for name in self.stats.__slots__}

    def health(self) -> tuple[bool, str]:
        database_ok = self._committer is not None and self._committer.database_ok
        if self.connected and database_ok:
            return True, "connected to broker and database"
        return False, f"broker {'up' if self.connected else 'down'}, database {'up' if database_ok else 'down'}"

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            await self.__aexit__(None, None, None)  # what opened before the failure closes again
            raise
        return self

    async def _open(self) -> None:
        db, g = self.settings.database, self.settings.gateway
        if g.metrics_port is not None:  # first: a port in use fails before anything else is opened
            port = g.metrics_port + (self.worker or 0) if g.metrics_port else 0
            try:
                self._http = await http_metrics.serve(self.metrics, self.health, g.metrics_host, port)
            except OSError as exc:
                msg = (f"cannot serve metrics on {g.metrics_host}:{port}: {exc.strerror or exc} (another gateway "
                       f"running? A second one needs its own {env_name('gateway', 'metrics_port')} (0 picks a free"
                       f" one) and {env_name('gateway', 'client_id')}; or run one with --workers N)")
                raise OSError(exc.errno, msg) from exc
            self.metrics_port = self._http.sockets[0].getsockname()[1]
        self._pool = AsyncConnectionPool(
            db.dsn,
            min_size=db.pool_min,
            max_size=db.pool_max,
            open=False,
            kwargs={"autocommit": True},
            reconnect_timeout=0,
        )
        await self._pool.open(wait=False)
        spool = Spool(g.spool_dir / self.client_id, g.spool_max_bytes)
        self._committer = Committer(self._pool, spool, self._reparse, self.stats, self.metrics, g.retry_seconds)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            self._http.close()
            await self._http.wait_closed()
            self._http = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def subscription(self) -> str:
        group = self.settings.gateway.share_group
        return f"$share/{group}/{READINGS_FILTER}" if group else READINGS_FILTER

    def _client(self) -> aiomqtt.Client:
        b, g = self.settings.broker, self.settings.gateway
        share_publish_tables()  # paho's tables built once, not for every message received
        quick_publish_decoding()  # a message's payload copied once, not five times
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        props.ReceiveMaximum = min(max(g.receive_maximum, 1), 65535)
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=b.username,
            password=b.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=b.ssl_context(),
            clean_start=False,
            properties=props,
            keepalive=b.keepalive,
            # aiomqtt waits for CONNACK / SUBACK without noticing a dropped connection: bound every wait
            timeout=OPERATION_TIMEOUT,
        )
        # aiomqtt 2.x has no public manual-ack switch; paho's must be set before connecting,
        # or a resumed session's backlog is acknowledged on arrival.
        client._client.manual_ack_set(True)
        read_many(client._client)  # what is there in one turn of the event loop, not a message a turn
        self.takeover.watch(client._client)
        return client

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set (or forever), reconnecting to the broker on failure."""
        stop = stop or asyncio.Event()
        delay = self.settings.gateway.retry_seconds
        refresher = None
        if self.settings.gateway.require_registration:
            await self._load_directory(stop)  # no consuming before we know who may publish
            refresher = asyncio.create_task(self._refresh_directory(stop))
        try:
            await self._consume(stop, delay)
        finally:
            if refresher is not None:
                refresher.cancel()

    async def _load_directory(self, stop: asyncio.Event) -> None:
        assert self._pool is not None, "use Gateway as an async context manager"
        delay = self.settings.gateway.retry_seconds
        while not stop.is_set():
            try:
                async with self._pool.connection(timeout=5.0) as conn:
                    self.directory = await load_directory(conn)
                return
            except psycopg.Error as exc:
                why = await database_problem(exc, self.settings.database.dsn)
                if self.directory is not None:
                    log.warning("could not refresh the device registry (%s); keeping the last one", why)
                    return
                log.warning("device registry unavailable (%s); retrying in %.1f s", why, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _refresh_directory(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.gateway.directory_refresh_seconds)
            await self._load_directory(stop)

    async def _consume(self, stop: asyncio.Event, delay: float) -> None:
        while not stop.is_set():
            try:
                async with self._client() as client:
                    self.connected = True
                    delay = self.settings.gateway.retry_seconds
                    if self.retiring:  # no new messages for this session; those it holds still come
                        group = self.settings.gateway.share_group or DEFAULT_SHARE_GROUP
                        for subscription in {self.subscription, READINGS_FILTER, f"$share/{group}/{READINGS_FILTER}"}:
                            await client.unsubscribe(subscription)
                    else:
                        # Retained messages (devices' presence) only for a new subscription: a restart with
                        # the session kept would dead-letter an unknown device's retained status every time.
                        await client.subscribe(self.subscription, options=SubscribeOptions(
                            qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB))
                    self.subscribed.set()
                    self.takeover.subscribed(asyncio.get_running_loop().time())
                    log.info("gateway %s %s %s", self.client_id, "retiring, dropped" if self.retiring else
                             "subscribed to", self.subscription)
                    await self._pump(client, stop)
            except aiomqtt.MqttError as exc:
                self.connected = False
                if stop.is_set():
                    break
                self.stats.reconnects += 1
                if self.takeover.lost(asyncio.get_running_loop().time()):
                    log.error("broker connection lost (%s) again within seconds: the broker keeps handing this"
                              " gateway's session (client id %s) to another client? Two gateways need their own %s"
                              " (or run one with --workers N); retrying in %.1f s",
                              exc, self.client_id, env_name("gateway", "client_id"), delay)
                else:
                    log.warning("broker connection lost (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
            finally:
                self.connected = False

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(self._writer(client, queue))
        stopper = asyncio.create_task(stop.wait())
        # aiomqtt's queue of received messages, read directly: everything already there is taken in one
        # go, and a task waits on the queue only when it is empty. Cancelling ``Queue.get`` loses nothing
        # (the item stays queued until the getter runs), unlike cancelling aiomqtt's iterator.
        inbox: asyncio.Queue[aiomqtt.Message] = client._queue
        disconnected: asyncio.Future[None] = client._disconnected
        pending = Pending()
        g = self.settings.gateway
        loop = asyncio.get_running_loop()
        deadline = loop.time() + g.batch_seconds
        getter: asyncio.Future[aiomqtt.Message] | None = None
        try:
            while not stop.is_set():
                if pending.messages and (loop.time() >= deadline or pending.readings >= g.batch_size):
                    await hand_over(queue, pending, writer, disconnected)
                    pending = Pending()
                if not pending.messages:
                    deadline = loop.time() + g.batch_seconds
                if inbox.empty():
                    getter = asyncio.ensure_future(inbox.get())
                    message = await first_of(getter, writer, {stopper, disconnected}, deadline - loop.time())
                    getter = None
                    if message is not None:
                        pending.append(self._accept(message, utc_now()))
                    if disconnected.done():
                        msg = "Disconnected during message iteration"
                        raise aiomqtt.MqttError(msg) from disconnected.exception()
                    continue
                received_at = utc_now()  # one clock reading for what arrived together
                burst_ends = min(pending.readings + BURST_READINGS, g.batch_size)
                for _ in range(BURST_MESSAGES):
                    if inbox.empty() or pending.readings >= burst_ends:
                        break
                    pending.append(self._accept(inbox.get_nowait(), received_at))
                # Between bursts the writer runs: its COPY streams to PostgreSQL while we parse, instead of
                # waiting for a whole batch's parsing and then holding us up while the database works.
                await asyncio.sleep(0)
            # clean stop: flush what we hold and give the writer a grace period to make it durable and
            # acknowledge it (whatever is left unacknowledged, the broker sends again)
            if pending.messages and not queue.full():
                queue.put_nowait(pending)
            await settle(queue, writer)
        except aiomqtt.MqttError:
            # The connection dropped: the writer still commits what it holds (it can no longer acknowledge
            # it; the broker sends it again and it is stored once) rather than being cancelled half-way
            # through a commit, which could land in the database uncounted.
            await settle(queue, writer)
            raise
        finally:
            # A message taken but not made durable is not acknowledged: the broker sends it again.
            self.stats.unacked = 0
            await cancel_writer(writer, getter, stopper)

    def _parse(self, topic: str, payload: bytes, received_at: datetime) -> Parsed:
        identity = self.directory.check if self.directory is not None else None
        return parse_message(topic, payload, received_at, self.limits, identity=identity)

    def _presence(self, topic: str, device_id: str, payload: bytes, received_at: datetime) -> Message:
        """A status message: presence of a known device, else a dead letter saying why."""
        known = self.directory.registered if self.directory is not None else None
        online, parsed = parse_status(topic, device_id, payload, received_at, known)
        return Message(topic, payload, 0, 0, parsed, online)

    def _message(self, topic: str, payload: bytes, received_at: datetime) -> Message:
        """The platform's own publication (nothing to store), a device's presence, or readings and dead letters.
        A message the gateway fails on (a bug) is a dead letter saying so, logged with its traceback: raised, it
        would end the gateway, and the broker would hand it back at every start (one message stopping all)."""
        parts = parse_topic(topic)
        try:
            if parts is not None and parts.kind in IGNORED_KINDS:
                return Message(topic, payload, 0, 0, Parsed(received_at=received_at))
            if parts is not None and parts.kind == STATUS_KIND:
                return self._presence(topic, parts.device_id, payload, received_at)
            return Message(topic, payload, 0, 0, self._parse(topic, payload, received_at))
        except Exception as exc:
            log.exception("the gateway failed on a message on %r: kept as a dead letter", topic[:200])
            return Message(topic, payload, 0, 0, failed(topic, payload, received_at, exc))

    def _reparse(self, item: SpooledMessage) -> Parsed:
        """A spooled message, read again on replay (a presence by then is stale: only its dead letter, if any)."""
        return self._message(item.topic, item.payload, item.received_at).parsed

    def _accept(self, message: aiomqtt.Message, now: datetime) -> Message:
        self.stats.messages += 1
        self.stats.unacked += 1
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        out = self._message(message.topic.value, payload, now)
        out.mid, out.qos = message.mid, message.qos
        self.stats.readings_accepted += len(out.parsed.readings)
        return out

    async def _writer(self, client: aiomqtt.Client, queue: asyncio.Queue[Pending]) -> None:
        assert self._committer is not None, "use Gateway as an async context manager"
        committer = self._committer
        while True:
            pending = await next_batch(queue, self.settings.gateway.retry_seconds)
            if pending is None:
                if self.stats.spool_files:
                    await committer.drain()  # idle: replay the spool if the database is back
                continue
            try:
                await committer.commit(pending)
                self._ack(client, pending)
            finally:
                queue.task_done()

    def _ack(self, client: aiomqtt.Client, pending: Pending) -> None:
        """PUBACK the messages of a durable batch; on a connection that is going away, stop (the broker sends
        what is not acknowledged again, and it is stored once)."""
        self.stats.unacked -= len(pending.messages)
        for message in pending.messages:
            if message.qos == 0:
                continue
            if client._disconnected.done():
                return
            try:
                client._client.ack(message.mid, message.qos)
            except (OSError, ValueError) as exc:  # the socket closed under paho
                log.warning("could not acknowledge (%s); the broker will send the rest again", exc)
                return
            self.stats.acked += 1
