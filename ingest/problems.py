"""Why the database cannot serve, told as what an operator can act on.

A missing table or function of urbanpulse means the database was never migrated (or not to this
version); a connection pool's timeout hides the server's own answer (no such database, a wrong
password, nothing listening), which one direct connection attempt brings back.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["NOT_MIGRATED", "NotMigratedError", "database_problem", "not_migrated"]

NOT_MIGRATED = "the database is not migrated (run `urbanpulse db migrate` first)"


class NotMigratedError(RuntimeError):
    """The database has not had urbanpulse's migrations: what an operator runs is in the message."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{NOT_MIGRATED}{': ' + detail if detail else ''}")


def not_migrated(exc: BaseException) -> NotMigratedError | None:
    """``exc`` as a :class:`NotMigratedError` when it says a table or function of urbanpulse is missing.

    >>> str(not_migrated(psycopg.errors.UndefinedTable('relation "events" does not exist')))
    'the database is not migrated (run `urbanpulse db migrate` first): relation "events" does not exist'
    """
    if isinstance(exc, NotMigratedError):
        return exc
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return NotMigratedError(_first_line(exc))
    return None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


async def database_problem(exc: psycopg.Error, dsn: str) -> str:
    """One line on what is wrong, for a log: the migration to run, or the server's answer behind a pool's timeout."""
    if (missing := not_migrated(exc)) is not None:
        return str(missing)
    if isinstance(exc, PoolTimeout):
        try:
            async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=3):
                pass
        except psycopg.Error as direct:
            return _first_line(direct)
    return _first_line(exc)
