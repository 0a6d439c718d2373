"""Grafana's PostgreSQL macro and template-variable expansion, so dashboard SQL can run in tests.

Grafana expands a panel query in three passes, and :func:`expand` repeats them in the same order:

1. the browser replaces template variables (``$v``, ``${v}``, ``${v:csv}``, ``[[v]]``) and the built-ins
   ``$__interval``, ``$__interval_ms``, ``$__from``, ``$__to``; a variable without a format is quoted
   the PostgreSQL data source's way -- a multi-value (or "All") value becomes ``'a','b'``, a
   single value is inserted bare with its single quotes doubled;
2. the server's global pass replaces ``$__interval_ms``, ``$__interval``, ``$__unixEpochFrom()`` and
   ``$__unixEpochTo()`` (``sqleng.Interpolate``);
3. the PostgreSQL macro engine replaces every ``$__name(args)`` (``postgresMacroEngine``); an unknown
   one is an error.

Times are formatted as Go's RFC 3339 with nanoseconds in UTC (``2026-01-01T00:00:00Z``,
``2026-01-01T00:00:00.5Z``). ``$__timeGroup``'s fill argument only changes how Grafana post-processes
the result (it fills gaps), never the SQL, so it is validated and otherwise ignored here. Unknown
template variables are left as they are, as Grafana does.

>>> from datetime import UTC, datetime, timedelta
>>> print(expand("SELECT $__timeGroupAlias(time, $__interval) FROM t WHERE $__timeFilter(time)",
...              time_from=datetime(2026, 1, 1, tzinfo=UTC), time_to=datetime(2026, 1, 1, 1, tzinfo=UTC),
...              interval=timedelta(seconds=20)))  # doctest: +NORMALIZE_WHITESPACE
SELECT floor(extract(epoch from time)/20)*20 AS "time" FROM t
WHERE time BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T01:00:00Z'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["MacroError", "auto_interval", "expand", "format_interval", "parse_interval"]

VariableValue = str | Sequence[str]


class MacroError(ValueError):
    """A macro Grafana would refuse (unknown name, missing argument, bad interval or fill value)."""


# --- intervals ---------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_CALENDAR = re.compile(r"(\d+)([wd])")


def parse_interval(text: str) -> timedelta:
    """Parse an interval the way Grafana's ``gtime.ParseInterval`` does: ``30s``, ``5m``, ``1h30m``, ``1d``, ``1w``.

    Days and weeks count 24 h each (Grafana counts calendar days in the server's zone; in UTC that is
    the same). Months and years are refused: their length depends on the date.
    """
    text = text.strip()
    calendar = _CALENDAR.search(text)
    if calendar:
        days = int(calendar[1]) * (7 if calendar[2] == "w" else 1)
        return timedelta(days=days)
    if not text or _GO_DURATION.sub("", text) != "":
        raise MacroError(f"error parsing interval {text}")
    seconds = sum(float(n) * _UNITS[u] for n, u in _GO_DURATION.findall(text))
    return timedelta(seconds=seconds)


def format_interval(interval: timedelta) -> str:
    """Grafana's ``gtime.FormatInterval``: the largest whole unit, truncated (90 s is ``1m``)."""
    ms = interval // timedelta(milliseconds=1)
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


# Grafana's rangeutil.roundInterval: (upper bound exclusive, rounded value), both in milliseconds.
_ROUNDING = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (150000, 120000), (270000, 300000), (450000, 600000), (1200000, 900000), (2700000, 1800000),
    (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
    (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
)


def auto_interval(span: timedelta, max_data_points: int = 200, minimum: timedelta | None = None) -> timedelta:
    """The ``$__interval`` Grafana picks for ``span`` and ``max_data_points``, rounded as its panels do."""
    raw = span / timedelta(milliseconds=1) / max_data_points
    rounded = next((value for bound, value in _ROUNDING if raw < bound), 31_536_000_000)
    out = timedelta(milliseconds=rounded)
    return max(out, minimum) if minimum is not None else out


# --- formatting helpers ------------------------------------------------------------------------

def _rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of ``moment`` in UTC: no trailing zeros in the fraction, ``Z`` suffix."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _unix(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64 (shortest form, no ``.0`` on whole numbers)."""
    return str(int(value)) if value == int(value) else repr(value)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- pass 1: template variables (browser) ------------------------------------------------------

# Grafana's variableRegex: $name | [[name(:format)]] | ${name(.path)(:format)}
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}", re.ASCII)

_FORMATS: dict[str, Callable[[list[str], bool], str]] = {
    "raw": lambda v, _multi: ",".join(v),
    "csv": lambda v, _multi: ",".join(v),
    "pipe": lambda v, _multi: "|".join(v),
    "sqlstring": lambda v, _multi: ",".join(_quote(x) for x in v),
    "singlequote": lambda v, _multi: ",".join("'" + x.replace("'", "\\'") + "'" for x in v),
    "doublequote": lambda v, _multi: ",".join('"' + x.replace('"', '\\"') + '"' for x in v),
    "json": lambda v, multi: json.dumps(v if multi else v[0]),
}


def _postgres_default(values: list[str], multi: bool) -> str:
    """SqlDatasource.interpolateVariable: quote every value of a multi-value variable."""
    if multi:
        return ",".join(_quote(v) for v in values)
    return values[0].replace("'", "''")


def _replace_variables(sql: str, scoped: Mapping[str, VariableValue]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        fmt = match[3] or match[6]
        if match[5] is not None or name not in scoped:
            return match[0]
        value = scoped[name]
        multi = not isinstance(value, str)
        values = [value] if isinstance(value, str) else list(value)
        if fmt is None:
            return _postgres_default(values, multi)
        formatter = _FORMATS.get(fmt)
        if formatter is None:
            raise MacroError(f"variable format {fmt!r} is not supported (known: {', '.join(_FORMATS)})")
        return formatter(values, multi)

    return _VARIABLE.sub(replace, sql)


# --- pass 3: the PostgreSQL macro engine (server) ----------------------------------------------

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_FILL_WORDS = ("NULL", "previous")


def _group_interval(name: str, args: list[str]) -> float:
    if len(args) < 2:
        raise MacroError(f"macro {name} needs time column and interval and optional fill value")
    seconds = parse_interval(args[1].strip("'")).total_seconds()
    if len(args) == 3 and args[2] not in _FILL_WORDS:
        try:
            float(args[2])
        except ValueError:
            raise MacroError(f"error parsing fill value {args[2]}") from None
    return seconds


@dataclass(frozen=True, slots=True)
class _Range:
    time_from: datetime
    time_to: datetime
    timescaledb: bool


def _column(name: str, args: list[str]) -> str:
    if not args or not args[0]:
        raise MacroError(f"missing time column argument for macro {name}")
    return args[0]


def _time_group(args: list[str], r: _Range) -> str:
    seconds = _group_interval("__timeGroup", args)
    if r.timescaledb:
        return f"time_bucket('{seconds:.3f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"


def _unix_epoch_group(args: list[str], _r: _Range) -> str:
    seconds = _group_interval("__unixEpochGroup", args)
    return f"floor(({args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"


def _between(name: str, args: list[str], low: str, high: str) -> str:
    column = _column(name, args)
    return f"{column} >= {low} AND {column} <= {high}"


_MACROS: dict[str, Callable[[list[str], _Range], str]] = {
    "__time": lambda a, _r: f'{_column("__time", a)} AS "time"',
    "__timeEpoch": lambda a, _r: f'extract(epoch from {_column("__timeEpoch", a)}) as "time"',
    "__timeFilter": lambda a, r: (
        f"{_column('__timeFilter', a)} BETWEEN '{_rfc3339(r.time_from)}' AND '{_rfc3339(r.time_to)}'"
    ),
    "__timeFrom": lambda _a, r: f"'{_rfc3339(r.time_from)}'",
    "__timeTo": lambda _a, r: f"'{_rfc3339(r.time_to)}'",
    "__timeGroup": _time_group,
    "__timeGroupAlias": lambda a, r: _time_group(a, r) + ' AS "time"',
    "__unixEpochFilter": lambda a, r: _between(
        "__unixEpochFilter", a, str(_unix(r.time_from)), str(_unix(r.time_to))
    ),
    "__unixEpochNanoFilter": lambda a, r: _between(
        "__unixEpochNanoFilter", a, str(_unix_nano(r.time_from)), str(_unix_nano(r.time_to))
    ),
    "__unixEpochNanoFrom": lambda _a, r: str(_unix_nano(r.time_from)),
    "__unixEpochNanoTo": lambda _a, r: str(_unix_nano(r.time_to)),
    "__unixEpochGroup": _unix_epoch_group,
    "__unixEpochGroupAlias": lambda a, r: _unix_epoch_group(a, r) + ' AS "time"',
}


def _unix_nano(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(microseconds=1) * 1000


def _replace_macros(sql: str, r: _Range) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name == "__timeGroup":
            # Grafana < 5.3 compatibility: "$__timeGroup(...)," (a comma right after the first
            # occurrence of the same text) means the alias form.
            end = sql.find(match[0]) + len(match[0])
            if end < len(sql) and sql[end] == ",":
                name = "__timeGroupAlias"
        args = [a.strip(" ") for a in match[2].split(",")]
        macro = _MACROS.get(name)
        if macro is None:
            raise MacroError(f"unknown macro {name!r}")
        return macro(args, r)

    return _MACRO.sub(replace, sql)


def expand(
    sql: str,
    *,
    time_from: datetime,
    time_to: datetime,
    interval: timedelta,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    timescaledb: bool = False,
) -> str:
    """Expand ``sql`` as Grafana does before sending it to PostgreSQL.

    ``variables`` maps a template variable's name to its value: a ``str`` is a single value, a sequence
    of strings a multi-value selection (also one with a single element, or "All" as every value).
    ``timescaledb`` is the data source's TimescaleDB switch (``$__timeGroup`` becomes ``time_bucket``).
    Raises :class:`MacroError` where Grafana would fail the query.
    """
    for moment in (time_from, time_to):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("time_from and time_to must be timezone-aware")
    from_ms = (time_from.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    to_ms = (time_to.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    interval_ms = str(interval // timedelta(milliseconds=1))
    builtins: dict[str, VariableValue] = {
        "__interval": format_interval(interval),
        "__interval_ms": interval_ms,
        "__from": str(from_ms),
        "__to": str(to_ms),
    }
    sql = _replace_variables(sql, {**builtins, **(variables or {})})
    sql = sql.replace("$__interval_ms", interval_ms).replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(time_from)))
    sql = sql.replace("$__unixEpochTo()", str(_unix(time_to)))
    return _replace_macros(sql, _Range(time_from, time_to, timescaledb))
