"""Faults on real parts: every reading whose PUBACK the publisher received is stored exactly once.

- the gateway killed with SIGKILL three times while >= 20,000 readings arrive at a steady rate;
- PostgreSQL stopped for 30 s mid-stream, then restarted (the gateway spools and replays);
- Mosquitto restarted mid-stream (its persistence keeps the gateway's session and backlog);
- two gateway workers on one shared subscription.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from faults import gateway_process, reconcile, steady_stream, wait_for_rows

from urbanpulse.gateway.handover import STOP_GRACE
from urbanpulse.gateway.service import Gateway
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import Settings
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.stream import SimMessage

pytestmark = pytest.mark.integration


def _settings(dsn: str, broker: MosquittoServer, tmp_path: Path, **gateway: object) -> Settings:
    from conftest import make_settings  # noqa: PLC0415

    return make_settings(dsn, broker, spool_dir=tmp_path / "spool", **gateway)


async def _publish_with(fault: object, sent: list[SimMessage], settings: Settings, rate: float) -> set[int]:
    task = asyncio.create_task(fault)  # type: ignore[arg-type]
    report = await publish(sent, settings.broker, rate=rate, concurrency=200)
    await task
    assert len(report.acked) == len(sent)
    return report.acked


def test_gateway_killed_three_times(database: str, broker: MosquittoServer, tmp_path: Path) -> None:
    settings = _settings(database, broker, tmp_path)
    sent = steady_stream(devices_per_kind=50, steps=134)  # 20,100 readings
    assert len(sent) >= 20000
    gateway = gateway_process(settings, tmp_path / "spool", tmp_path / "gateway.log")
    gateway.start()
    gateway.wait_subscribed()  # from here on the broker keeps the gateway's session

    async def kill_three_times() -> None:
        for _ in range(3):
            await asyncio.sleep(2.0)
            await asyncio.to_thread(gateway.kill)
            await asyncio.sleep(0.3)
            gateway.start()

    try:
        acked = asyncio.run(_publish_with(kill_three_times(), sent, settings, rate=2500))
        wait_for_rows(database, len(sent))
    finally:
        gateway.stop()
    wanted, stored, missing = reconcile(database, sent, acked)
    assert (wanted, missing) == (len(sent), 0)
    assert stored == wanted


def test_database_stopped_for_30_seconds(pg_server: PostgresServer, broker: MosquittoServer, tmp_path: Path) -> None:
    settings = _settings(pg_server.dsn, broker, tmp_path, metrics_port=0)
    sent = steady_stream(devices_per_kind=50, steps=134)
    health: list[tuple[int, bool]] = []

    async def scenario() -> Gateway:
        stop = asyncio.Event()
        async with Gateway(settings) as gateway:
            runner = asyncio.create_task(gateway.run(stop))
            await gateway.subscribed.wait()

            async def outage() -> None:  # the server stops and starts in a thread: the gateway runs on meanwhile
                await asyncio.sleep(4)
                await asyncio.to_thread(pg_server.stop)
                await asyncio.sleep(2)
                health.append(await asyncio.to_thread(_healthz, gateway.metrics_port))
                await asyncio.sleep(29)
                await asyncio.to_thread(pg_server.start)

            await _publish_with(outage(), sent, settings, rate=500)
            for _ in range(600):
                if gateway.stats.spool_files == 0 and gateway.stats.unacked == 0:
                    break
                await asyncio.sleep(0.1)
            health.append(await asyncio.to_thread(_healthz, gateway.metrics_port))
            metrics = await asyncio.to_thread(_get, gateway.metrics_port, "/metrics")
            spooled = [line for line in metrics.splitlines() if line.startswith("urbanpulse_gateway_spooled_total ")]
            assert spooled, metrics
            assert float(spooled[0].split()[1]) == gateway.stats.spooled > 0
            stop.set()
            await runner
        return gateway

    gateway = asyncio.run(scenario())
    wait_for_rows(pg_server.dsn, len(sent))
    wanted, stored, missing = reconcile(pg_server.dsn, sent, set(range(len(sent))))
    assert (missing, stored) == (0, wanted)
    assert gateway.stats.spooled > 0, "the outage should have been bridged by the spool"
    assert gateway.stats.replayed == gateway.stats.spooled
    assert health[0] == (503, False)
    assert health[-1] == (200, True)


def test_broker_restarted_mid_stream(database: str, broker: MosquittoServer, tmp_path: Path) -> None:
    settings = _settings(database, broker, tmp_path)
    sent = steady_stream(devices_per_kind=50, steps=134)

    async def scenario() -> set[int]:
        stop = asyncio.Event()
        async with Gateway(settings) as gateway:
            runner = asyncio.create_task(gateway.run(stop))
            await gateway.subscribed.wait()

            async def restart() -> None:
                await asyncio.sleep(3)
                await asyncio.to_thread(broker.restart)

            acked = await _publish_with(restart(), sent, settings, rate=2500)
            for _ in range(600):
                if gateway.stats.readings_stored >= len(sent):
                    break
                await asyncio.sleep(0.1)
            stopping = time.monotonic()
            stop.set()
            await runner
            assert time.monotonic() - stopping < STOP_GRACE / 3, "a stop waits for the writer's work, not its grace"
            assert gateway.stats.reconnects >= 1
            # a batch being committed as the connection dropped is committed whole and counted
            assert gateway.stats.readings_stored == len(sent)
        return acked

    acked = asyncio.run(scenario())
    wanted, stored, missing = reconcile(database, sent, acked)
    assert (missing, stored) == (0, wanted)


def test_two_workers_share_the_load(database: str, broker: MosquittoServer, tmp_path: Path) -> None:
    settings = _settings(database, broker, tmp_path, share_group="urbanpulse")
    sent = steady_stream(devices_per_kind=20, steps=50)

    async def scenario() -> tuple[Gateway, Gateway]:
        stop = asyncio.Event()
        async with Gateway(settings, worker=0) as first, Gateway(settings, worker=1) as second:
            runners = [asyncio.create_task(g.run(stop)) for g in (first, second)]
            await asyncio.gather(first.subscribed.wait(), second.subscribed.wait())
            report = await publish(sent, settings.broker, concurrency=100)
            assert len(report.acked) == len(sent)
            for _ in range(300):
                if first.stats.acked + second.stats.acked >= len(sent):
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*runners)
        return first, second

    first, second = asyncio.run(scenario())
    assert first.stats.messages > 0, "both workers did work"
    assert second.stats.messages > 0, "both workers did work"
    assert first.stats.messages + second.stats.messages == len(sent)
    wanted, stored, missing = reconcile(database, sent, set(range(len(sent))))
    assert (missing, stored) == (0, wanted)


def _get(port: int | None, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def _healthz(port: int | None) -> tuple[int, bool]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, bool(json.loads(response.read())["ok"])
    except urllib.error.HTTPError as err:
        return err.code, bool(json.loads(err.read())["ok"])


def test_a_metrics_port_in_use_fails_at_once_with_a_clear_error(
    database: str, broker: MosquittoServer, tmp_path: Path
) -> None:
    """A second gateway on the same metrics port: a clear error in well under a second, nothing left
    open (it used to open the database pool first, never close it, and hang on exit)."""

    async def start_twice() -> str:
        first = _settings(database, broker, tmp_path, metrics_port=0)
        async with Gateway(first) as running:
            taken = _settings(database, broker, tmp_path, metrics_port=running.metrics_port)
            second = Gateway(taken)
            started = time.monotonic()
            with pytest.raises(OSError, match="cannot serve metrics") as refused:
                await asyncio.wait_for(second.__aenter__(), 10)
            assert time.monotonic() - started < 1.0
            assert (second._pool, second._http) == (None, None)  # nothing left open
            return str(refused.value)

    message = asyncio.run(asyncio.wait_for(start_twice(), 30))
    assert "URBANPULSE_GATEWAY__METRICS_PORT" in message
    assert "URBANPULSE_GATEWAY__CLIENT_ID" in message


def test_a_second_gateway_with_the_same_client_id_is_named_in_the_log(
    database: str, broker: MosquittoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two gateways under one client id take the session from each other every second; the log says so (it
    said only "broker connection lost"), naming the setting."""

    async def both() -> None:
        one = _settings(database, broker, tmp_path / "one")
        two = _settings(database, broker, tmp_path / "two")
        async with Gateway(one) as first, Gateway(two) as second:
            stop = asyncio.Event()
            runners = [asyncio.create_task(first.run(stop))]
            await first.subscribed.wait()
            runners.append(asyncio.create_task(second.run(stop)))
            for _ in range(300):
                if first.stats.reconnects + second.stats.reconnects >= 6:  # three each, or so
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*runners)

    with caplog.at_level("WARNING", logger="urbanpulse.gateway"):
        asyncio.run(asyncio.wait_for(both(), 60))
    taken = [r.getMessage() for r in caplog.records if "session (client id urbanpulse-gateway) to another" in
             r.getMessage()]
    assert taken, [r.getMessage() for r in caplog.records]
    assert "Two gateways need their own URBANPULSE_GATEWAY__CLIENT_ID" in taken[0]
