"""``urbanpulse sim`` registers its fleet first, so a gateway that refuses unknown devices stores its readings."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from urbanpulse.cli import app
from urbanpulse.localstack import MosquittoServer, free_port

pytestmark = pytest.mark.integration


def test_sim_registers_its_devices_once(database: str, broker: MosquittoServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", database)
    monkeypatch.setenv("URBANPULSE_BROKER__PORT", str(broker.port))
    monkeypatch.setenv("URBANPULSE_GATEWAY__DIRECTORY_REFRESH_SECONDS", "0.5")
    runner = CliRunner()
    first = runner.invoke(app, ["sim", "--devices", "2", "--interval", "0.5", "--duration", "1"])
    assert first.exit_code == 0, first.output
    assert "6 simulated devices registered, 0 already known" in first.output
    # new devices: it waits for a running gateway's next read of the registry before it publishes
    assert "waiting 2 s for a running gateway to read them" in first.output
    with psycopg.connect(database) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM devices WHERE enabled GROUP BY 1 ORDER BY 1").fetchall()
    assert kinds == [("air", 2), ("ispeed", 2), ("traffic", 2)]
    again = runner.invoke(app, ["sim", "--devices", "2", "--interval", "0.5", "--duration", "1"])
    assert again.exit_code == 0, again.output
    assert "0 simulated devices registered, 6 already known" in again.output
    assert "waiting" not in again.output


def test_sim_without_a_database_says_what_to_do(broker: MosquittoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    monkeypatch.setenv("URBANPULSE_BROKER__PORT", str(broker.port))
    runner = CliRunner()
    refused = runner.invoke(app, ["sim", "--devices", "1", "--duration", "1"])
    assert refused.exit_code == 1  # an outage (a refused user or password would be 2)
    assert "--no-register" in refused.output
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    unregistered = runner.invoke(app, ["sim", "--devices", "1", "--interval", "0.5", "--duration", "1",
                                       "--no-register"])
    assert unregistered.exit_code == 0, unregistered.output
    assert "published" in unregistered.output
    monkeypatch.setenv("URBANPULSE_BROKER__PORT", str(free_port()))  # no broker there
    nobody = runner.invoke(app, ["sim", "--devices", "1", "--interval", "0.5", "--duration", "1", "--no-register"])
    assert nobody.exit_code == 1, nobody.output
    assert "the broker acknowledged nothing" in nobody.output


def test_the_live_simulator_gives_each_device_presence(broker: MosquittoServer) -> None:
    """``online`` (retained) for every device when it connects, ``offline`` when it stops cleanly: the
    gateway records presence from these, and without them every simulated device showed offline."""
    import asyncio  # noqa: PLC0415

    import aiomqtt  # noqa: PLC0415

    from urbanpulse.contract import STATUS_KIND, TOPIC_ROOT, TOPIC_VERSION  # noqa: PLC0415
    from urbanpulse.settings import BrokerSettings, SimSettings  # noqa: PLC0415
    from urbanpulse.sim.city import fleet  # noqa: PLC0415
    from urbanpulse.sim.live import run_live  # noqa: PLC0415

    sim = SimSettings(devices_per_kind=2, interval_seconds=0.2)
    settings = BrokerSettings(port=broker.port)

    async def play() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        seen: list[tuple[str, bytes]] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="presence-watch") as watch:
            await watch.subscribe(f"{TOPIC_ROOT}/{TOPIC_VERSION}/{STATUS_KIND}/+", qos=1)

            async def collect() -> None:
                async for message in watch.messages:
                    seen.append((str(message.topic).rsplit("/", 1)[1], bytes(message.payload)))  # type: ignore[arg-type]

            collector = asyncio.create_task(collect())
            stop = asyncio.Event()
            live = asyncio.create_task(run_live(settings, sim, stop))
            await asyncio.sleep(1.0)
            stop.set()
            await live
            await asyncio.sleep(0.3)
            collector.cancel()
        retained: list[tuple[str, bytes]] = []  # what a gateway starting now would be told
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="presence-late") as late:
            await late.subscribe(f"{TOPIC_ROOT}/{TOPIC_VERSION}/{STATUS_KIND}/+", qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    async for message in late.messages:
                        retained.append((str(message.topic).rsplit("/", 1)[1], bytes(message.payload)))  # type: ignore[arg-type]
        return seen, retained

    seen, retained = asyncio.run(play())
    devices = sorted(d.device_id for d in fleet(2, sim.seed))
    assert sorted(d for d, state in seen if state == b"online") == devices
    assert sorted(d for d, state in seen if state == b"offline") == devices
    assert all(seen.index((d, b"online")) < seen.index((d, b"offline")) for d in devices)
    assert sorted(retained) == [(d, b"offline") for d in devices]


def test_a_scenario_is_played_ending_now_unless_told_otherwise() -> None:
    """The gateway refuses readings older than a week: a scenario file's fixed start (2026-03-02) stored
    nothing. By default it is moved to end now, its start on its step; --start sets it."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from urbanpulse.sim.commands import rebased  # noqa: PLC0415
    from urbanpulse.sim.scenario import load  # noqa: PLC0415

    plan = load(Path(__file__).parent.parent / "firmware-sim" / "scenarios" / "city-day.toml")
    now = datetime(2026, 12, 1, 1, 23, 45, tzinfo=UTC)
    moved = rebased(plan, None, now)
    assert moved.start == datetime(2026, 11, 30, 1, 20, tzinfo=UTC)  # a day before now, on a 5-minute step
    assert now - timedelta(minutes=5) < moved.start + plan.duration <= now
    assert rebased(plan, "scenario", now).start == plan.start
    assert rebased(plan, "2026-11-29T06:00:00", now).start == datetime(2026, 11, 29, 6, tzinfo=UTC)
    assert rebased(plan, "2026-11-29T06:00:00+07:00", now).start.utcoffset() == timedelta(0)  # stored in UTC
    scenario = str(Path(__file__).parent.parent / "firmware-sim" / "scenarios" / "city-day.toml")
    refused = CliRunner().invoke(app, ["sim", "--scenario", scenario, "--start", "yesterday", "--no-register"])
    assert refused.exit_code == 2
    assert "--start 'yesterday' is not a time" in refused.output
    too_old = CliRunner().invoke(app, ["sim", "--scenario", scenario, "--start", "scenario", "--no-register"])
    assert too_old.exit_code == 2
    assert "the gateway refuses readings older than" in too_old.output


def test_registering_a_fleet_moves_simulated_devices_to_its_places(database: str) -> None:
    """Live runs and scenarios give the same ids different places: the registry follows the fleet
    being played, so a scenario's haze lands where its ground truth says; other devices stay put."""
    from dataclasses import replace  # noqa: PLC0415

    from urbanpulse.sim.city import fleet  # noqa: PLC0415
    from urbanpulse.sim.register import register_fleet  # noqa: PLC0415

    live = fleet(2, seed=42)
    assert len(register_fleet(database, live)) == len(live)
    other = live[1]
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE devices SET firmware_version = 'acme-2' WHERE device_id = %s", [other.device_id])
    elsewhere = [replace(d, province=live[-1].province, district=live[-1].district, lat=1.0, lon=2.0)
                 for d in live[:2]]
    assert register_fleet(database, elsewhere) == {}  # nothing new
    with psycopg.connect(database) as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT device_id, province, district, lat, lon FROM devices"
                                                  " WHERE device_id = ANY(%s)", [[d.device_id for d in live[:2]]])}
    moved, kept = live[0], other
    assert rows[moved.device_id] == (live[-1].province.name, live[-1].district.name, 1.0, 2.0)
    assert rows[kept.device_id] == (kept.province.name, kept.district.name, round(kept.lat, 6), round(kept.lon, 6))


def test_a_simulator_stopped_by_sigterm_says_what_it_published(broker: MosquittoServer, tmp_path: Path) -> None:
    """Run as a service and stopped (no --duration), it still prints its counts and exits 0."""
    env = {**os.environ, "URBANPULSE_BROKER__PORT": str(broker.port)}
    log = tmp_path / "sim.log"
    with log.open("w") as out:
        sim = subprocess.Popen([sys.executable, "-c", "from urbanpulse.cli import main; main()", "sim", "--no-register",
                                "--devices", "1", "--interval", "0.2"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(4.0)  # the import, a connection and a few rounds
    finally:
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(30)
    text = " ".join(log.read_text().split())
    assert code == 0, text
    assert re.search(r"published [1-9]\d*, acknowledged [1-9]\d*, malformed 0", text), text
