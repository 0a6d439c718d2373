"""Making batches durable: commit to the database, or spool to disk while it is away.

``Committer.commit(pending)`` returns only when the batch's readings are durable -- committed, or
fsynced to the spool -- which is when the gateway may acknowledge its messages. Order is kept: while
the spool holds anything, new batches go behind it until a replay has drained it.

Error policy (also in the gateway README):
- connection errors (PostgreSQL down, pool timeout): spool the batch if there is room, else retry
  with back-off while holding the acknowledgements (the broker keeps the backlog);
- any other database error: write the batch's messages one by one and dead-letter, with the
  database's reason, the message it refuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from urbanpulse.contract import utc_now
from urbanpulse.gateway.metrics import GatewayMetrics
from urbanpulse.gateway.parse import Parsed, counted_field
from urbanpulse.gateway.registry import mark_seen, set_online
from urbanpulse.gateway.spool import Spool, SpooledMessage
from urbanpulse.ingest.batch import Batch, BatchResult, DeadLetter
from urbanpulse.ingest.problems import database_problem
from urbanpulse.ingest.writer import write_batch

log = logging.getLogger("urbanpulse.gateway")


@dataclass(slots=True)
class GatewayStats:
    """Counters since start (Prometheus reads them at scrape time)."""

    messages: int = 0
    readings_accepted: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    write_retries: int = 0
    acked: int = 0
    reconnects: int = 0
    spooled: int = 0
    replayed: int = 0
    spool_bytes: int = 0
    spool_files: int = 0
    unacked: int = 0
    rejections: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Message:
    """A received message on its way to the database; ``mid`` 0 means nothing to acknowledge."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    parsed: Parsed
    presence: bool | None = None  # a status message: online (True) or offline / last will (False)

    @property
    def device_id(self) -> str:
        """The device its topic names (the last level; readings and status messages get here only under a
        topic ``parse_topic`` accepted, and ``parse_message`` refuses a reading of another device)."""
        return self.topic.rsplit("/", 1)[-1]


@dataclass(slots=True)
class Pending:
    """The messages of one batch."""

    messages: list[Message] = field(default_factory=list)
    readings: int = 0

    def append(self, message: Message) -> None:
        self.messages.append(message)
        self.readings += len(message.parsed.readings)

    def seen(self) -> dict[str, datetime]:
        """Devices heard from in this batch, with the latest arrival."""
        out: dict[str, datetime] = {}
        for m in self.messages:
            if m.parsed.readings:
                arrived = m.parsed.received_at
                out[m.device_id] = max(out.get(m.device_id, arrived), arrived)
        return out

    def presence(self) -> list[tuple[str, bool, datetime]]:
        return [
            (m.device_id, m.presence, m.parsed.received_at)
            for m in self.messages
            if m.presence is not None
        ]

    def batch(self) -> Batch:
        out = Batch()
        for message in self.messages:
            parsed = message.parsed
            if parsed.kind is not None:
                out.extend(parsed.kind, parsed.readings, parsed.received_at)
            for letter in parsed.rejected:
                out.reject(letter)
        return out


class Committer:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        spool: Spool,
        reparse: Callable[[SpooledMessage], Parsed],
        stats: GatewayStats,
        metrics: GatewayMetrics,
        retry_seconds: float,
    ) -> None:
        self.pool = pool
        self.spool = spool
        self.reparse = reparse
        self.stats = stats
        self.metrics = metrics
        self.retry_seconds = retry_seconds
        self.database_ok = True
        self._telling: set[asyncio.Task[None]] = set()
        self.track_devices = True  # keep devices.last_seen / online current
        self._sync_spool_stats()

    def _sync_spool_stats(self) -> None:
        self.stats.spool_bytes = self.spool.bytes
        self.stats.spool_files = len(self.spool)

    async def commit(self, pending: Pending) -> None:
        """Return once ``pending`` is committed or spooled."""
        delay = self.retry_seconds
        while True:
            if self.stats.spool_files and not await self.drain():
                if self._spool(pending):
                    return
            else:
                try:
                    await self._write_counted(pending)
                except psycopg.OperationalError as exc:
                    self._down(exc)
                    if self._spool(pending):
                        return
                else:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def drain(self) -> bool:
        """Replay the spool oldest first; False when the database is still unreachable."""
        for path, spooled in self.spool.oldest():
            replay = Pending()
            for item in spooled:
                replay.append(Message(item.topic, item.payload, 0, 0, self.reparse(item)))
            try:
                await self._write_counted(replay, track_devices=False)
            except psycopg.OperationalError as exc:
                self._down(exc)
                return False
            self.spool.remove(path)
            self.stats.replayed += len(spooled)
            self._sync_spool_stats()
            log.info("replayed %d spooled messages from %s", len(spooled), path.name)
        return True

    def _down(self, exc: psycopg.Error) -> None:
        self.stats.write_retries += 1
        if self.database_ok:  # once an outage, told beside the write path (finding out why may take seconds)
            told = asyncio.create_task(self._tell_down(exc))
            self._telling.add(told)
            told.add_done_callback(self._telling.discard)
        self.database_ok = False

    async def _tell_down(self, exc: psycopg.Error) -> None:
        """Why (the server's answer behind a pool timeout) and where the batches go meanwhile."""
        conninfo = self.pool.conninfo
        why = await database_problem(exc, conninfo) if isinstance(conninfo, str) else str(exc)
        log.warning("database unavailable (%s): spooling to %s", why, self.spool.folder)

    def _spool(self, pending: Pending) -> bool:
        items = [SpooledMessage(m.topic, m.payload, m.parsed.received_at) for m in pending.messages]
        size = sum(len(m.topic) + len(m.payload) + 16 for m in items)
        if not self.spool.has_room(size):
            log.warning("spool full (%d bytes): holding acknowledgements until the database returns", self.spool.bytes)
            return False
        self.spool.append(items)
        self.stats.spooled += len(items)
        self._sync_spool_stats()
        return True

    async def _write_counted(self, pending: Pending, *, track_devices: bool = True) -> None:
        started = time.perf_counter()
        try:
            result = await self._write(pending.batch(), pending if track_devices else None)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            log.error("database refused a batch (%s); writing its messages one by one", exc)
            await self._one_by_one(pending)
            return
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self._count(result, pending)

    async def _one_by_one(self, pending: Pending) -> None:
        for message in pending.messages:
            single = Pending([message], len(message.parsed.readings))
            try:
                result = await self._write(single.batch())
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                letter = DeadLetter(
                    topic=message.topic,
                    payload=message.payload,
                    received_at=utc_now(),
                    reason=f"database refused the message: {exc}".replace("\x00", ""),
                )
                message.parsed = Parsed(kind=None, rejected=[letter], received_at=letter.received_at)
                result = await self._write(single.batch())
            self._count(result, single)

    async def _write(self, batch: Batch, devices: Pending | None = None) -> BatchResult:
        async with self.pool.connection(timeout=2.0) as conn:
            result = await write_batch(conn, batch)
            if devices is not None and self.track_devices:
                await _track(conn, devices)
        if not self.database_ok:
            log.info("database is back")
        self.database_ok = True
        return result

    def _count(self, result: BatchResult, pending: Pending) -> None:
        self.stats.batches += 1
        self.stats.readings_stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.dead_letters += result.dead_letters
        self.metrics.batch_size.observe(pending.readings)
        for message in pending.messages:
            for letter in message.parsed.rejected:
                key = counted_field(letter.field)
                self.stats.rejections[key] = self.stats.rejections.get(key, 0) + 1


async def _track(conn: AsyncConnection[TupleRow], pending: Pending) -> None:
    """Presence and last-seen of the batch's devices (after its commit; a failure only logs)."""
    try:
        seen = pending.seen()
        if seen:
            await mark_seen(conn, seen, max(seen.values()))
        for device_id, online, when in pending.presence():
            await set_online(conn, device_id, online, when)
    except psycopg.Error as exc:
        log.warning("could not update device presence: %s", exc)
