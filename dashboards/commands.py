"""The dashboards' CLI commands, registered on ``urbanpulse``: ``dashboards build``, ``dashboards push``,
``report``. Thin: options in, a pure function of this package, lines out."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from urbanpulse.settings import Settings

PASSWORD_ENV = "URBANPULSE_GRAFANA_DB_PASSWORD"  # noqa: S105 - the variable's name
console = Console()
dashboards_app = typer.Typer(help="Grafana provisioning generated from code.", no_args_is_help=True)


def _timescaledb(flag: bool | None, settings: Settings) -> bool:
    """The flag if given, else what the database says (plain PostgreSQL when it cannot be reached)."""
    if flag is not None:
        return flag
    from urbanpulse.dashboards.build import detect_timescaledb  # noqa: PLC0415

    try:
        return detect_timescaledb(settings.database.dsn)
    except Exception as exc:
        console.print(f"[yellow]backend not detected ({exc.__class__.__name__}: {exc}); assuming PostgreSQL[/]")
        return False


@dashboards_app.command("build")
def build(
    out: Annotated[Path, typer.Option(help="Folder to write provisioning and dashboards into.")] = Path("out/grafana"),
    timescaledb: Annotated[bool | None, typer.Option(
        help="The data source is TimescaleDB (time_bucket); default: detected from the database.")] = None,
    grant_login: Annotated[bool, typer.Option(
        help=f"Also let the read-only role log in, with the password in ${PASSWORD_ENV}.")] = False,
) -> None:
    """Write Grafana provisioning (read-only data source, dashboard provider with folders) and dashboard JSON."""
    from urbanpulse.dashboards.build import build as run_build  # noqa: PLC0415
    from urbanpulse.dashboards.build import grant_login as run_grant  # noqa: PLC0415

    settings = Settings()
    if grant_login:
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            console.print(f"[red]--grant-login needs ${PASSWORD_ENV}[/]")
            raise typer.Exit(2)
        run_grant(settings.database.dsn, password)
    for path in run_build(out, settings, timescaledb=_timescaledb(timescaledb, settings)):
        console.print(str(path))


def report(
    day: Annotated[str, typer.Option("--date", help="The day, YYYY-MM-DD (in the storage day time zone).")],
    out: Annotated[Path, typer.Option(help="Folder for index.html and its PNG charts.")] = Path("out/report"),
) -> None:
    """Render the operations centre's daily briefing (AQI, 4G ranking, traffic hot spots, incidents) as HTML."""
    from urbanpulse.dashboards.report import write_report  # noqa: PLC0415

    settings = Settings()
    try:
        when = date.fromisoformat(day)
    except ValueError as exc:
        raise typer.BadParameter(f"--date {day!r}: expected YYYY-MM-DD") from exc
    page = write_report(settings.database.dsn, when, out, settings.storage.day_timezone)
    console.print(str(page))
