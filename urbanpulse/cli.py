"""The ``urbanpulse`` command line: one entry point for every process and chore."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from urbanpulse.analytics.events_cli import events_app
from urbanpulse.gateway.devices_cli import broker_app, devices_app
from urbanpulse.settings import Settings
from urbanpulse.sim import commands as sim_commands

app = typer.Typer(help="urbanpulse: city IoT telemetry — gateway, storage, detection, dashboards.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
db_app = typer.Typer(help="Database schema: migrate, status.", no_args_is_help=True)
dashboards_app = typer.Typer(help="Grafana provisioning generated from code.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(devices_app, name="devices", help="Device registry: add, import, list, disable, rotate secrets.")
app.add_typer(broker_app, name="broker", help="Mosquitto configuration, password and ACL files.")
app.add_typer(events_app, name="events", help="Events and incidents: list, acknowledge, resolve.")
console = Console()
app.command()(sim_commands.sim)
app.command()(sim_commands.loadtest)
app.command()(sim_commands.backfill)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


@app.command()
def up(
    external: Annotated[bool, typer.Option(help="Use the configured broker and database instead of "
                                                "starting throwaway ones.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    devices: Annotated[int | None, typer.Option(help="Simulated devices of each kind.")] = None,
) -> None:
    """Run the local stack: PostgreSQL, Mosquitto, gateway, analytics and simulator, with live counts."""
    from urbanpulse.stack import up as run_up  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    if devices is not None:
        settings = settings.model_copy(update={"sim": settings.sim.model_copy(update={"devices_per_kind": devices})})
    run_up(settings, console, external=external, duration=duration)


def _gateway_process(worker: int | None, share_group: str | None, verbose: bool) -> None:
    from urbanpulse.gateway.service import Gateway  # noqa: PLC0415

    _logging(verbose)
    settings = Settings()
    if share_group:
        settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"share_group": share_group})}
        )

    async def main() -> None:
        async with Gateway(settings, worker=worker) as gateway:
            await gateway.run()

    asyncio.run(main())


@app.command()
def gateway(
    workers: Annotated[int, typer.Option(help="Gateway processes sharing one $share subscription.")] = 1,
    verbose: Verbose = False,
) -> None:
    """Run the MQTT gateway: validate, batch and store readings; dead-letter the rest."""
    if workers <= 1:
        _gateway_process(None, None, verbose)
        return
    group = Settings().gateway.share_group or "urbanpulse"
    procs = [multiprocessing.Process(target=_gateway_process, args=(i, group, verbose)) for i in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()


@app.command()
def analytics(verbose: Verbose = False) -> None:
    """Run streaming anomaly detection over committed readings and maintain events."""
    from urbanpulse.analytics.service import Analytics  # noqa: PLC0415

    _logging(verbose)

    async def main() -> None:
        async with Analytics(Settings()) as service:
            await service.run()

    asyncio.run(main())


@app.command()
def detect(
    input_csv: Annotated[Path, typer.Argument(metavar="INPUT.csv", help="A timestamp,value CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write timestamp,value,anomaly_score.")],
    detector: Annotated[str, typer.Option(help="Detector name (see analytics/README.md).")] = "ensemble",
) -> None:
    """Score one timestamp,value CSV with a streaming detector (row i scored from rows <= i)."""
    from urbanpulse.analytics.detect_cli import detect_csv, detector_names  # noqa: PLC0415

    if detector not in detector_names():
        console.print(f"[red]unknown detector {detector!r}[/]; choose from {', '.join(detector_names())}")
        raise typer.Exit(2)
    rows = detect_csv(input_csv, output, detector)
    console.print(f"scored {rows} rows with {detector} -> {output}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations the database lacks."""
    from urbanpulse.ingest.migrate import migrate  # noqa: PLC0415

    done = migrate(Settings().database.dsn)
    console.print("up to date" if not done else "applied: " + ", ".join(f"{m.version:03d}_{m.name}" for m in done))


@db_app.command("status")
def db_status() -> None:
    """Show applied migrations and table sizes."""
    from urbanpulse.ingest.status import status  # noqa: PLC0415

    for line in status(Settings().database.dsn):
        console.print(line)


@dashboards_app.command("build")
def dashboards_build(
    out: Annotated[Path, typer.Option(help="Folder to write provisioning and dashboards into.")] = Path("out/grafana"),
    timescaledb: Annotated[bool, typer.Option(help="The datasource is TimescaleDB (time_bucket).")] = False,
) -> None:
    """Write Grafana provisioning (datasource, dashboard provider) and dashboard JSON."""
    from urbanpulse.dashboards.build import build  # noqa: PLC0415

    for path in build(out, Settings(), timescaledb=timescaledb):
        console.print(str(path))


if __name__ == "__main__":
    app()
