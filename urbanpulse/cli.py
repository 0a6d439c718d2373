"""The ``urbanpulse`` command line: one entry point for every process and chore."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from urbanpulse.analytics.events_cli import events_app
from urbanpulse.cli_errors import explain
from urbanpulse.dashboards.commands import dashboards_app, report
from urbanpulse.gateway.devices_cli import broker_app, devices_app
from urbanpulse.settings import Settings, unknown_variables
from urbanpulse.sim import commands as sim_commands
from urbanpulse.terminal import console, err, fail

app = typer.Typer(help="urbanpulse: city IoT telemetry — gateway, storage, detection, dashboards.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
db_app = typer.Typer(help="Database: migrate, maintain, status.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(devices_app, name="devices", help="Device registry: add, import, list, disable, rotate secrets.")
app.add_typer(broker_app, name="broker", help="Mosquitto configuration, password and ACL files.")
app.add_typer(events_app, name="events", help="Events and incidents: list, acknowledge, resolve.")
app.command()(sim_commands.sim)
app.command()(sim_commands.loadtest)
app.command()(sim_commands.backfill)
app.command()(report)


def _logging(verbose: bool, level: int = logging.INFO) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # the pool's warnings repeat every attempt during an outage; ours say why, once an attempt
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


@app.command()
def up(
    external: Annotated[bool, typer.Option(help="Use the configured broker and database instead of "
                                                "starting its own (kept in URBANPULSE_DATA_DIR).")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    devices: Annotated[int | None, typer.Option(help="Simulated devices of each kind.", min=0)] = None,
) -> None:
    """Run the local stack: PostgreSQL, Mosquitto, gateway, analytics and simulator, with live counts."""
    from urbanpulse.stack import up as run_up  # noqa: PLC0415

    _logging(verbose=False, level=logging.WARNING)
    settings = Settings()
    if devices is not None:
        settings = settings.model_copy(update={"sim": settings.sim.model_copy(update={"devices_per_kind": devices})})
    run_up(settings, console, external=external, duration=duration)


def _until_stopped(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``serve(stop)`` until SIGINT or SIGTERM sets ``stop``: a service stopped by its supervisor (docker
    stops with SIGTERM) or by Ctrl-C finishes what it holds and exits 0, as it does in ``up``."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping(signum: int) -> None:
            if stop.is_set():  # asked twice: the operator will not wait (what is not acknowledged comes again)
                os._exit(128 + signum)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping, sig)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # a worker starts with them blocked (_supervise)
        await serve(stop)

    asyncio.run(main())


def _gateway_process(worker: int | None, share_group: str | None, verbose: bool) -> None:
    from urbanpulse.gateway.service import Gateway, tune_gc  # noqa: PLC0415

    _logging(verbose)
    tune_gc()
    settings = Settings()
    if share_group:
        settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"share_group": share_group})}
        )

    async def serve(stop: asyncio.Event) -> None:
        async with Gateway(settings, worker=worker) as gateway:
            await gateway.run(stop)

    try:
        _until_stopped(serve)
    except Exception as exc:
        told = explain(exc) if worker is not None else None  # one gateway: the command tells it (main)
        if told is None:
            raise
        fail(f"gateway worker {worker}: {told[0]}", told[1])


def _retire_process(client_id: str, verbose: bool) -> None:
    from urbanpulse.gateway.sessions import retire  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the gateway ends this one
    _logging(verbose)
    asyncio.run(retire(Settings(), client_id))


_STOPS = {signal.SIGINT, signal.SIGTERM}


def _status(exitcode: int | None) -> int:
    """A worker's exit code as a process status: a signal's death (``-9``) as a shell says it (137)."""
    code = exitcode or 0
    return 128 - code if code < 0 else code


def _supervise(workers: list[multiprocessing.Process]) -> int:
    """Start the gateway's workers and wait for them; SIGTERM or SIGINT is passed on to each (it stops as one
    gateway does). A worker that ends by itself (a port in use, a bug) stops the others: a gateway is whole or
    not running. Returns the exit status: the first failed worker's (1 for one that ended by itself without an
    error), or the first non-zero status of a worker stopping, else 0.

    The signals are blocked while the workers start (they inherit the mask and unblock it once they handle
    them, ``_until_stopped``): one that came between two starts was the parent's death, its workers left
    running."""
    log = logging.getLogger("urbanpulse.gateway")
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker stops as a single gateway does

    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        for proc in workers:
            proc.start()
        for sig in _STOPS:
            signal.signal(sig, stop_all)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # one that came meanwhile is handled now
    status = 0
    running = {proc.sentinel: proc for proc in workers}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
            proc = running.pop(sentinel)  # type: ignore[arg-type]  # a sentinel is an int
            proc.join()
            if not stopping:
                log.error("gateway worker %s exited (status %s): stopping the others", workers.index(proc),
                          _status(proc.exitcode))
                status = _status(proc.exitcode) or 1
                stop_all()
            elif not status and _status(proc.exitcode):
                log.error("gateway worker %s failed while stopping (status %s)", workers.index(proc),
                          _status(proc.exitcode))
                status = _status(proc.exitcode)
    return status


@app.command()
def gateway(
    workers: Annotated[int, typer.Option(help="Gateway processes sharing one $share subscription.")] = 1,
    verbose: Verbose = False,
) -> None:
    """Run the MQTT gateway: validate, batch and store readings; dead-letter the rest. SIGTERM or Ctrl-C stops it
    cleanly: the batch in hand is committed and acknowledged first.

    Sessions an earlier run left behind under the gateway's other client ids (more workers, or one gateway
    before several) are drained into the database and ended, each by a process of its own (gateway/README.md).
    """
    from urbanpulse.gateway.service import DEFAULT_SHARE_GROUP  # noqa: PLC0415
    from urbanpulse.gateway.sessions import client_ids, left_behind  # noqa: PLC0415

    _logging(verbose)
    settings = Settings()
    try:
        behind = left_behind(settings, client_ids(settings, workers))
    except OSError as exc:  # the broker is down: the workers wait for it, the next start looks again
        logging.getLogger("urbanpulse.gateway").warning("could not look for sessions left behind (%s)", exc)
        behind = []
    # daemonic: they end with the gateway (what they have not stored stays in their session for the next start)
    retiring = [multiprocessing.Process(target=_retire_process, args=(client_id, verbose), daemon=True)
                for client_id in behind]
    for proc in retiring:
        proc.start()
    if workers <= 1:
        _gateway_process(None, None, verbose)
        return
    group = settings.gateway.share_group or DEFAULT_SHARE_GROUP
    procs = [multiprocessing.Process(target=_gateway_process, args=(i, group, verbose)) for i in range(workers)]
    status = _supervise(procs)
    if status:
        raise SystemExit(status)


@app.command()
def analytics(verbose: Verbose = False) -> None:
    """Run streaming anomaly detection over committed readings and maintain events."""
    from urbanpulse.analytics.service import Analytics  # noqa: PLC0415

    _logging(verbose)

    async def serve(stop: asyncio.Event) -> None:
        async with Analytics(Settings()) as service:
            await service.run(stop)

    _until_stopped(serve)


@app.command()
def detect(
    input_csv: Annotated[Path, typer.Argument(metavar="INPUT.csv", help="A timestamp,value CSV.", exists=True,
                                               dir_okay=False, readable=True)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write timestamp,value,anomaly_score.")],
    detector: Annotated[str, typer.Option(help="Detector name (see analytics/README.md).")] = "ensemble",
) -> None:
    """Score one timestamp,value CSV with a streaming detector (row i scored from rows <= i)."""
    from urbanpulse.analytics.detect_cli import detect_csv, detector_names  # noqa: PLC0415

    if detector not in detector_names():
        fail(f"unknown detector {detector!r}; choose from {', '.join(detector_names())}", 2)
    try:
        scored = detect_csv(input_csv, output, detector)
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"scored {scored.rows} rows with {detector} -> {output}")
    if scored.without_value:
        console.print(f"{scored.without_value} rows have no numeric value: scored 0.0, not learned")
    if scored.out_of_order:
        console.print(f"{scored.out_of_order} rows are stamped before the row above them: scored in file order")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations the database lacks."""
    from urbanpulse.ingest.migrate import migrate  # noqa: PLC0415

    settings = Settings()
    done = migrate(settings.database.dsn, settings.storage)
    console.print("up to date" if not done else "applied: " + ", ".join(f"{m.version:03d}_{m.name}" for m in done))


@db_app.command("maintain")
def db_maintain(
    every: Annotated[bool, typer.Option(help="Keep running, every STORAGE__MAINTAIN_SECONDS, until stopped.")] = False,
    verbose: Verbose = False,
) -> None:
    """Run the storage job: partitions, retention, rollups and AQI (once, or --every few minutes)."""
    from urbanpulse.ingest.maintain import maintain, maintain_every  # noqa: PLC0415

    settings = Settings()
    if not every:
        for line in maintain(settings.database.dsn, settings.storage).lines():
            console.print(line)
        return
    _logging(verbose)
    _until_stopped(lambda stop: maintain_every(settings.database.dsn, settings.storage, stop))


@db_app.command("status")
def db_status() -> None:
    """Show the backend, applied migrations, table sizes, chunks or partitions, compression, rollup watermarks."""
    from urbanpulse.ingest.status import status  # noqa: PLC0415

    for line in status(Settings().database.dsn):
        console.print(line)


@app.command()
def export(
    kind: Annotated[str, typer.Option(help="air, traffic, ispeed, or a rollup view (air_hourly, ispeed_1d, ...).")],
    time_from: Annotated[datetime, typer.Option("--from", help="Start (inclusive), ISO 8601; no zone = UTC.")],
    time_to: Annotated[datetime, typer.Option("--to", help="End (exclusive), ISO 8601; no zone = UTC.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Export readings (or a rollup) of a time range to Parquet or CSV."""
    from urbanpulse.ingest.export import export as run_export  # noqa: PLC0415

    if fmt not in ("parquet", "csv"):
        fail(f"unknown format {fmt!r}: parquet or csv", 2)
    lo, hi = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (time_from, time_to))
    if lo >= hi:
        fail(f"--from ({lo.isoformat()}) must be before --to ({hi.isoformat()})", 2)
    try:
        rows = run_export(Settings().database.dsn, kind, lo, hi, fmt, out)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"{rows} rows of {kind} -> {out}")


def main() -> None:
    """The ``urbanpulse`` console script: :data:`app`, with an operator's mistakes and outages (a bad
    setting, a database down, a port in use) told in one line and an exit status instead of a
    traceback (:func:`urbanpulse.cli_errors.explain`); a bug keeps its traceback. A ``URBANPULSE_``
    variable that names no setting is warned about first."""
    for problem in unknown_variables(os.environ):
        err.print(f"[yellow]warning:[/] {escape(problem)}", highlight=False)
    try:
        app()
    except Exception as exc:
        told = explain(exc)
        if told is None:
            raise
        fail(*told)


if __name__ == "__main__":
    main()
