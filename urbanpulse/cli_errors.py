"""An operator's mistakes and outages, told in one line instead of a traceback.

:func:`explain` turns the exceptions a command meets through no fault of the code -- a setting that
does not parse, a database or broker that cannot be reached, a port in use, a file that cannot be
read, a local server that will not start -- into a message naming what to change, and an exit status:
2 for a bad setting or input, 1 for an outage. Anything else is a bug: its traceback is kept.

>>> from pydantic import BaseModel, ValidationError
>>> class Gateway(BaseModel):
...     batch_size: int
>>> try:
...     Gateway(batch_size="abc")
... except ValidationError as exc:
...     print(settings_problem(exc, ("gateway",)))
URBANPULSE_GATEWAY__BATCH_SIZE='abc': Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

import errno
from pathlib import Path

import pydantic
from psycopg import OperationalError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from urbanpulse.settings import Settings, env_name

__all__ = ["explain", "settings_problem"]

# What a server answers when it was reached but the connection settings are wrong (exit 2, not an outage).
# SQLSTATE classes of an outage (no code: the client could not connect): connection exception, insufficient
# resources, operator intervention (shutdown, restart), system error. Other "operational" errors (a savepoint
# that does not exist, say) are bugs and keep their traceback.
_OUTAGES = frozenset({"08", "53", "57", "58"})
# What a file or folder under the data folder fails with when the folder setting is wrong (not a full disk).
_FOLDER_MISTAKES = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS})
_DSN_MISTAKES = ("does not exist", "password authentication failed", "no password supplied",
                 "no pg_hba.conf entry", "invalid connection option", "invalid dsn", "invalid URI")


def settings_problem(exc: pydantic.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """Each error of a settings validation as ``URBANPULSE_<SECTION>__<NAME>=<value>: <why>``, one a line."""
    lines = []
    for error in exc.errors():
        path = [*prefix, *(str(part) for part in error["loc"])]
        if not path:  # a rule across settings: its message names them
            lines.append(error["msg"].removeprefix("Value error, "))
            continue
        name = env_name(*path)
        value = error.get("input")
        secret = path[-1] in {"dsn", "password", "token", "db_password", "broker_password"}  # may hold a password
        shown = f"={value!r}" if isinstance(value, str | int | float) and not secret else ""
        lines.append(f"{name}{shown}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _without_password(dsn: str) -> str:
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # not parsable: say nothing about it rather than leak it
        return "(unparsable)"
    parts.pop("password", None)
    return make_conninfo(**parts)  # type: ignore[arg-type]


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status for ``exc``, or ``None`` for a bug (keep its traceback)."""
    if isinstance(exc, pydantic.ValidationError) and exc.title == "Settings":
        return f"a setting is not valid:\n{settings_problem(exc)}", 2
    from urbanpulse.ingest.problems import first_line, not_migrated  # noqa: PLC0415 (imports psycopg only)

    settings = Settings()
    dsn_variable = env_name("database", "dsn")
    if (missing := not_migrated(exc, settings.database.dsn)) is not None:
        return str(missing), 1
    if type(exc).__name__ == "CheckpointConflictError":  # analytics.store's, not imported here (numba)
        return (f"{exc}: one `urbanpulse analytics` runs per checkpoint; stop the other one, or give this one"
                f" another {env_name('analytics', 'checkpoint_name')}"), 1
    if isinstance(exc, OperationalError) and (exc.sqlstate or "08")[:2] in _OUTAGES:
        where = f" at {_without_password(settings.database.dsn)}"
        why = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        connecting = first_line(exc).startswith(("connection failed", "connection to server", "invalid"))
        if connecting and any(mistake in why for mistake in _DSN_MISTAKES):  # answered: the setting is wrong
            return f"the database refused the connection{where} ({dsn_variable}): {why}", 2
        return f"cannot reach the database{where} ({dsn_variable}): {why}", 1
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError) and str(exc):
        data_dir = settings.data_dir.absolute()
        if (exc.errno in _FOLDER_MISTAKES and isinstance(exc.filename, str)
                and Path(exc.filename).absolute().is_relative_to(data_dir)):
            return f"{exc} ({env_name('data_dir')}={data_dir})", 2
        return str(exc), 1  # a port in use, a file or folder that cannot be read or written
    from urbanpulse.localstack import ServerError  # noqa: PLC0415 (its import starts nothing)

    if isinstance(exc, ServerError):
        return str(exc), 1
    return None
