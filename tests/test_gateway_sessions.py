"""Sessions left behind, on the real broker and database: Mosquitto keeps sending a stopped worker its share
of a shared subscription; ``sessions.left_behind`` finds that session, ``sessions.retire`` stores what it
holds (once) and ends it, and from then on the running worker gets every message."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from faults import gateway_process, reconcile, steady_stream, wait_for_rows

from urbanpulse.gateway.service import Gateway
from urbanpulse.gateway.sessions import client_ids, end_session, left_behind, retire
from urbanpulse.localstack import MosquittoServer
from urbanpulse.settings import Settings
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.stream import SimMessage

pytestmark = pytest.mark.integration


def _settings(dsn: str, broker: MosquittoServer, tmp_path: Path, **gateway: object) -> Settings:
    from conftest import make_settings  # noqa: PLC0415

    return make_settings(dsn, broker, spool_dir=tmp_path / "spool", **gateway)


async def _run_until_acked(gateway: Gateway, sent: list[SimMessage], settings: Settings) -> int:
    """Publish ``sent`` while ``gateway`` runs; wait until what it received is acknowledged; how many it got."""
    stop = asyncio.Event()
    runner = asyncio.create_task(gateway.run(stop))
    await gateway.subscribed.wait()
    report = await publish(sent, settings.broker, concurrency=100)
    assert len(report.acked) == len(sent)
    for _ in range(100):
        await asyncio.sleep(0.1)
        if gateway.stats.messages and not gateway.stats.unacked:
            break
    stop.set()
    await runner
    return gateway.stats.messages


def test_a_stopped_workers_share_is_stored_and_its_session_ended(
    database: str, broker: MosquittoServer, tmp_path: Path
) -> None:
    settings = _settings(database, broker, tmp_path, share_group="urbanpulse")
    base = settings.gateway.client_id
    sent = steady_stream(devices_per_kind=10, steps=20)
    later = steady_stream(devices_per_kind=10, steps=40)[len(sent):]  # the same devices, later readings

    async def two_workers_then_one() -> int:
        async with Gateway(settings, worker=1) as second:  # subscribes, then stops: its session stays
            stop = asyncio.Event()
            runner = asyncio.create_task(second.run(stop))
            await second.subscribed.wait()
            stop.set()
            await runner
        async with Gateway(settings, worker=0) as first:
            return await _run_until_acked(first, sent, settings)

    got = asyncio.run(two_workers_then_one())
    assert 0 < got < len(sent), "the broker kept a share for the stopped worker"
    assert left_behind(settings, [f"{base}-0"]) == [f"{base}-1"]
    assert left_behind(settings, [f"{base}-0"]) == [f"{base}-1"], "a probe changes no session"

    stats = asyncio.run(retire(settings, f"{base}-1", idle=1.0))
    assert stats.messages == len(sent) - got
    wait_for_rows(database, len(sent))
    wanted, stored, missing = reconcile(database, sent, set(range(len(sent))))
    assert (missing, stored) == (0, wanted)
    assert left_behind(settings, [f"{base}-0"]) == [], "the retired session is gone"

    async def one_worker() -> int:
        async with Gateway(settings, worker=0) as first:
            return await _run_until_acked(first, later, settings)

    assert asyncio.run(one_worker()) == len(later), "the running worker gets every message now"


def test_a_single_gateways_session_is_retired_when_workers_take_over(
    database: str, broker: MosquittoServer, tmp_path: Path
) -> None:
    """One gateway (no $share: a copy of every message), then two workers: the old session is drained."""
    single = _settings(database, broker, tmp_path)
    shared = _settings(database, broker, tmp_path, share_group="urbanpulse")
    sent = steady_stream(devices_per_kind=10, steps=20)

    async def single_then_workers() -> None:
        async with Gateway(single) as gateway:  # subscribes without $share, then stops
            stop = asyncio.Event()
            runner = asyncio.create_task(gateway.run(stop))
            await gateway.subscribed.wait()
            stop.set()
            await runner
        async with Gateway(shared, worker=0) as first, Gateway(shared, worker=1) as second:
            stop = asyncio.Event()
            runners = [asyncio.create_task(g.run(stop)) for g in (first, second)]
            await asyncio.gather(first.subscribed.wait(), second.subscribed.wait())
            report = await publish(sent, shared.broker, concurrency=100)
            assert len(report.acked) == len(sent)
            stop.set()
            await asyncio.gather(*runners)

    asyncio.run(single_then_workers())
    ids = client_ids(shared, 2)
    assert left_behind(shared, ids) == [single.gateway.client_id]
    stats = asyncio.run(retire(shared, single.gateway.client_id, idle=1.0))
    assert stats.messages == len(sent), "the old session held a copy of every message"
    assert left_behind(shared, ids) == []
    wanted, stored, missing = reconcile(database, sent, set(range(len(sent))))
    assert (missing, stored) == (0, wanted)


def test_a_session_still_delivering_is_not_ended(database: str, broker: MosquittoServer, tmp_path: Path) -> None:
    settings = _settings(database, broker, tmp_path, share_group="urbanpulse")
    base = settings.gateway.client_id

    async def subscribe_and_leave() -> None:
        async with Gateway(settings, worker=3) as gateway:
            stop = asyncio.Event()
            runner = asyncio.create_task(gateway.run(stop))
            await gateway.subscribed.wait()
            stop.set()
            await runner
        report = await publish(steady_stream(devices_per_kind=2, steps=2), settings.broker)
        assert report.acked

    asyncio.run(subscribe_and_leave())
    assert not end_session(settings, f"{base}-3"), "it holds messages: kept"
    assert left_behind(settings, []) == [f"{base}-3"]


def test_urbanpulse_gateway_retires_the_sessions_of_workers_it_no_longer_runs(
    database: str, broker: MosquittoServer, tmp_path: Path
) -> None:
    """`urbanpulse gateway` (one process) after two workers: their sessions' readings are stored, once."""
    shared = _settings(database, broker, tmp_path, share_group="urbanpulse")
    sent = steady_stream(devices_per_kind=10, steps=20)

    async def two_workers_leave() -> None:
        for worker in (0, 1):
            async with Gateway(shared, worker=worker) as gateway:
                stop = asyncio.Event()
                runner = asyncio.create_task(gateway.run(stop))
                await gateway.subscribed.wait()
                stop.set()
                await runner
        report = await publish(sent, shared.broker, concurrency=100)  # shared out over two absent workers
        assert len(report.acked) == len(sent)

    asyncio.run(two_workers_leave())
    base = shared.gateway.client_id
    assert left_behind(shared, [base]) == [f"{base}-0", f"{base}-1"]
    log = tmp_path / "gateway.log"
    gateway = gateway_process(shared, tmp_path / "spool", log)
    gateway.start()
    try:
        gateway.wait_subscribed()
        wait_for_rows(database, len(sent))
        for _ in range(300):  # the retiring processes end their sessions once idle
            if log.read_text().count("retired the session of") == 2:
                break
            time.sleep(0.1)
    finally:
        gateway.stop()
    wanted, stored, missing = reconcile(database, sent, set(range(len(sent))))
    assert (missing, stored) == (0, wanted)
    assert log.read_text().count("session ended") == 2
    assert left_behind(shared, [base]) == []
