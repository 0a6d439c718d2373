"""Why the database cannot serve, told as what an operator can act on.

A missing table or function of urbanpulse means the database was never migrated (or not to this
version); a connection pool's timeout hides the server's own answer (no such database, a wrong
password, nothing listening), which one direct connection attempt brings back.
"""

from __future__ import annotations

import asyncio

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["NOT_MIGRATED", "NotMigratedError", "database_problem", "first_line", "migrations_missing", "not_migrated"]

NOT_MIGRATED = "the database is not migrated (run `urbanpulse db migrate` first)"


class NotMigratedError(RuntimeError):
    """The database has not had urbanpulse's migrations: what an operator runs is in the message."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{NOT_MIGRATED}{': ' + detail if detail else ''}")


def migrations_missing(dsn: str) -> bool:
    """Whether the database at ``dsn`` lacks migrations of this version (False when it cannot be asked)."""
    from urbanpulse.ingest.migrate import applied, available  # noqa: PLC0415 (migrate imports this module's users)

    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            return bool({m.version for m in available()} - set(applied(conn)))
    except psycopg.Error:
        return False


def not_migrated(exc: BaseException, dsn: str) -> NotMigratedError | None:
    """``exc`` as a :class:`NotMigratedError` when it says a table or function is missing and the database at
    ``dsn`` does lack migrations; ``None`` otherwise (a missing table in a migrated database is a bug)."""
    if isinstance(exc, NotMigratedError):
        return exc
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction) and migrations_missing(dsn):
        return NotMigratedError(first_line(exc))
    return None


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (a server's answer runs over several), or its type's name."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


async def database_problem(exc: psycopg.Error, dsn: str) -> str:
    """One line on what is wrong, for a log: the migration to run, or the server's answer behind a pool's timeout."""
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction) and (
            missing := await asyncio.to_thread(not_migrated, exc, dsn)) is not None:
        return str(missing)
    if isinstance(exc, PoolTimeout):
        try:
            async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=3):
                pass
        except psycopg.Error as direct:
            return first_line(direct)
    return first_line(exc)
