"""SenML JSON packs (RFC 8428) to readings of the native contract: pure functions, no I/O.

Recognition: a payload is a SenML pack when it is a JSON array whose first element is an object with a
``bn``, ``bt`` or ``n`` key. Native readings never carry those keys (unknown fields are refused), and
every valid pack starts with one (its first record needs a name), so the rule is unambiguous.

Base fields are resolved as the RFC says: a base field applies to its record and every later one until
another record sets it again; ``bn`` is prefixed to ``n``, ``bt`` added to ``t``, ``bu`` is the unit of
a record without ``u``, ``bv`` is added to ``v`` and ``bs`` to ``s``; ``bver`` must be at most 10 and
the same throughout. A record holds one value: ``v`` or ``s`` (number), ``vs`` (string) or ``vb``
(boolean); ``vd`` fits no field. Time ``bt + t`` (seconds) of at least 2**28 is Unix time, smaller is
relative to the gateway's receive time (negative = past).

Names: ``urn:dev:urbanpulse:<device_id>:<field>`` (recommended: the URN with its trailing colon as
``bn``, the field as ``n``), or ``<device_id>/<field>``, or ``<device_id>:<field>``. The field is a
reading field of the contract (``seq`` included); records of one device with the same resolved time
make one reading, numbered in the order of their first record. ``UNITS`` lists the SenML units a field
accepts; a record without a unit is taken in the contract's unit, as native JSON is. Fields without a
unit (``seq``, ``operator``, ``network``, ``province``) refuse a record's own ``u`` and ignore ``bu``.

A pack that is not well-formed SenML is refused whole (``SenmlError``, naming the record and the
label); a reading whose records disagree with the contract (a unit, a field given twice) is refused on
its own, and the rest go on to the contract's validation like native readings.

>>> from datetime import UTC, datetime
>>> pack = [{"bn": "urn:dev:urbanpulse:air-1:", "bt": 1772366340, "bu": "ug/m3", "n": "pm25", "v": 12.5},
...         {"n": "pm10", "v": 20}, {"n": "temperature", "u": "Cel", "v": 28.5},
...         {"n": "humidity", "u": "%RH", "v": 70}, {"n": "seq", "v": 3}]
>>> is_senml(pack)
True
>>> [item] = readings(pack, Kind.AIR, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
>>> item["device_id"], item["time"].isoformat(), item["pm25"], item["seq"]
('air-1', '2026-03-01T11:59:00+00:00', 12.5, 3)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from urbanpulse.contract import DEVICE_ID, READING_MODELS, Kind

RELATIVE_BEFORE = 2**28  # bt + t below this is relative to the receive time
VERSION = 10
URN_PREFIX = "urn:dev:urbanpulse:"

# SenML units each measured field accepts (RFC 8428 and RFC 8798 registry; Mbit/s is ours).
UNITS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("pm25", "pm10", "no2", "o3", "so2", "co"), ("ug/m3",)),
    "temperature": ("Cel",),
    "humidity": ("%RH",),
    "noise": ("dBA", "dB"),
    "vehicle_count": ("count",),
    "interval_s": ("s",),
    "speed_kmh": ("km/h",),
    "occupancy_pct": ("%",),
    "download_mbps": ("Mbit/s",),
    "upload_mbps": ("Mbit/s",),
    "latency_ms": ("ms",),
    "jitter_ms": ("ms",),
    "packet_loss_pct": ("%",),
    "rsrp_dbm": ("dBm",),
    "lat": ("lat",),
    "lon": ("lon",),
}

_TEXT = frozenset(("bn", "bu", "n", "u", "vs", "vd"))
_NUMBER = frozenset(("bt", "bv", "bs", "t", "ut", "v", "s"))
_LABELS = _TEXT | _NUMBER | {"vb", "bver"}
LABELS = _LABELS  # every label a SenML record may carry
_VALUES = ("v", "vs", "vb", "vd")
RESERVED = frozenset(("device_id", "time", "kind"))
NAME = re.compile(
    rf"(?:urn:dev:urbanpulse:)?(?P<device>{DEVICE_ID})[:/]"
    r"(?P<field>[A-Za-z0-9_.-]{1,64})"
)

Value = float | int | str | bool


class SenmlError(ValueError):
    """Why a pack, or one reading of it, is refused; ``field`` names the reading field or SenML label."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class Record:
    """One record with its base fields resolved."""

    index: int
    device_id: str
    field: str
    time: datetime
    unit: str | None
    unit_given: bool  # the record's own ``u``, not an inherited ``bu``
    value: Value


def is_senml(document: list[Any]) -> bool:
    """Whether a decoded JSON array is a SenML pack (its first element has ``bn``, ``bt`` or ``n``)."""
    return bool(document) and isinstance(document[0], dict) and not document[0].keys().isdisjoint(("bn", "bt", "n"))


def _show(text: str, limit: int = 64) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        str: "a string",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), "null")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_labels(index: int, record: dict[str, Any]) -> None:
    where = f"SenML record {index}"
    for label, value in record.items():
        if isinstance(value, dict | list):
            nested = "object" if isinstance(value, dict) else "array"
            raise SenmlError(f"{where}: {_show(label)} holds a nested {nested}; SenML records are flat", label)
        if label not in _LABELS:
            raise SenmlError(f"{where}: unknown SenML label {_show(label)}", label)
        if label in _TEXT and not isinstance(value, str):
            raise SenmlError(f"{where}: {label} must be a string, not {_type_name(value)}", label)
        if label in _NUMBER and not _is_number(value):
            raise SenmlError(f"{where}: {label} must be a number, not {_type_name(value)}", label)
    if "vb" in record and not isinstance(record["vb"], bool):
        raise SenmlError(f"{where}: vb must be a boolean, not {_type_name(record['vb'])}", "vb")
    if "bver" in record and (
        not isinstance(record["bver"], int) or isinstance(record["bver"], bool) or not 0 < record["bver"] <= VERSION
    ):
        raise SenmlError(f"{where}: bver must be a SenML version from 1 to {VERSION}", "bver")


def _sum(index: int, label: str, base: Any, value: Any) -> Any:
    if base is None:
        return value
    try:
        return base + value
    except OverflowError:
        raise SenmlError(f"SenML record {index}: b{label} + {label} is out of range", label) from None


def absolute_time(seconds: float, received_at: datetime) -> datetime:
    """``bt + t`` as a time: Unix time from 2**28 on, else relative to ``received_at``; raises
    OverflowError, ValueError or OSError when out of range."""
    if seconds >= RELATIVE_BEFORE:
        return datetime.fromtimestamp(seconds, UTC)
    return received_at + timedelta(seconds=seconds)


def _time(index: int, base: Any, offset: Any, received_at: datetime) -> datetime:
    try:
        seconds = float(_sum(index, "t", base, offset))
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise SenmlError(f"SenML record {index}: time bt + t is not a finite number", "time")
    try:
        return absolute_time(seconds, received_at)
    except (OverflowError, ValueError, OSError):
        raise SenmlError(f"SenML record {index}: time bt + t = {seconds:g} s is out of range", "time") from None


def _value(index: int, record: dict[str, Any], base: dict[str, Any]) -> Value:
    where = f"SenML record {index}"
    given = [label for label in _VALUES if label in record]
    if "vd" in given:
        raise SenmlError(f"{where}: vd (data value) fits no urbanpulse field", "vd")
    if len(given) > 1:
        raise SenmlError(f"{where}: holds more than one value ({', '.join(given)})", "record")
    if given and "s" in record:
        raise SenmlError(f"{where}: holds both a value ({given[0]}) and a sum (s); give one", "s")
    value: Value
    if "v" in record:
        value = _sum(index, "v", base.get("bv"), record["v"])
    elif "s" in record:
        value = _sum(index, "s", base.get("bs"), record["s"])
    elif given:
        value = record[given[0]]
    else:
        raise SenmlError(f"{where}: holds no value (v, vs, vb or s)", "record")
    return value


def resolve(pack: list[Any], received_at: datetime) -> list[Record]:
    """The pack's records with base fields, names and times resolved; raises SenmlError."""
    base: dict[str, Any] = {}
    version: int | None = None
    out = []
    for index, record in enumerate(pack):
        if not isinstance(record, dict):
            raise SenmlError(f"SenML record {index} is {_type_name(record)}, not a JSON object", "record")
        _check_labels(index, record)
        if "bver" in record:
            if version is not None and record["bver"] != version:
                raise SenmlError(
                    f"SenML record {index}: bver {record['bver']} differs from {version}; a pack has one version",
                    "bver",
                )
            version = record["bver"]
        base.update((label, value) for label, value in record.items() if label in ("bn", "bt", "bu", "bv", "bs"))
        name = base.get("bn", "") + record.get("n", "")
        if not name:
            raise SenmlError(f"SenML record {index} has no name (n, or bn in it or an earlier record)", "n")
        match = NAME.fullmatch(name)
        if match is None:
            raise SenmlError(
                f"SenML record {index}: name {_show(name)} is not {URN_PREFIX}<device_id>:<field>, "
                "<device_id>/<field> or <device_id>:<field>",
                "n",
            )
        field = match["field"]
        if field in RESERVED:
            raise SenmlError(f"SenML record {index}: {field} is not a field a record may carry", "n")
        time = _time(index, base.get("bt"), record.get("t", 0), received_at)
        unit = record["u"] if "u" in record else base.get("bu")
        out.append(Record(index, match["device"], field, time, unit, "u" in record, _value(index, record, base)))
    return out


def _unit_problem(record: Record, kind: Kind) -> str | None:
    if record.field not in READING_MODELS[kind].model_fields:
        return None  # the contract refuses the unknown field by name
    accepted = UNITS.get(record.field)
    if accepted is None:
        if record.unit_given:
            return f"SenML record {record.index}: {record.field} takes no unit, got {_show(str(record.unit))}"
        return None
    if record.unit is None or record.unit in accepted:
        return None
    return (
        f"SenML record {record.index}: unit {_show(record.unit)} does not match {record.field}, "
        f"which takes {' or '.join(accepted)}"
    )


def _assemble(device_id: str, time: datetime, records: list[Record], kind: Kind) -> dict[str, Any] | SenmlError:
    item: dict[str, Any] = {"device_id": device_id, "time": time}
    first: dict[str, int] = {}
    for record in records:
        if record.field in first:
            return SenmlError(
                f"{record.field} is given twice at {time.isoformat()} (SenML records "
                f"{first[record.field]} and {record.index})",
                record.field,
            )
        first[record.field] = record.index
        problem = _unit_problem(record, kind)
        if problem is not None:
            return SenmlError(problem, record.field)
        item[record.field] = record.value
    return item


def readings(pack: list[Any], kind: Kind, received_at: datetime) -> list[dict[str, Any] | SenmlError]:
    """Native reading dicts (or why each is refused), one per device and time; raises SenmlError for the pack."""
    groups: dict[tuple[str, datetime], list[Record]] = {}
    for record in resolve(pack, received_at):
        groups.setdefault((record.device_id, record.time), []).append(record)
    return [_assemble(device_id, time, records, kind) for (device_id, time), records in groups.items()]
