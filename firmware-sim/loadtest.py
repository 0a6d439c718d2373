"""``urbanpulse loadtest``: drive a stack with a simulated fleet, inject faults, reconcile, report.

With ``local=True`` it starts its own PostgreSQL, Mosquitto and gateway (a child process, so the
``kill-gateway`` fault is a real SIGKILL); otherwise it publishes to the configured broker and checks
the configured database, and only faults it can cause itself are allowed there (none).

Faults: ``kill-gateway[@T]``, ``stop-db:30s[@T]``, ``restart-broker[@T]`` (``@T``: seconds after the
start, by default a third of the way in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from urbanpulse.contract import Kind
from urbanpulse.gateway.child import GatewayProcess
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.devices_mode import FleetReport, publish_per_device
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.reconcile import reconcile
from urbanpulse.sim.stream import SimMessage, messages


@dataclass(frozen=True, slots=True)
class FaultPlan:
    what: str  # kill-gateway | stop-db | restart-broker
    at: float
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str, duration: float) -> FaultPlan:
        spec, _, at = text.partition("@")
        what, _, seconds = spec.partition(":")
        if what not in ("kill-gateway", "stop-db", "restart-broker"):
            msg = f"unknown fault {what!r} (kill-gateway, stop-db:30s, restart-broker)"
            raise ValueError(msg)
        return cls(what, float(at) if at else duration / 3, float(seconds.rstrip("s") or 30) if seconds else 30.0)


@dataclass(slots=True)
class LoadSpec:
    devices: int = 300
    rate: float = 300.0  # readings per second, whole fleet
    duration: float = 60.0
    mode: str = "multiplexed"  # or per-device
    faults: tuple[str, ...] = ()
    credentials: dict[str, str] | None = None
    seed: int = 42


@dataclass(slots=True)
class _Stack:
    settings: Settings
    postgres: PostgresServer | None = None
    mosquitto: MosquittoServer | None = None
    gateway: GatewayProcess | None = None
    fault_log: list[str] = field(default_factory=list)


def fleet_messages(spec: LoadSpec) -> list[SimMessage]:
    """``rate * duration`` readings from ``devices`` devices (a third of each kind, the first kinds one more
    when they do not divide evenly), stamped in the past."""
    per_kind = {kind: spec.devices // len(Kind) + (n < spec.devices % len(Kind)) for n, kind in enumerate(Kind)}
    devices = fleet(per_kind, spec.seed)
    rounds = max(1, round(spec.rate * spec.duration / len(devices)))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    step = timedelta(seconds=max(1.0, 3600 / rounds))
    return list(messages(devices, start, rounds, step, spec.seed))


@contextlib.contextmanager
def local_stack(settings: Settings, folder: Path) -> Iterator[_Stack]:
    with PostgresServer(folder / "pg") as pg, MosquittoServer(folder / "mq") as mq:
        migrate(pg.dsn)
        local = settings.model_copy(update={
            "database": settings.database.model_copy(update={"dsn": pg.dsn}),
            "broker": settings.broker.model_copy(update={"host": "127.0.0.1", "port": mq.port}),
        })
        gateway = GatewayProcess({
            "URBANPULSE_BROKER__PORT": str(mq.port), "URBANPULSE_DATABASE__DSN": pg.dsn,
            "URBANPULSE_GATEWAY__SPOOL_DIR": str(folder / "spool"), "URBANPULSE_GATEWAY__METRICS_PORT": "0",
            "URBANPULSE_GATEWAY__RETRY_SECONDS": "0.5", "URBANPULSE_GATEWAY__REQUIRE_REGISTRATION": "false",
        }, folder / "gateway.log")
        gateway.start()
        gateway.wait_subscribed()
        try:
            yield _Stack(local, pg, mq, gateway)
        finally:
            gateway.stop()


async def _inject(stack: _Stack, plan: FaultPlan, started: float) -> None:
    await asyncio.sleep(max(0.0, plan.at - (time.monotonic() - started)))
    stack.fault_log.append(f"{time.monotonic() - started:.1f}s {plan.what}")
    if plan.what == "kill-gateway" and stack.gateway:
        await asyncio.to_thread(stack.gateway.kill)
        await asyncio.sleep(0.5)
        stack.gateway.start()
    elif plan.what == "stop-db" and stack.postgres:
        await asyncio.to_thread(stack.postgres.stop)
        await asyncio.sleep(plan.seconds)
        await asyncio.to_thread(stack.postgres.start)
    elif plan.what == "restart-broker" and stack.mosquitto:
        await asyncio.to_thread(stack.mosquitto.restart)
    stack.fault_log.append(f"{time.monotonic() - started:.1f}s {plan.what} over")


async def _drive(stack: _Stack, spec: LoadSpec, sent: list[SimMessage], console: Console) -> dict[str, Any]:
    acked: set[int] = set()
    published_at: dict[int, float] = {}
    fleet_report = FleetReport()
    started = time.monotonic()
    plans = [FaultPlan.parse(f, spec.duration) for f in spec.faults]
    injections = [asyncio.create_task(_inject(stack, p, started)) for p in plans]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("acknowledged", total=len(sent))

        async def show() -> None:
            while True:
                progress.update(task, completed=len(acked),
                                description=f"acknowledged ({fleet_report.connected_now} connections)")
                await asyncio.sleep(0.5)

        shower = asyncio.create_task(show())
        try:
            if spec.mode == "per-device":
                await publish_per_device(sent, stack.settings.broker, duration=spec.duration, acked=acked,
                                         published_at=published_at, credentials=spec.credentials,
                                         report=fleet_report, seed=spec.seed)
            else:
                report = await publish(sent, stack.settings.simulator_broker(), rate=len(sent) / spec.duration,
                                       concurrency=500, published_at=published_at)
                acked |= report.acked
                fleet_report.connected_peak, fleet_report.reconnects = 1, report.reconnects  # one connection
        finally:
            shower.cancel()
    publish_seconds = time.monotonic() - started
    await asyncio.gather(*injections)
    return {"acked": acked, "published_at": published_at, "publish_seconds": publish_seconds,
            "connections_peak": fleet_report.connected_peak, "reconnects": fleet_report.reconnects}


def _wait_settled(dsn: str, timeout: float = 120.0) -> None:
    """Wait until the database stops growing (the gateway drained its backlog)."""
    import psycopg  # noqa: PLC0415

    last, quiet, deadline = -1, 0, time.monotonic() + timeout
    while time.monotonic() < deadline and quiet < 6:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                row = conn.execute("SELECT coalesce(max(id), 0) FROM ingest_batches").fetchone()
            now = int(row[0]) if row else 0
        except psycopg.OperationalError:
            now = -2
        quiet = quiet + 1 if now == last else 0
        last = now
        time.sleep(0.5)


def run(settings: Settings, spec: LoadSpec, *, local: bool, report_path: Path | None,
        console: Console, sent: list[SimMessage] | None = None) -> dict[str, Any]:
    """Run the load test and return (and write) its report."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sent = sent if sent is not None else fleet_messages(spec)
    with tempfile.TemporaryDirectory(prefix="urbanpulse-load-") as tmp, contextlib.ExitStack() as stack_cm:
        if local:
            stack = stack_cm.enter_context(local_stack(settings, Path(tmp)))
        elif spec.faults:
            msg = "faults need the local stack (--local): urbanpulse cannot kill a remote gateway"
            raise ValueError(msg)
        else:
            stack = _Stack(settings)
        console.print(f"publishing {len(sent):,} messages from {len({m.device_id for m in sent}):,} devices "
                      f"over {spec.duration:.0f} s ({spec.mode})")
        driven = asyncio.run(_drive(stack, spec, sent, console))
        _wait_settled(stack.settings.database.dsn)
        result = reconcile(stack.settings.database.dsn, sent, driven["acked"], driven["published_at"])
        gateway_kib = stack.gateway.peak_memory_kib() if stack.gateway else None
        report = {
            **result.to_json(),
            "mode": spec.mode, "devices": len({m.device_id for m in sent}),
            "connections_peak": driven["connections_peak"], "device_reconnects": driven["reconnects"],
            "publish_seconds": round(driven["publish_seconds"], 1),
            "acked_per_second": round(len(driven["acked"]) / driven["publish_seconds"], 1),
            "faults": stack.fault_log,
            "simulator_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "gateway_peak_rss_mib": round(gateway_kib / 1024, 1) if gateway_kib else None,
        }
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if report_path:
        report_path.write_text(json.dumps(report, indent=2))
    return report
