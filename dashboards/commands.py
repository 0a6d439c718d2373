"""The dashboards' CLI commands, registered on ``urbanpulse``: ``dashboards build``, ``dashboards push``,
``report``. Thin: options in, a pure function of this package, lines out."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from urbanpulse.settings import Settings
from urbanpulse.terminal import console

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
        help="Also let the read-only role log in, with the password in $URBANPULSE_GRAFANA__DB_PASSWORD.")] = False,
) -> None:
    """Write Grafana provisioning (read-only data source, dashboard provider with folders) and dashboard JSON."""
    from urbanpulse.dashboards.build import build as run_build  # noqa: PLC0415
    from urbanpulse.dashboards.build import grant_login as run_grant  # noqa: PLC0415

    settings = Settings()
    if grant_login:
        password = settings.grafana.db_password
        if password is None or not password.get_secret_value():
            console.print("[red]--grant-login needs $URBANPULSE_GRAFANA__DB_PASSWORD[/]")
            raise typer.Exit(2)
        run_grant(settings.database.dsn, password.get_secret_value())
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


@dashboards_app.command("push")
def push(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. http://localhost:3000.")],
    db_host: Annotated[str | None, typer.Option(
        help="host:port of the database as Grafana sees it; default: URBANPULSE_GRAFANA__DB_HOST, else the host"
        " of URBANPULSE_DATABASE__DSN.")] = None,
    timescaledb: Annotated[bool | None, typer.Option(
        help="The data source is TimescaleDB; default: detected from the database.")] = None,
) -> None:
    """Create or update the data source, folders and dashboards in a running Grafana (idempotent).

    Credentials: URBANPULSE_GRAFANA__TOKEN (a service-account token), else URBANPULSE_GRAFANA__USER /
    URBANPULSE_GRAFANA__PASSWORD (default admin / admin); the read-only role's password:
    URBANPULSE_GRAFANA__DB_PASSWORD.
    """
    from grafana_client.api import GrafanaApi  # noqa: PLC0415
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    from urbanpulse.dashboards.push import datasource_payload  # noqa: PLC0415
    from urbanpulse.dashboards.push import push as run_push  # noqa: PLC0415

    settings = Settings()
    db_host = db_host or settings.grafana.db_host
    if db_host is None:
        parts = conninfo_to_dict(settings.database.dsn)
        db_host = f"{parts.get('host') or '127.0.0.1'}:{parts.get('port') or 5432}"
    g = settings.grafana
    credential: str | tuple[str, str] = (
        g.token.get_secret_value() if g.token else (g.user, g.password.get_secret_value())
    )
    api = GrafanaApi.from_url(url, credential=credential)
    datasource = datasource_payload(settings, timescaledb=_timescaledb(timescaledb, settings), host=db_host,
                                    password=g.db_password.get_secret_value() if g.db_password else "")
    for action in run_push(api, datasource):
        console.print(f"{action.kind} {action.uid}: {action.done}")
