"""Commit-to-event latency on the real stack (gateway, PostgreSQL, analytics) under the simulator's load."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from urbanpulse.analytics.latency import Latency, measure, spikes
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import AnalyticsSettings, BrokerSettings, DatabaseSettings, GatewaySettings, Settings


def test_quantiles_are_nearest_rank() -> None:
    lat = Latency(tuple(float(i) for i in range(1, 21)), 0, 0.0)
    assert (lat.p50, lat.p95, lat.quantile(1.0), lat.quantile(0.0)) == (10.5, 19.0, 20.0, 1.0)


def test_spikes_fall_after_the_warmup_and_before_the_end() -> None:
    injected = spikes(devices_per_kind=20, steps=40, warmup=10)
    assert len(injected) == 40
    assert all(s.start >= 15 and s.start + s.length <= 40 - 2 for s in injected)


@pytest.fixture
def pg_commit_times(tmp_path: Path) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path / "pg", extra_conf={"track_commit_timestamp": "on"}) as server:
        migrate(server.dsn)
        yield server


@pytest.mark.integration
def test_events_are_written_within_two_seconds_of_the_commit(
    pg_commit_times: PostgresServer, broker: MosquittoServer, tmp_path: Path,
) -> None:
    """60 devices, a reading each every 0.5 s (twice the simulator's default load) for 20 s, 40 spikes."""
    settings = Settings(
        broker=BrokerSettings(port=broker.port), database=DatabaseSettings(dsn=pg_commit_times.dsn),
        gateway=GatewaySettings(spool_dir=tmp_path / "spool", metrics_port=None, require_registration=False),
        analytics=AnalyticsSettings(publish=False, warmup=10),
    )
    lat = asyncio.run(measure(settings, devices_per_kind=20, interval=0.5, seconds=20))
    assert len(lat.seconds) >= 30, lat  # nearly every spike opened an event, and each was measured
    assert min(lat.seconds) > 0  # analytics commits after the batch it read
    assert lat.p95 < 2.0, lat
