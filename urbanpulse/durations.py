"""Durations as people write them (``12 hours``, ``1 week``, ``1h30m``, ``P30D``, ``01:30:00``, seconds): the settings
and the simulator's scenario files read them with :func:`parse_duration`, and messages say them back with
:func:`spoken`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, TypeAdapter

__all__ = ["Duration", "parse_duration", "spoken"]

_UNIT_SECONDS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600,
                 "day": 86400, "d": 86400, "week": 604800, "w": 604800}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_AMOUNT = re.compile(rf"({_NUMBER})\s*([a-z]+)(?:\s*,\s*|\s*)")
_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _unit_seconds(word: str) -> float | None:
    """``hours`` / ``hour`` / ``h`` -> 3600; a plural only of a word (``ms`` is not minutes)."""
    if word in _UNIT_SECONDS:
        return _UNIT_SECONDS[word]
    return _UNIT_SECONDS.get(word[:-1]) if word.endswith("s") and len(word) > 2 else None


def parse_duration(value: object) -> timedelta:
    """A duration as people write it: ``12 hours``, ``1 week``, ``1 day 12 hours``, ``1h30m``, ``90s``, a number
    of seconds, ISO 8601 (``P30D``, any case) or ``HH:MM:SS``. The settings and the scenario files read them so.

    >>> parse_duration("1 day, 12 hours"), parse_duration("1h30m"), parse_duration("pt12h")
    (datetime.timedelta(days=1, seconds=43200), datetime.timedelta(seconds=5400), datetime.timedelta(seconds=43200))
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text, seconds, at = str(value).strip().lower(), 0.0, 0
    refused = ValueError(f"{value!r} is not a duration: write it as '12 hours', '1h30m', 'P30D' or '01:30:00'")
    if text.lstrip("+-").startswith("p") or ":" in text:
        try:
            return _TIMEDELTA.validate_python(text.upper() if ":" not in text else text)
        except ValueError:
            raise refused from None
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-").strip()
    if re.fullmatch(_NUMBER, text):
        return timedelta(seconds=sign * float(text))
    while at < len(text):
        match = _AMOUNT.match(text, at)
        size = _unit_seconds(match.group(2)) if match else None
        if match is None or size is None:
            raise refused
        seconds += float(match.group(1)) * size
        at = match.end()
    if not text:
        raise refused
    return timedelta(seconds=sign * seconds)


def spoken(duration: timedelta) -> str:
    """A duration in its largest whole unit, as the settings are written: ``8 days``, ``1 hour``, ``90 seconds``.

    >>> spoken(timedelta(days=8)), spoken(timedelta(hours=1)), spoken(timedelta(seconds=1)), spoken(timedelta(0, 1.5))
    ('8 days', '1 hour', '1 second', '1.5 seconds')
    """
    seconds = duration.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        if seconds and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit if count != 1 else unit[:-1]}"
    return f"{seconds} seconds"


def _positive(value: timedelta) -> timedelta:
    """At least a second: the database keeps durations in whole seconds (half a second would be 0)."""
    if value < timedelta(seconds=1):
        msg = "must be at least 1 second"
        raise ValueError(msg)
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A duration of a second or more: ``12 hours``, ``1 day 12 hours``, ``P30D``, ``01:30:00`` or seconds."""
