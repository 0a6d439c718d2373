"""Analytics on the real PostgreSQL: committed batches in, events out, exact resumption, late commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import fresh_database
from psycopg import AsyncConnection
from test_events_support import recent_start

from urbanpulse.analytics.service import Analytics
from urbanpulse.analytics.store import CheckpointConflictError
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest.batch import Batch
from urbanpulse.ingest.horizon import ingest_horizon
from urbanpulse.ingest.writer import write_batch
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import AnalyticsSettings, DatabaseSettings, Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.stream import Spike, messages

pytestmark = pytest.mark.integration

DEVICES = fleet(4, seed=3)  # 4 air, 4 traffic, 4 ispeed
SPIKE = Spike(device_id="air-00001", metric="pm25", start=50, length=20, factor=8.0)
STEPS = 90
START = recent_start()  # inside every retention: TimescaleDB's policies run during the tests


def sim_batches() -> list[Batch]:
    """One batch per simulated minute, every device reporting once."""
    out: dict[int, Batch] = {}
    for message in messages(DEVICES, START, STEPS, timedelta(minutes=1), seed=11, spikes=(SPIKE,)):
        received = message.time or START  # arrives when measured: the data is history, not late
        parsed = parse_message(message.topic, message.payload, received)
        assert parsed.kind is not None
        assert not parsed.rejected
        assert message.time is not None
        batch = out.setdefault(int((message.time - START) / timedelta(minutes=1)), Batch())
        for reading in parsed.readings:
            batch.add(parsed.kind, reading, received)
    return [out[i] for i in range(STEPS)]


BATCHES = sim_batches()
PER_BATCH = len(DEVICES)


def settings_for(dsn: str, **analytics: Any) -> Settings:
    return Settings(database=DatabaseSettings(dsn=dsn), analytics=AnalyticsSettings(**analytics))


async def write(dsn: str, batches: list[Batch]) -> None:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        for batch in batches:
            await write_batch(conn, batch)


async def step_through(analytics: Analytics, expected: int, patience: float = 60.0) -> int:
    """Readings scored by steps until ``expected`` are (or ``patience`` seconds pass): an ingest transaction
    of this database still open holds the horizon back, and the batches behind it come a step later
    (analytics README: read late, never skipped)."""
    scored = await analytics.step()
    deadline = time.monotonic() + patience
    while scored < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        scored += await analytics.step()
    return scored


def events(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT device_id, kind, metric, detector, status, opened_at, last_seen_at, resolved_at,"
            " peak_score, last_score, peak_value, readings FROM events ORDER BY device_id, metric, opened_at"
        ).fetchall()


def checkpoint_state(dsn: str) -> bytes:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM analytics_checkpoints").fetchone()
    assert row is not None
    return bytes(row[0])


def test_spike_opens_one_event_and_a_restart_resumes_exactly(database: str, pg_cluster: PostgresServer) -> None:
    settings = settings_for(database)

    async def first_run() -> Analytics:
        await write(database, BATCHES[:60])
        async with Analytics(settings) as analytics:
            assert await step_through(analytics, 60 * PER_BATCH) == 60 * PER_BATCH
            assert await analytics.step() == 0  # nothing new: nothing scored twice
        return analytics

    first = asyncio.run(first_run())
    assert first.stats.batches == 60
    found = events(database)
    spiked = [e for e in found if (e[0], e[2]) == (SPIKE.device_id, SPIKE.metric)]
    assert len(spiked) == 1
    _device_id, kind, _, detector, status, opened_at, last_seen_at, resolved_at, peak, _, peak_value, n = spiked[0]
    assert (kind, detector, status, resolved_at) == ("air", "ewma", "open", None)
    assert opened_at == START + SPIKE.start * timedelta(minutes=1)  # reading time, not wall-clock
    assert last_seen_at == START + 59 * timedelta(minutes=1)
    assert n == 10
    assert peak > 0.8
    assert peak_value > 100
    assert len(found) - 1 <= 2, found  # hardly any false alarms over 11 devices x 60 readings
    assert first.stats.events_opened == len(found)

    async def restart() -> Analytics:
        await write(database, BATCHES[60:])
        async with Analytics(settings) as analytics:
            assert await step_through(analytics, 30 * PER_BATCH) == 30 * PER_BATCH
        return analytics

    second = asyncio.run(restart())
    assert first.stats.readings + second.stats.readings == STEPS * PER_BATCH  # none skipped or re-scored
    after = [e for e in events(database) if (e[0], e[2]) == (SPIKE.device_id, SPIKE.metric)]
    assert len(after) == 1  # updated, never raised twice
    assert after[0][4] == "resolved"
    assert after[0][7] == START + (SPIKE.start + SPIKE.length) * timedelta(minutes=1)
    assert after[0][11] == SPIKE.length

    # Exactly as if it had never stopped: the same events and the same detector state.
    other = fresh_database(pg_cluster, f"{database}_oneshot")
    asyncio.run(write(other, BATCHES))

    async def one_shot() -> None:
        async with Analytics(settings_for(other)) as analytics:
            assert await step_through(analytics, STEPS * PER_BATCH) == STEPS * PER_BATCH

    asyncio.run(one_shot())
    assert events(other) == events(database)
    assert checkpoint_state(other) == checkpoint_state(database)


def test_a_batch_committed_late_by_an_earlier_transaction_is_not_skipped(database: str) -> None:
    async def scenario() -> Analytics:
        async with (
            await AsyncConnection.connect(database, autocommit=True) as slow,
            await AsyncConnection.connect(database, autocommit=True) as fast,
            Analytics(settings_for(database)) as analytics,
        ):
            await write_batch(fast, BATCHES[0])
            assert await step_through(analytics, PER_BATCH) == PER_BATCH
            async with slow.transaction():
                await write_batch(slow, BATCHES[1])  # has its xid, commits only at the end of the block
                await write_batch(fast, BATCHES[2])  # a later xid, committed now
                assert await analytics.step() == 0  # waits behind the open transaction
            assert await step_through(analytics, 2 * PER_BATCH) == 2 * PER_BATCH
            assert await analytics.step() == 0
        return analytics

    analytics = asyncio.run(scenario())
    assert (analytics.stats.batches, analytics.stats.readings) == (3, 3 * PER_BATCH)


def test_run_wakes_on_notifications(database: str) -> None:
    async def scenario() -> Analytics:
        stop = asyncio.Event()
        async with Analytics(settings_for(database, poll_seconds=60.0)) as analytics:
            task = asyncio.create_task(analytics.run(stop))
            await asyncio.sleep(0.3)
            await write(database, BATCHES[:3])
            for _ in range(100):
                if analytics.stats.readings == 3 * PER_BATCH:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 5.0)
        return analytics

    analytics = asyncio.run(scenario())
    assert analytics.stats.readings == 3 * PER_BATCH
    assert analytics.stats.notifications >= 1


def test_after_an_outage_it_scores_at_its_next_attempt(pg_server: PostgresServer) -> None:
    """The database down for 3 s: once it is back, the next attempt scores (a connection the server closed
    while it sat idle is not reused, which used to cost one more back-off after the outage)."""
    dsn = pg_server.dsn

    async def scenario() -> float:
        stop = asyncio.Event()
        async with Analytics(settings_for(dsn, poll_seconds=0.2)) as analytics:
            task = asyncio.create_task(analytics.run(stop))
            await write(dsn, BATCHES[:1])
            for _ in range(600):
                if analytics.stats.readings == PER_BATCH:
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(pg_server.stop)
            await asyncio.sleep(3.0)  # attempts back off: 0.2, 0.4, 0.8, 1.6 s ...
            await asyncio.to_thread(pg_server.start)
            await write(dsn, BATCHES[1:2])
            back = time.monotonic()
            for _ in range(600):
                if analytics.stats.readings == 2 * PER_BATCH:
                    break
                await asyncio.sleep(0.05)
            waited = time.monotonic() - back
            stop.set()
            await asyncio.wait_for(task, 10.0)
        assert analytics.stats.readings == 2 * PER_BATCH
        return waited

    assert asyncio.run(scenario()) < 4.0  # at most the back-off it was in (3.2 s), not another one after it


def test_two_consumers_under_one_name_conflict(database: str) -> None:
    async def scenario() -> None:
        settings = settings_for(database)
        async with Analytics(settings) as one, Analytics(settings) as two:
            assert await one.step() == 0
            assert await two.step() == 0
            await write(database, BATCHES[:1])
            assert await step_through(one, PER_BATCH) == PER_BATCH
            with pytest.raises(CheckpointConflictError):
                await two.step()

    asyncio.run(scenario())
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM analytics_checkpoints").fetchone() == (1,)


def test_horizon_skips_only_transactions_known_to_run_without_the_ingest_lock() -> None:
    # 100 runs without the lock (skipped), 105 ended after the snapshot or holds the lock (kept)
    assert ingest_horizon(120, [100, 105, 110], not_ingest={100, 110}) == 105
    assert ingest_horizon(120, [100, 110], not_ingest={100, 110}) == 120
    assert ingest_horizon(120, [100, 110], not_ingest=set()) == 100
    assert ingest_horizon(120, [], not_ingest={7}) == 120
    assert ingest_horizon(2**32 + 120, [2**32 + 100], not_ingest={100}) == 2**32 + 120  # 32-bit ids in pg_locks


async def _hold_an_xid(conn: AsyncConnection[Any]) -> None:
    """Begin a transaction that has a transaction id (as any write gives it) and leave it open."""
    await conn.execute("BEGIN")
    await conn.execute("SELECT pg_current_xact_id()")


@pytest.mark.parametrize("where", ["another database", "this database"])
def test_a_long_transaction_that_is_not_ingest_does_not_hold_events_back(
    database: str, pg_cluster: PostgresServer, where: str
) -> None:
    """A write transaction that writes no batch -- another application's, a TimescaleDB job's, a report's
    -- no longer delays the batches committed after it began (before: until it ended)."""
    other = database
    if where == "another database":
        other = fresh_database(pg_cluster, f"{database.rsplit('/', 1)[1]}_other")

    async def scenario() -> None:
        async with (
            await AsyncConnection.connect(other, autocommit=True) as long,
            Analytics(settings_for(database)) as analytics,
        ):
            await _hold_an_xid(long)
            await write(database, BATCHES[:2])
            assert await analytics.step() == 2 * PER_BATCH  # at once, the long transaction still open
            async with await AsyncConnection.connect(database, autocommit=True) as slow:
                async with slow.transaction():  # an ingest transaction still holds it back
                    await write_batch(slow, BATCHES[2])
                    await write(database, BATCHES[3:4])
                    assert await analytics.step() == 0
                assert await analytics.step() == 2 * PER_BATCH  # and its batch is read, not skipped
            await long.execute("ROLLBACK")

    asyncio.run(scenario())


def test_an_ingest_batch_must_be_the_first_write_of_its_transaction(database: str) -> None:
    """The trigger refuses a batch in a transaction that had a transaction id before it took the ingest
    lock: analytics may already have read past it as a transaction that is not ingest."""

    async def after_a_write(conn: AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_current_xact_id()")
            await write_batch(conn, BATCHES[0])

    async def after_a_savepoint_rolled_back(conn: AsyncConnection[Any]) -> None:
        """Rolling back to a savepoint releases the lock taken in it; the transaction keeps its id."""
        async with conn.transaction():
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():
                    await write_batch(conn, BATCHES[0])
                    raise RuntimeError  # roll back to the savepoint
            await write_batch(conn, BATCHES[1])

    async def scenario() -> None:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="first write"):
                await after_a_write(conn)
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="first write"):
                await after_a_savepoint_rolled_back(conn)
            assert (await write_batch(conn, BATCHES[2])).stored == PER_BATCH  # the usual way
            count = await (await conn.execute("SELECT count(*) FROM ingest_batches")).fetchone()
            assert count == (1,)

    asyncio.run(scenario())


def test_a_duplicate_batch_in_the_callers_transaction_is_stored_once(database: str) -> None:
    """Inside a transaction of the caller's, the retry after a duplicate (its savepoint rolled back) keeps
    the ingest lock: the transaction took it before its first write."""

    async def scenario() -> None:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            await write_batch(conn, BATCHES[0])
            async with conn.transaction():
                again = await write_batch(conn, BATCHES[0])
                fresh = await write_batch(conn, BATCHES[1])
            assert (again.stored, again.duplicates, fresh.stored) == (0, PER_BATCH, PER_BATCH)

    asyncio.run(scenario())


def test_without_the_trigger_the_horizon_falls_back_to_the_oldest_transaction(database: str) -> None:
    """A database whose trigger is disabled (``pg_restore --disable-triggers``) or missing: ingest
    transactions need not hold the lock, so any running transaction holds the horizon back again --
    later events, never a skipped batch."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE ingest_batches DISABLE TRIGGER ingest_batches_mark")

    async def scenario() -> None:
        async with (
            await AsyncConnection.connect(database, autocommit=True) as slow,
            Analytics(settings_for(database)) as analytics,
        ):
            await slow.execute("BEGIN")  # a batch written without the lock (the trigger is off)
            await slow.execute("INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (0, 0, 0)")
            await write(database, BATCHES[:1])
            assert await analytics.step() == 0  # held back behind it, as by any running transaction
            await slow.execute("COMMIT")
            assert await step_through(analytics, PER_BATCH) == PER_BATCH
            assert analytics.stats.batches == 2  # the late one read too

    asyncio.run(scenario())


def test_progress_is_logged_once_a_minute_when_there_was_any(caplog: pytest.LogCaptureFixture) -> None:
    from urbanpulse.analytics.service import AnalyticsStats, _Progress  # noqa: PLC0415

    stats = AnalyticsStats()
    progress = _Progress(0.0, AnalyticsStats())
    with caplog.at_level("INFO", logger="urbanpulse.analytics"):
        stats.readings, stats.batches, stats.events_opened = 120, 4, 1
        progress.log_every(60.0, 30.0, stats)  # too early
        progress.log_every(60.0, 61.0, stats)
        progress.log_every(60.0, 125.0, stats)  # nothing new since: quiet
        stats.readings = 150
        progress.log_every(60.0, 190.0, stats)
    assert [r.getMessage() for r in caplog.records] == [
        "scored 120 readings in 61 s (4 batches); events 1 opened, 0 resolved; 0 incidents opened;"
        " slow provinces 0 opened, 0 resolved",
        "scored 30 readings in 65 s (0 batches); events 0 opened, 0 resolved; 0 incidents opened;"
        " slow provinces 0 opened, 0 resolved",
    ]


def test_run_logs_its_first_minutes_work(
    database: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("urbanpulse.analytics.service.PROGRESS_SECONDS", 0.3)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with Analytics(settings_for(database, poll_seconds=0.1)) as analytics:
            await write(database, BATCHES[:3])
            task = asyncio.create_task(analytics.run(stop))
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.wait_for(task, 5.0)

    with caplog.at_level("INFO", logger="urbanpulse.analytics"):
        asyncio.run(scenario())
    assert f"scored {3 * PER_BATCH} readings" in caplog.text

