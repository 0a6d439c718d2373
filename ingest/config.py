"""Storage configuration in the database: backend choice, chunk sizes, retention, rollup parameters.

The settings are :class:`urbanpulse.settings.StorageSettings` (env ``URBANPULSE_STORAGE__<NAME>``);
:func:`write_config` stores them in the ``storage_config`` table, where the migrations and the
maintenance job read them. Two kinds of key:

- fixed when the schema is created (``backend``, ``*_chunk_interval``, ``ispeed_slow_mbps``,
  ``day_timezone``): they shape tables and continuous aggregates, so a later change is ignored
  (``urbanpulse db status`` shows the values in force);
- runtime (everything else): updated by every ``migrate`` and ``maintain`` run.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import psycopg
from psycopg.rows import TupleRow

from urbanpulse.durations import spoken
from urbanpulse.settings import StorageSettings, env_name

log = logging.getLogger("urbanpulse.ingest")

FIXED_KEYS = frozenset(
    {"backend", "air_chunk_interval", "traffic_chunk_interval", "ispeed_chunk_interval", "ispeed_slow_mbps",
     "day_timezone"}
)


def _text(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())} seconds"
    return str(value)


def write_config(conn: psycopg.Connection[TupleRow], config: StorageSettings, *, fixed_too: bool = True) -> list[str]:
    """Create ``storage_config`` if needed; insert every key, update only the runtime ones. Returns (and logs)
    what changes, and (``fixed_too``: ``migrate``, not every ``maintain``) what differs but is fixed: a run from
    a shell without the production variables would otherwise put the defaults back in force without a word."""
    conn.execute("CREATE TABLE IF NOT EXISTS storage_config (key text PRIMARY KEY, value text NOT NULL)")
    before = read_config(conn)
    changes = []
    for name in type(config).model_fields:
        value = _text(getattr(config, name))
        was = before.get(name)
        if was is not None and was != value and not (name == "backend" and value == "auto") and (
                fixed_too or name not in FIXED_KEYS):
            variable = env_name("storage", name)
            changes.append(f"{name} stays {shown(was)}: fixed when the schema was created ({variable}={shown(value)}"
                           " ignored)" if name in FIXED_KEYS else
                           f"{name}: {shown(was)} -> {shown(value)} ({variable}, or its default)")
        if name in FIXED_KEYS:
            conn.execute("INSERT INTO storage_config VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", [name, value])
        else:
            conn.execute(
                "INSERT INTO storage_config VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                [name, value],
            )
    for change in changes:
        log.warning("storage setting %s", change)
    return changes


def shown(text: str) -> str:
    """A stored value as the settings are written: a duration (``"<n> seconds"``) in its largest whole unit;
    anything else as it is.

    >>> shown("691200 seconds"), shown("3600 seconds"), shown("90 seconds"), shown("Asia/Hanoi")
    ('8 days', '1 hour', '90 seconds', 'Asia/Hanoi')
    """
    match = re.fullmatch(r"(\d+) seconds", text)
    return spoken(timedelta(seconds=int(match.group(1)))) if match else text


def read_config(conn: psycopg.Connection[TupleRow]) -> dict[str, str]:
    """Every key of ``storage_config`` (``backend_in_use`` included once migration 003 ran)."""
    exists = conn.execute("SELECT to_regclass('storage_config') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM storage_config").fetchall()}


def backend_in_use(conn: psycopg.Connection[TupleRow]) -> str | None:
    """``timescaledb`` or ``postgres`` once migration 003 chose, else ``None``."""
    return read_config(conn).get("backend_in_use")
