"""The fast path for well-formed SenML packs: a pack read as columns, no per-record pydantic; pure functions.

The reading contract's pydantic models stay the authority. ``senml_pack`` accepts a pack only when it can
prove, with the contract's own rules (``rules.SHAPES``), that the full path would accept every reading of
it unchanged, and returns ``None`` otherwise: a base field after the first record, a label outside
``n u v vs t bn bt bu bver``, a value of the wrong type or out of range, an unknown field, a unit that
does not match, a field given twice, a time outside the policy, another device. The caller then takes
the full path (``senml.readings`` and the models), so every refusal keeps its reason.
``tests/test_gateway_fastpath.py`` runs both paths over thousands of generated packs and payloads.

The work per record is done by C-level loops (``map``, ``zip``, ``set``, ``min``/``max`` over a
column); Python-level work is per pack, per distinct name and per reading.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
>>> pack = [{"bn": "tr-1/", "bt": -60, "n": "vehicle_count", "u": "count", "v": 12},
...         {"n": "interval_s", "v": 60}, {"n": "speed_kmh", "v": 40}, {"n": "occupancy_pct", "v": 5.5},
...         {"n": "seq", "v": 7}]
>>> [r] = senml_pack(pack, Kind.TRAFFIC, "tr-1", now, now - timedelta(days=7), now + timedelta(minutes=5))
>>> r.time.isoformat(), r.speed_kmh, r.seq
('2026-03-01T11:59:00+00:00', 40.0, 7)
>>> senml_pack(pack, Kind.TRAFFIC, "tr-2", now, now - timedelta(days=7), now) is None
True
"""

from __future__ import annotations

import math
from datetime import datetime
from itertools import repeat
from operator import add, contains, ne
from typing import Any

from urbanpulse.contract import Kind, Reading
from urbanpulse.gateway import senml
from urbanpulse.gateway.rules import FIXED, SHAPES, IrregularError, Rule, check, check_column, construct

_PLAIN = frozenset(("n", "u", "v", "vs", "t"))
_LABELS = _PLAIN | {"bn", "bt", "bu", "bver"}  # base fields: in the first record only
_NUMBERS = frozenset((int, float))
_TYPES_OF = {"float": _NUMBERS, "int": frozenset((int,))}


class _Missing:
    """A label a record does not have (JSON null is None, which is a value)."""


_MISSING = _Missing()
_TEXT_OR_MISSING = frozenset((str, _Missing))


def _column(pack: list[dict[str, Any]], label: str, default: Any = _MISSING) -> list[Any]:
    return list(map(dict.get, pack, repeat(label), repeat(default)))


def _base(first: dict[str, Any]) -> tuple[str, Any, str | None]:
    """(bn, bt, bu) of the first record; raises IrregularError."""
    name, time, unit, version = first.get("bn", ""), first.get("bt"), first.get("bu"), first.get("bver", 1)
    if (
        type(name) is not str
        or ("bt" in first and type(time) not in _NUMBERS)
        or ("bu" in first and type(unit) is not str)
        or type(version) is not int
        or not 0 < version <= senml.VERSION
    ):
        raise IrregularError
    return name, time, unit


def _field(name: str, device_id: str, rules: dict[str, Rule]) -> tuple[str, tuple[str, ...] | None]:
    """The reading field a SenML name of ``device_id`` stands for, and the units it takes."""
    match = senml.NAME.fullmatch(name)
    if match is None or match["device"] != device_id:
        raise IrregularError
    field = match["field"]
    if field in senml.RESERVED or field not in rules:
        raise IrregularError
    return field, senml.UNITS.get(field)


def _fields(
    pack: list[dict[str, Any]], device_id: str, rules: dict[str, Rule], base_name: str, base_unit: str | None
) -> list[str]:
    """Each record's reading field, its name and unit checked as ``senml.resolve`` and ``_unit_problem`` do."""
    names = _column(pack, "n", None)
    try:
        pairs = set(zip(names, _column(pack, "u"), strict=True))
    except TypeError:  # an object or array: unhashable
        raise IrregularError from None
    field_of: dict[str, str] = {}
    for name, unit in pairs:  # a non-string is never equal to a string: the set hides none
        if type(name) is not str or type(unit) not in _TEXT_OR_MISSING:
            raise IrregularError
        field, accepted = _field(base_name + name, device_id, rules)
        if unit is _MISSING:
            if accepted is not None and base_unit is not None and base_unit not in accepted:
                raise IrregularError
        elif accepted is None or unit not in accepted:
            raise IrregularError
        field_of[name] = field
    return list(map(field_of.__getitem__, names))


def _values(pack: list[dict[str, Any]], labels: set[str]) -> list[Any]:
    """Each record's one value, ``v`` or ``vs``."""
    values = _column(pack, "v")
    if "vs" in labels:
        texts = _column(pack, "vs")
        values = [text if value is _MISSING else value for value, text in zip(values, texts, strict=True)]
        if sum(map(contains, pack, repeat("v"))) + sum(map(contains, pack, repeat("vs"))) != len(pack):
            raise IrregularError
    if _MISSING in values:  # a JSON value equals _MISSING only by identity
        raise IrregularError
    return values


def _check(groups: list[dict[str, Any]], fields: set[str], rules: dict[str, Rule]) -> None:
    """Every value checked (and converted, in place) by its field's rule; raises IrregularError."""
    for field in fields:
        found = rules[field]
        column = [group[field] for group in groups if field in group]
        types = set(map(type, column))
        if found.bounded and types <= _TYPES_OF[found.type]:
            if any(map(ne, column, column)) or min(column) < found.low or max(column) > found.high:
                raise IrregularError  # out of range, or NaN (which is not equal to itself)
            if found.type == "float" and int in types:
                for group in groups:
                    if field in group:
                        group[field] = float(group[field])  # strict mode stores an int sent for a float as a float
        else:
            for group in groups:
                if field in group:
                    group[field] = check(found, group[field])


def _groups(pack: list[Any], device_id: str, rules: dict[str, Rule]) -> dict[float, dict[str, Any]]:
    """The pack's checked field values by resolved ``bt + t``; raises IrregularError."""
    if not pack or set(map(type, pack)) != {dict}:
        raise IrregularError
    later: set[str] = set().union(*pack[1:])
    if not later <= _PLAIN or not pack[0].keys() <= _LABELS:
        raise IrregularError
    labels = later | pack[0].keys()
    base_name, base_time, base_unit = _base(pack[0])
    fields = _fields(pack, device_id, rules, base_name, base_unit)
    offsets = _column(pack, "t", 0)
    if not set(map(type, offsets)) <= _NUMBERS:
        raise IrregularError
    seconds = list(map(float, offsets if base_time is None else map(add, repeat(base_time), offsets)))
    groups: dict[float, dict[str, Any]] = {s: {} for s in dict.fromkeys(seconds)}
    for second, field, value in zip(seconds, fields, _values(pack, labels), strict=True):
        groups[second][field] = value
    if sum(map(len, groups.values())) != len(pack):
        raise IrregularError  # a field given twice at one time
    _check(list(groups.values()), set(fields), rules)
    return groups


def senml_pack(
    pack: list[Any], kind: Kind, device_id: str, received_at: datetime, earliest: datetime, latest: datetime
) -> list[Reading] | None:
    """The readings of a SenML pack published by ``device_id`` when the full path would accept every one of
    them unchanged (times within ``earliest`` .. ``latest``); else None."""
    spec = SHAPES.get(kind)
    if spec is None:
        return None
    try:
        check(spec.rules["device_id"], device_id)
        groups = _groups(pack, device_id, spec.rules)
        if not all(map(math.isfinite, groups)) or not all(map(spec.required.issubset, groups.values())):
            return None
        times = check_column(spec.rules["time"], list(map(senml.absolute_time, groups, repeat(received_at))))
        if min(times) < earliest or max(times) > latest or len(set(times)) != len(times):
            return None  # outside the time policy, or two times that are one to the microsecond
    except (IrregularError, ValueError, OverflowError, OSError):
        return None
    out = []
    for time, fields in zip(times, groups.values(), strict=True):
        values = {**spec.defaults, "device_id": device_id, "time": time, **fields}
        out.append(construct(spec.model, values, {*FIXED, *fields}))
    return out
