"""Helpers for fault tests: a gateway in its own process, a steady publisher, reconciliation with the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.stream import SimMessage, messages


def steady_stream(devices_per_kind: int, steps: int, seed: int = 11) -> list[SimMessage]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    return list(messages(fleet(devices_per_kind, seed), start, steps, timedelta(seconds=10), seed))


class GatewayProcess:
    """``urbanpulse gateway`` as a child process, so a test can SIGKILL it like a crash."""

    def __init__(self, settings: Settings, spool_dir: Path, log: Path) -> None:
        self.env = {
            **os.environ,
            "URBANPULSE_BROKER__PORT": str(settings.broker.port),
            "URBANPULSE_DATABASE__DSN": settings.database.dsn,
            "URBANPULSE_GATEWAY__SPOOL_DIR": str(spool_dir),
            "URBANPULSE_GATEWAY__RETRY_SECONDS": "0.2",
            "URBANPULSE_GATEWAY__METRICS_PORT": "0",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "urbanpulse", "gateway"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def wait_subscribed(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until the gateway subscribed ``count`` times in all (its session exists from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and self.log.read_text(errors="replace").count(" subscribed to ") >= count:
                return
            time.sleep(0.05)
        raise TimeoutError(self.log.read_text(errors="replace")[-2000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def stored_keys(dsn: str) -> dict[str, list[tuple[str, datetime]]]:
    with psycopg.connect(dsn) as conn:
        return {kind: conn.execute(f"SELECT device_id, time FROM {kind}_readings").fetchall()  # type: ignore[misc]
                for kind in ("air", "traffic", "ispeed")}


def wait_for_rows(dsn: str, expected: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        try:
            total = sum(len(v) for v in stored_keys(dsn).values())
        except psycopg.OperationalError:
            total = 0
        if total >= expected:
            return total
        time.sleep(0.25)
    return total


def reconcile(dsn: str, sent: list[SimMessage], acked: set[int]) -> tuple[int, int, int]:
    """(acked readings, stored readings, acked readings missing from the database); asserts no duplicates."""
    rows = stored_keys(dsn)
    stored = {(kind, device, t) for kind, keys in rows.items() for device, t in keys}
    assert len(stored) == sum(len(v) for v in rows.values()), "duplicate rows"
    wanted = {(sent[i].kind, sent[i].device_id, sent[i].time) for i in acked}
    return len(wanted), len(stored), len(wanted - stored)
