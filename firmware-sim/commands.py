"""The simulator's CLI commands (registered on ``urbanpulse``): sim, loadtest, backfill."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from pydantic import ValidationError
from rich.markup import escape

from urbanpulse.ingest.problems import first_line
from urbanpulse.settings import Settings, env_name
from urbanpulse.sim.city import Device
from urbanpulse.sim.scenario import Scenario
from urbanpulse.terminal import console


def sim(
    devices: Annotated[int | None, typer.Option(help="Devices of each kind (live mode).", min=0)] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between a device's readings (live).",
                                                   min=0.01)] = None,
    malformed_rate: Annotated[float | None, typer.Option(help="Share of malformed messages (live).", min=0,
                                                         max=1)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (live).", min=0)] = None,
    scenario: Annotated[Path | None, typer.Option(help="Play this TOML scenario instead of live readings.")] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the scenario's ground truth (JSON) here.")] = None,
    start: Annotated[str | None, typer.Option(
        help="Stamp the scenario's first reading at this ISO 8601 time (no zone: UTC), or at the file's own start with "
             "'scenario'. By default the scenario is moved to end now (its start rounded down to its step): the "
             "gateway refuses readings older than URBANPULSE_GATEWAY__MAX_LATE_SECONDS.")] = None,
    register: Annotated[bool, typer.Option(help="Register the simulated devices in the device registry first "
                                                 "(needs the database; the gateway refuses unknown devices).")] = True,
) -> None:
    """Run the firmware simulator: live readings, or a scenario with incidents, faults and ground truth."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if scenario is not None:
        from urbanpulse.sim.engine import play  # noqa: PLC0415
        from urbanpulse.sim.publisher import publish  # noqa: PLC0415
        from urbanpulse.sim.scenario import load  # noqa: PLC0415

        try:
            plan = rebased(load(scenario), start, datetime.now(UTC))
        except ValidationError as exc:
            console.print(f"[red]--start {start!r} is not a time[/red] ({exc.errors()[0]['msg']}): ISO 8601, "
                          "such as 2026-11-29T06:00:00Z, or 'scenario'")
            raise typer.Exit(2) from None
        late = (datetime.now(UTC) - plan.start).total_seconds()
        if late > settings.gateway.max_late_seconds:
            console.print(f"[red]the scenario starts {late / 86400:.1f} days ago: the gateway refuses readings older "
                          f"than {settings.gateway.max_late_seconds / 86400:.1f} days[/red] "
                          f"({env_name('gateway', 'max_late_seconds')}); leave out --start to play it ending now")
            raise typer.Exit(2)
        played = play(plan)
        if register:
            _register(settings, played.devices)
        if truth:
            truth.write_text(played.truth_json())
        seconds = plan.duration.total_seconds() / plan.acceleration
        console.print(f"scenario {plan.name} from {plan.start.isoformat()}: {len(played.messages):,} messages "
                      f"over {seconds:.0f} s")
        report = asyncio.run(publish(played.messages, settings.simulator_broker(), rate=len(played.messages) / seconds))
        console.print(f"acknowledged by the broker: {len(report.acked):,} of {len(played.messages):,} "
                      "(what the gateway refuses goes to the dead_letters table, with the reason)")
        if not report.acked:
            raise typer.Exit(1)
        return
    from urbanpulse.sim.live import run_live  # noqa: PLC0415

    updates = {k: v for k, v in {"devices_per_kind": devices, "interval_seconds": interval,
                                  "malformed_rate": malformed_rate}.items() if v is not None}
    sim_settings = settings.sim.model_copy(update=updates)
    if register:
        from urbanpulse.sim.city import fleet  # noqa: PLC0415

        _register(settings, fleet(sim_settings.devices_per_kind, sim_settings.seed))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stopped, it still says what it published
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        stats = await run_live(settings.simulator_broker(), sim_settings, stop)
        console.print(f"published {stats.published}, acknowledged {stats.acked}, malformed {stats.malformed}")
        if not stats.acked:
            console.print("[red]the broker acknowledged nothing[/red]: is it reachable, and does it let the simulator "
                          f"in ({env_name('broker', 'host')}, __PORT; {env_name('sim', 'broker_username')}, "
                          "__BROKER_PASSWORD)?")
            raise typer.Exit(1)

    asyncio.run(main())


def rebased(plan: Scenario, start: str | None, now: datetime) -> Scenario:
    """``plan`` with its first reading at ``start`` (ISO 8601), at its own start (``"scenario"``), or by
    default moved to end at ``now``, its start rounded down to its step."""
    if start == "scenario":
        return plan
    if start is None:
        first = (now - plan.duration).timestamp()
        start = datetime.fromtimestamp(first - first % plan.step.total_seconds(), UTC).isoformat()
    with contextlib.suppress(ValueError):  # no zone means UTC, as for export's times
        at = datetime.fromisoformat(start)
        start = at.isoformat() if at.tzinfo else at.replace(tzinfo=UTC).isoformat()
    return Scenario.model_validate(plan.model_dump() | {"start": start})  # the file's own check of a start


def _register(settings: Settings, devices: list[Device]) -> None:
    from urbanpulse.sim.register import register_fleet  # noqa: PLC0415

    try:
        registered = register_fleet(settings.database.dsn, devices)
    except psycopg.OperationalError as exc:
        from urbanpulse.cli_errors import explain  # noqa: PLC0415

        told = explain(exc)  # an outage (1), or a database that refused the setting (2)
        why, status = told if told is not None else (first_line(exc), 1)
        console.print(f"[red]cannot register the simulated devices:[/red] {escape(why)}; run with --no-register to"
                      " play devices the gateway may not know (URBANPULSE_GATEWAY__REQUIRE_REGISTRATION)",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(status) from exc
    console.print(f"{len(registered)} simulated devices registered, {len(devices) - len(registered)} already known")
    if registered and settings.gateway.require_registration:
        # A running gateway reads the registry every DIRECTORY_REFRESH_SECONDS: what the new devices sent before
        # then was refused as 'unknown device' (10 s of every fresh scenario, the events review found).
        wait = settings.gateway.directory_refresh_seconds + 1.0
        console.print(f"waiting {wait:.0f} s for a running gateway to read them "
                      f"({env_name('gateway', 'directory_refresh_seconds')})")
        time.sleep(wait)


def loadtest(
    devices: Annotated[int, typer.Option(help="Simulated devices (a third of each kind).", min=1)] = 300,
    rate: Annotated[float, typer.Option(help="Readings per second, whole fleet.", min=0.01)] = 300.0,
    duration: Annotated[float, typer.Option(help="Seconds of publishing.", min=0.1)] = 60.0,
    mode: Annotated[str, typer.Option(help="multiplexed (one connection) or per-device.")] = "multiplexed",
    fault: Annotated[list[str] | None, typer.Option(help="kill-gateway | stop-db:30s | restart-broker, "
                                                         "optionally @SECONDS; repeatable.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Publish this scenario's messages.")] = None,
    local: Annotated[bool, typer.Option(help="Start a throwaway PostgreSQL, Mosquitto and gateway.")] = True,
    credentials: Annotated[Path | None, typer.Option(help="CSV device_id,secret for per-device mode.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Load and fault test: publish, track every PUBACK, reconcile with the database; non-zero exit on loss."""
    from urbanpulse.sim.loadtest import LoadSpec, run  # noqa: PLC0415

    secrets = None
    if credentials:
        with credentials.open(newline="") as handle:
            secrets = {row["device_id"]: row["secret"] for row in csv.DictReader(handle)}
    spec = LoadSpec(devices=devices, rate=rate, duration=duration, mode=mode, faults=tuple(fault or ()),
                    credentials=secrets)
    sent = None
    if scenario:
        from urbanpulse.sim.engine import play  # noqa: PLC0415
        from urbanpulse.sim.scenario import load  # noqa: PLC0415

        sent = play(load(scenario)).messages
    result = run(Settings(), spec, local=local, report_path=report, console=console, sent=sent)
    for key in ("published_messages", "acked_messages", "acked_readings", "stored", "duplicates", "lost",
                "dead_lettered_messages", "latency_ms", "acked_per_second", "connections_peak", "faults",
                "simulator_peak_rss_mib", "gateway_peak_rss_mib"):
        console.print(f"{key:>24}: {result[key]}")
    if not result["ok"]:
        console.print("[red]FAILED: readings lost or duplicated[/]")
        raise typer.Exit(1)
    console.print("[green]OK: every acknowledged reading stored exactly once[/]")


def backfill(
    days: Annotated[float, typer.Option(help="Days of history, ending now.", min=0.001)] = 14,
    devices: Annotated[int, typer.Option(help="Devices of each kind.", min=1)] = 50,
    step_minutes: Annotated[float, typer.Option(help="Minutes between a device's readings.", min=0.01)] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Write weeks of simulated history straight into the database (no broker), for demos and benchmarks."""
    from urbanpulse.sim.backfill import backfill as run_backfill  # noqa: PLC0415
    from urbanpulse.sim.city import fleet  # noqa: PLC0415
    from urbanpulse.sim.stream import messages  # noqa: PLC0415

    step = timedelta(minutes=step_minutes)
    steps = int(timedelta(days=days) / step)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - steps * step
    stream = messages(fleet(devices, seed), start, steps, step, seed)
    total = steps * devices * 3
    stored = asyncio.run(run_backfill(Settings().database.dsn, stream,
                                      progress=lambda n: console.print(f"{n:,} / {total:,}", end="\r")))
    console.print(f"stored {stored:,} readings from {start:%Y-%m-%d %H:%M} to now")
