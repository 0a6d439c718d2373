"""The analytics process: committed readings in, anomaly events out, resuming exactly after a restart.

``Analytics`` is an async context manager owning two connections: one for reading batches and
writing events and checkpoints, one that LISTENs on ingest's ``urbanpulse_batches`` channel.
``step()`` scores everything committed since the checkpoint, chunk by chunk, each chunk's events,
incidents, outbox rows and checkpoint in one transaction (see :mod:`urbanpulse.analytics.store`).
``run()`` steps whenever ingest notifies, or every ``poll_seconds`` (notifications are a hint; the
horizon is the truth), and meanwhile publishes the outbox on MQTT (:mod:`urbanpulse.analytics.publish`)
unless the ``publish`` setting is off.

Errors: a database error in a step rolls its chunk back and drops the in-memory state, which the
next step reloads from the checkpoint, so nothing is half-applied. ``run()`` retries a lost
connection with back-off (doubling from ``poll_seconds`` up to 10 s), forever; any other error --
including :class:`~urbanpulse.analytics.store.CheckpointConflictError` -- ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql

from urbanpulse.analytics.events import Rules, advance
from urbanpulse.analytics.ewma import SLOW_ALPHA, SLOW_CLIP, score_learn
from urbanpulse.analytics.publish import Publisher
from urbanpulse.analytics.slow_provinces import Checked, SlowRule, check, retire
from urbanpulse.analytics.state import SeriesState
from urbanpulse.analytics.store import Chunk, Policy, Written, close_resolved, load_checkpoint, read_chunk, save
from urbanpulse.ingest.writer import NOTIFY_CHANNEL
from urbanpulse.settings import Settings

__all__ = ["Analytics", "AnalyticsStats"]

log = logging.getLogger("urbanpulse.analytics")

# Detector parameters that are not settings (yet): see RobustEwmaZScore for their meaning.
CLIP = 3.0
SCALE = 3.0
# The slow view (SLOW_ALPHA, SLOW_CLIP: ewma.py) is a second baseline; a reading scores the larger of the two.
MAX_RETRY_SECONDS = 10.0  # a connection attempt is cheap; events wait no longer than this after an outage
PUBLISH_GRACE_SECONDS = 5.0  # how long a stopping run() lets the publisher finish its last drain


@dataclass(slots=True)
class AnalyticsStats:
    """Counters since start (this process only; the checkpoint holds what earlier ones did)."""

    readings: int = 0  # readings scored
    points: int = 0  # metric values scored
    batches: int = 0  # ingest batches consumed
    chunks: int = 0  # transactions of events + checkpoint
    events_opened: int = 0
    # As written: an event an operator resolved meanwhile is neither updated nor resolved again.
    events_updated: int = 0  # open events that got readings (not every update is published)
    events_resolved: int = 0
    events_flapping: int = 0
    closed_by_operators: int = 0  # events the rules held open that an operator had resolved
    incidents_opened: int = 0
    slow_provinces_opened: int = 0  # incidents of the slow-province rule (not in incidents_opened)
    slow_provinces_updated: int = 0  # their "updated" messages (a new severity, new figures)
    slow_provinces_resolved: int = 0
    changes_queued: int = 0  # outbox rows written for MQTT
    notifications: int = 0
    reconnects: int = 0


PROGRESS_SECONDS = 60.0  # how often the service logs what it did, when it did anything


@dataclass(slots=True)
class _Progress:
    """A line of what the service did since the last one, for a log that shows it is alive and working."""

    at: float
    seen: AnalyticsStats

    def log_every(self, seconds: float, now: float, stats: AnalyticsStats) -> None:
        if now - self.at < seconds:
            return
        s, was = stats, self.seen
        if s.readings != was.readings:
            log.info("scored %d readings in %.0f s (%d batches); events %d opened, %d resolved; %d incidents opened;"
                     " slow provinces %d opened, %d resolved",
                     s.readings - was.readings, now - self.at, s.batches - was.batches,
                     s.events_opened - was.events_opened, s.events_resolved - was.events_resolved,
                     s.incidents_opened - was.incidents_opened, s.slow_provinces_opened - was.slow_provinces_opened,
                     s.slow_provinces_resolved - was.slow_provinces_resolved)
        self.at, self.seen = now, dataclasses.replace(stats)


def rules(settings: Settings) -> Rules:
    """The event rules of ``settings``."""
    a = settings.analytics
    return Rules(
        open_score=a.open_score, resolve_score=a.resolve_score,
        min_readings=a.min_readings,
        hold_seconds=a.resolve_hold_seconds,
        flap_opens=a.flap_opens,
        flap_window_seconds=a.flap_window_seconds,
    )


def policy(settings: Settings) -> Policy:
    """How ``settings`` rates, groups and publishes event changes."""
    a = settings.analytics
    return Policy(
        download_line_mbps=settings.storage.ispeed_slow_mbps,
        incident_window=timedelta(seconds=a.incident_window_seconds),
        update_every=timedelta(seconds=a.publish_update_seconds),
    )


def slow_rule(settings: Settings) -> SlowRule | None:
    """The slow-province rule of ``settings`` (None when it is off)."""
    a = settings.analytics
    if a.slow_province_hours == 0:
        return None
    return SlowRule(hours=a.slow_province_hours, min_tests=a.slow_province_min_tests,
                    recovered_share=a.slow_province_recovered_share,
                    every=timedelta(seconds=a.slow_province_check_seconds),
                    networks=tuple(a.slow_province_networks),
                    update_every=timedelta(seconds=a.publish_update_seconds))


class Analytics:
    """Streaming anomaly detection over committed readings.

    >>> async def main(settings: Settings) -> None:  # doctest: +SKIP
    ...     async with Analytics(settings) as analytics:
    ...         await analytics.run()
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = AnalyticsStats()
        self._conn: AsyncConnection[Any] | None = None
        self._listen: AsyncConnection[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._entered = False
        self._state: SeriesState | None = None
        self._horizon: int | None = None  # the checkpoint's horizon, None before the first one
        self.rules = rules(settings)
        self.policy = policy(settings)
        self.slow_rule = slow_rule(settings)
        self._reading_time: datetime | None = None  # the latest reading time scored
        self._provinces_checked: datetime | None = None  # reading time of the last slow-province check
        self.publisher = Publisher(settings)

    async def __aenter__(self) -> Self:
        self._entered = True
        await self._connection()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = False
        await self._stop_listening()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None
            self.stats.reconnects += 1

    async def _connection(self) -> AsyncConnection[Any]:
        assert self._entered, "use Analytics as an async context manager"
        if self._conn is None or self._conn.closed or self._conn.broken:
            await self._drop_connection()
            self._conn = await AsyncConnection.connect(self.settings.database.dsn, autocommit=True)
        return self._conn

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """Score every batch committed since the last step (until ``stop`` is set: a backlog after an outage is
        many chunks, and a stop should not wait for them all); returns the readings scored."""
        conn = await self._connection()
        a = self.settings.analytics
        scored = 0
        try:
            if self._state is None:
                self._horizon, self._state = await load_checkpoint(conn, a.checkpoint_name)
            state = self._state
            while (chunk := await read_chunk(conn, self._horizon or 0, state)) is not None:
                p = chunk.points
                scores = score_learn(p.series, p.values, state.min_sigma, state.ewma.mean, state.ewma.spread,
                                     state.ewma.count, float(a.alpha), int(a.warmup), CLIP, SCALE)
                slow = score_learn(p.series, p.values, state.min_sigma, state.slow.mean, state.slow.spread,
                                   state.slow.count, SLOW_ALPHA, int(a.warmup), SLOW_CLIP, SCALE)
                np.maximum(scores, slow, out=scores)
                state.events.fit(self.rules.ring)
                self.stats.closed_by_operators += await close_resolved(conn, state)
                changes = advance(p.series, scores, p.values, p.times, state.events, self.rules)
                written = await save(conn, a.checkpoint_name, self._horizon, chunk.horizon, state, changes,
                                     self.policy)
                self._horizon = chunk.horizon
                self._count(chunk, written)
                if p.times:
                    latest = max(p.times)
                    self._reading_time = latest if self._reading_time is None else max(self._reading_time, latest)
                scored += p.readings
                if not chunk.more or (stop is not None and stop.is_set()):
                    break  # a stop between chunks: each chunk is checkpointed, the next run goes on from it
            await self._check_provinces(conn)
        except BaseException:
            self._state = None  # reloaded from the checkpoint, which the failed chunk did not move
            raise
        return scored

    async def _check_provinces(self, conn: AsyncConnection[Any]) -> None:
        """The slow-province rule, every ``slow_province_check_seconds`` of reading time; once, when it is off,
        the resolution of the incidents it left open."""
        t, last, rule = self._reading_time, self._provinces_checked, self.slow_rule
        if t is None or (last is not None and (rule is None or t - last < rule.every)):
            return
        done: Checked = await (check(conn, t, rule) if rule is not None else retire(conn, t))  # off: once
        self._provinces_checked = t
        self.stats.slow_provinces_opened += done.opened
        self.stats.slow_provinces_updated += done.updated
        self.stats.slow_provinces_resolved += done.resolved
        self.stats.changes_queued += done.outbox
        if done.outbox:
            self.publisher.wake.set()

    def _count(self, chunk: Chunk, written: Written) -> None:
        s = self.stats
        s.chunks += 1
        s.batches += len(chunk.batch_ids)
        s.readings += chunk.points.readings
        s.points += len(chunk.points.values)
        s.events_opened += written.opened
        s.events_updated += written.extended
        s.events_resolved += written.resolved
        s.events_flapping += written.flapping
        s.incidents_opened += written.incidents_opened
        s.changes_queued += written.outbox
        if written.outbox:
            self.publisher.wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Step on every notification (or every ``poll_seconds``) until ``stop`` is set."""
        stop = stop or asyncio.Event()
        poll = self.settings.analytics.poll_seconds
        delay = poll
        stopper = asyncio.ensure_future(stop.wait())
        publishing = (asyncio.create_task(self.publisher.run(stop))
                      if self.settings.analytics.publish else None)
        log.info("analytics consuming committed batches (checkpoint %r)", self.settings.analytics.checkpoint_name)
        progress = _Progress(asyncio.get_running_loop().time(), dataclasses.replace(self.stats))  # a copy
        try:
            while not stop.is_set():
                progress.log_every(PROGRESS_SECONDS, asyncio.get_running_loop().time(), self.stats)
                self._wake.clear()  # before the step: a notification during it means another step
                had_connection = self._conn is not None
                try:
                    await self._ensure_listening()
                    await self.step(stop)
                except psycopg.OperationalError as exc:
                    # A connection the server closed while it sat idle fails only when used: the database
                    # may be back already, so a failure on it is retried at once, on a new connection.
                    await self._drop_connection()
                    await self._stop_listening()
                    if had_connection:
                        log.warning("database connection lost (%s); connecting again", exc)
                        continue
                    log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stopper), delay)
                    delay = min(delay * 2, MAX_RETRY_SECONDS)
                    continue
                delay = poll
                waker = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({waker, stopper}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            stopper.cancel()
            if publishing is not None:
                if not stop.is_set():
                    publishing.cancel()  # run() ends on an error
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(publishing, PUBLISH_GRACE_SECONDS)  # a drain in progress may finish

    async def _ensure_listening(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        await self._stop_listening()
        self._listen = await AsyncConnection.connect(self.settings.database.dsn, autocommit=True)
        await self._listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        self._listener = asyncio.create_task(self._listen_loop(self._listen))

    async def _listen_loop(self, conn: AsyncConnection[Any]) -> None:
        try:
            async for _ in conn.notifies():
                self.stats.notifications += 1
                self._wake.set()
        except psycopg.OperationalError as exc:
            log.warning("LISTEN connection lost (%s); polling until it is back", exc)
        self._wake.set()  # step (and re-listen) at once

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await self._listener
            self._listener = None
        if self._listen is not None:
            with contextlib.suppress(psycopg.Error):
                await self._listen.close()
            self._listen = None
