"""``urbanpulse events``: list, acknowledge and resolve events and incidents.

::

    urbanpulse events list [--status active|open|acknowledged|resolved|all] [--incidents] [--limit N]
    urbanpulse events ack ID [--by NAME]
    urbanpulse events resolve ID [--by NAME]

``ID`` is an event's number (``42`` or ``E42``) or an incident's, prefixed ``I`` (``I7``).
``--by`` defaults to the login name. The database is ``URBANPULSE_DATABASE__DSN``. Exit status 2
when the ID names nothing or is no id. See :mod:`urbanpulse.analytics.lifecycle` for what each does.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timedelta
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from urbanpulse.analytics.lifecycle import (
    Outcome,
    StatusFilter,
    Target,
    acknowledge,
    list_events,
    list_incidents,
    parse_target,
    resolve,
)
from urbanpulse.settings import Settings
from urbanpulse.tables import show
from urbanpulse.terminal import console, fail

__all__ = ["events_app"]

events_app = typer.Typer(help="Events and incidents: list, acknowledge, resolve.", no_args_is_help=True)

Id = Annotated[str, typer.Argument(metavar="ID", help="Event id (42 or E42) or incident id (I7).")]
By = Annotated[str | None, typer.Option("--by", help="Who acknowledges or resolves (default: login name).")]
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(Settings().database.dsn, autocommit=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return str(value - timedelta(microseconds=value.microseconds))
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _where(province: str | None, district: str | None) -> str:
    return ", ".join(p for p in (district, province) if p)


def _events_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"events ({len(rows)})")
    for column in ("id", "status", "severity", "device", "metric", "where", "incident", "opened", "last seen",
                   "peak", "readings", "by"):
        table.add_column(column, justify="right" if column in {"id", "peak", "readings"} else "left")
    for r in rows:
        status = r["status"] + (" (flapping)" if r["flapping"] else "")
        table.add_row(
            str(r["id"]), status, f"[{SEVERITY_STYLE.get(r['severity'], '')}]{r['severity']}[/]", r["device_id"],
            r["metric"], _where(r["province"], r["district"]),
            f"I{r['incident_id']}" if r["incident_id"] is not None else "", _text(r["opened_at"]),
            _text(r["last_seen_at"]), _text(r["peak_value"]), str(r["readings"]),
            _text(r["resolved_by"] or r["acknowledged_by"]),
        )
    return table


def _incidents_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"incidents ({len(rows)})")
    for column in ("id", "status", "severity", "scope", "where", "events/rule", "title", "opened", "to ack",
                   "to resolve", "by"):
        table.add_column(column, justify="right" if column in {"id", "events/rule"} else "left")
    for r in rows:
        table.add_row(
            f"I{r['id']}", r["status"], f"[{SEVERITY_STYLE.get(r['severity'], '')}]{r['severity']}[/]", r["scope"],
            _where(r["province"], r["district"]), r["rule"] or str(r["members"]), r["title"], _text(r["opened_at"]),
            _text(r["time_to_acknowledge"]), _text(r["time_to_resolve"]),
            _text(r["resolved_by"] or r["acknowledged_by"]),
        )
    return table


@events_app.command("list")
def list_command(
    status: Annotated[StatusFilter, typer.Option(help="Which to show; active = open or acknowledged.")] = (
        StatusFilter.ACTIVE),
    incidents: Annotated[bool, typer.Option("--incidents", help="List incidents instead of events.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 50,
) -> None:
    """List events (or incidents): unresolved first, worst first, newest first."""
    with _connect() as conn:
        if incidents:
            show(_incidents_table(list_incidents(conn, status, limit)), console)
        else:
            show(_events_table(list_events(conn, status, limit)), console)


def _report(outcome: Outcome) -> None:
    """The changes made, on stdout; an id that names nothing is bad input: one line on stderr, exit 2."""
    for change in outcome.changes:
        console.print(change)
    if not outcome.found:
        fail(f"{outcome.target}: {outcome.note}", 2)
    if outcome.note:
        console.print(f"{outcome.target}: {outcome.note}")


def _target(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as exc:
        fail(str(exc), 2)


@events_app.command("ack")
def ack_command(target: Id, by: By = None) -> None:
    """Acknowledge an event, or an incident with its open events."""
    with _connect() as conn:
        _report(acknowledge(conn, _target(target), by or getpass.getuser()))


@events_app.command("resolve")
def resolve_command(target: Id, by: By = None) -> None:
    """Resolve an event, or an incident with its events."""
    with _connect() as conn:
        _report(resolve(conn, _target(target), by or getpass.getuser()))
