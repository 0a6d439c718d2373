"""From an MQTT message to readings and dead letters: pure functions, no I/O.

A payload is one JSON reading object or a JSON array of them, published to
``urbanpulse/v1/<kind>/<device_id>``. Every refusal names its reason (and the field when there is one);
in an array, each bad reading is refused on its own and the good ones are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from urbanpulse.contract import READING_MODELS, Kind, Reading, parse_topic, utc_now
from urbanpulse.ingest.batch import DeadLetter


@dataclass(frozen=True, slots=True)
class Limits:
    """What the gateway accepts; see GatewaySettings for the meaning of each."""

    max_payload_bytes: int = 65536
    max_readings_per_message: int = 1000
    max_future_skew: timedelta = timedelta(seconds=300)


@dataclass(slots=True)
class Parsed:
    """The outcome of one message: accepted readings of one kind, refusals."""

    kind: Kind | None = None
    readings: list[Reading] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    received_at: datetime = field(default_factory=utc_now)


def _clean(text: str) -> str:
    """Text safe to store: PostgreSQL text holds no NUL and only valid UTF-8."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(error: ValidationError) -> tuple[str, str | None]:
    parts = []
    first_field: str | None = None
    for detail in error.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in detail["loc"]) or "reading"
        if first_field is None and detail["loc"]:
            first_field = _clean(str(detail["loc"][0]))
        parts.append(f"{loc}: {detail['msg']}")
    return _clean("; ".join(parts)), first_field


def parse_message(
    topic: str, payload: bytes, received_at: datetime, limits: Limits | None = None
) -> Parsed:
    """Validate one MQTT message against the reading contract."""
    limits = limits or Limits()
    out = Parsed(received_at=received_at)

    def reject(reason: str, field_name: str | None = None, device_id: str | None = None,
               kind: str | None = None) -> Parsed:
        out.rejected.append(
            DeadLetter(topic=_clean(topic), payload=payload, reason=_clean(reason), received_at=received_at,
                       field=field_name, device_id=device_id, kind=kind)
        )
        return out

    parts = parse_topic(topic)
    if parts is None:
        return reject(f"topic {topic!r} is not of the form urbanpulse/v1/<kind>/<device_id>", "topic")
    device_id, kind_name = _clean(parts.device_id), _clean(parts.kind)
    try:
        kind = Kind(parts.kind)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        return reject(f"unknown kind {kind_name!r} in topic (known: {known})", "kind", device_id, kind_name)
    out.kind = kind
    if len(payload) > limits.max_payload_bytes:
        return reject(f"payload of {len(payload)} bytes exceeds the limit of {limits.max_payload_bytes}",
                      "payload", device_id, kind)
    try:
        document = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return reject(f"payload is not valid UTF-8 (byte {exc.start})", "payload", device_id, kind)
    except json.JSONDecodeError as exc:
        return reject(f"payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                      "payload", device_id, kind)
    except RecursionError:
        return reject("payload is nested too deeply", "payload", device_id, kind)

    items: list[Any]
    if isinstance(document, dict):
        items = [document]
    elif isinstance(document, list):
        items = document
        if not items:
            return reject("payload is an empty array", "payload", device_id, kind)
        if len(items) > limits.max_readings_per_message:
            return reject(f"payload has {len(items)} readings, more than the limit of "
                          f"{limits.max_readings_per_message}", "payload", device_id, kind)
    else:
        return reject("payload must be a JSON object (one reading) or an array of them", "payload",
                      device_id, kind)

    model = READING_MODELS[kind]
    latest = received_at + limits.max_future_skew
    many = len(items) > 1
    for index, item in enumerate(items):
        prefix = f"reading {index}: " if many else ""
        if not isinstance(item, dict):
            reject(f"{prefix}a reading must be a JSON object", "reading", device_id, kind)
            continue
        if "kind" in item:
            item = dict(item)
            stated = item.pop("kind")
            if stated != kind.value:
                reject(f"{prefix}kind {str(stated)!r} in payload differs from topic kind {kind.value!r}",
                       "kind", device_id, kind)
                continue
        try:
            reading = model.model_validate(item)
        except ValidationError as exc:
            reason, field_name = _describe(exc)
            reject(prefix + reason, field_name, device_id, kind)
            continue
        if reading.device_id != parts.device_id:
            reject(f"{prefix}device_id {reading.device_id!r} in payload differs from topic device "
                   f"{device_id!r}", "device_id", device_id, kind)
            continue
        if reading.time > latest:
            ahead = (reading.time - received_at).total_seconds()
            reject(f"{prefix}time {reading.time.isoformat()} is {ahead:.0f} s in the future (limit "
                   f"{limits.max_future_skew.total_seconds():.0f} s)", "time", device_id, kind)
            continue
        out.readings.append(reading)
    return out
