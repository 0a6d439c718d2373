"""The load test: its reconciliation catches planted losses and duplicates; a short run with a fault is clean."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from faults import steady_stream, through_gateway
from rich.console import Console

from urbanpulse.settings import Settings
from urbanpulse.sim.loadtest import FaultPlan, LoadSpec, fleet_messages, run
from urbanpulse.sim.reconcile import reconcile

pytestmark = pytest.mark.integration


def test_reconciliation_catches_a_planted_loss_and_duplicate(settings: Settings) -> None:
    sent = steady_stream(devices_per_kind=5, steps=20)
    published_at: dict[int, float] = {}
    _, acked = asyncio.run(through_gateway(settings, sent, published_at=published_at))
    clean = reconcile(settings.database.dsn, sent, acked, published_at)
    assert clean.ok
    assert (clean.acked_readings, clean.stored, clean.lost, clean.duplicates) == (300, 300, 0, 0)
    assert clean.latency_ms["p50"] >= 0
    victim = sent[7]
    assert victim.time is not None
    with psycopg.connect(settings.database.dsn) as conn:
        conn.execute(f"DELETE FROM {victim.kind}_readings WHERE device_id = %s AND time = %s",
                     [victim.device_id, victim.time])
        conn.execute("INSERT INTO air_readings SELECT device_id, time + interval '1 second', seq, pm25, pm10,"
                     " temperature, humidity, no2, o3, so2, co, noise, received_at, batch_id FROM air_readings"
                     " WHERE device_id = 'air-00002' AND seq = 3")
    planted = reconcile(settings.database.dsn, sent, acked, published_at)
    assert not planted.ok
    assert planted.lost == 1
    assert planted.duplicates == 1
    assert planted.lost_examples == [f"{victim.kind} {victim.device_id} {victim.time.isoformat()}"]


@pytest.mark.parametrize("devices", [1, 2, 3, 5, 3001])
def test_loadtest_plays_exactly_the_devices_asked_for(devices: int) -> None:
    played = {m.device_id for m in fleet_messages(LoadSpec(devices=devices, rate=10_000, duration=1))}
    assert len(played) == devices  # it used to round down to a multiple of three
    kinds = [sum(1 for d in played if d.startswith(kind)) for kind in ("air", "traffic", "ispeed")]
    assert max(kinds) - min(kinds) <= 1


def test_fault_plan_parsing() -> None:
    assert FaultPlan.parse("stop-db:30s@12", 60) == FaultPlan("stop-db", 12.0, 30.0)
    assert FaultPlan.parse("kill-gateway", 60).at == 20.0
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan.parse("unplug", 60)


def test_short_local_run_with_a_gateway_kill() -> None:
    spec = LoadSpec(devices=60, rate=400, duration=8, faults=("kill-gateway@3",))
    report = run(Settings(), spec, local=True, report_path=None, console=Console(quiet=True))
    assert report["ok"], report
    assert report["acked_messages"] == report["published_messages"] > 3000
    assert report["stored"] == report["acked_readings"]
    assert any("kill-gateway over" in line for line in report["faults"])
    assert report["connections_peak"] == 1  # multiplexed: the whole fleet on one connection (it said 0)
    assert report["latency_ms"]["p99"] < timedelta(seconds=60).total_seconds() * 1000


def test_per_device_connections() -> None:
    spec = LoadSpec(devices=90, rate=150, duration=6, mode="per-device")
    report = run(Settings(), spec, local=True, report_path=None, console=Console(quiet=True))
    assert report["ok"], report
    assert report["connections_peak"] == 90
    assert report["stored"] == report["acked_readings"] >= 800
