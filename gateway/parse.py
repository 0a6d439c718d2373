"""From an MQTT message to readings and dead letters: pure functions, no I/O.

A payload is one JSON reading object, a JSON array of them, or a SenML pack (see ``senml``), published
to ``urbanpulse/v1/<kind>/<device_id>``. Every refusal names its reason (and the field when there is
one); in an array or pack, each bad reading is refused on its own and the good ones are kept.

An optional ``identity`` callable says whether the topic's device may publish that kind; the time
policy refuses readings more than ``max_future_skew`` ahead of or ``max_late`` behind the receive time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pydantic_core
from pydantic import ValidationError

from urbanpulse.contract import READING_MODELS, STATUS_KIND, Kind, Reading, parse_topic, utc_now
from urbanpulse.gateway import fastpath, senml
from urbanpulse.ingest.batch import DeadLetter
from urbanpulse.ingest.problems import first_line

Identity = Callable[[str, Kind], str | None]
"""(topic device_id, kind) -> None when the device may publish that kind, else the reason it may not."""


MAX_PAYLOAD_BYTES = 65536  # GatewaySettings.max_payload_bytes' default


@dataclass(frozen=True, slots=True)
class Limits:
    """What the gateway accepts; see GatewaySettings for the meaning of each."""

    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_readings_per_message: int = 1000
    max_future_skew: timedelta = timedelta(seconds=300)
    max_late: timedelta = timedelta(days=7)


@dataclass(slots=True)
class Parsed:
    """The outcome of one message: accepted readings of one kind, refusals."""

    kind: Kind | None = None
    readings: Sequence[Reading] = field(default_factory=list)  # a list, or the fast path's ReadingColumns
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


class _RefusalError(Exception):
    """Internal: one reason to refuse a message or a reading."""

    def __init__(self, reason: str, field_name: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field_name = field_name


def _json(payload: bytes, fast: bool) -> Any:
    """The decoded payload. ``fast``: pydantic-core's JSON parser first (about twice as fast); whatever it
    refuses -- it is stricter than ``json`` on lone surrogate escapes, nesting and UTF-8 -- ``json`` reads
    again, so the outcome and every reason are ``json``'s."""
    if fast:
        with contextlib.suppress(ValueError):
            return pydantic_core.from_json(payload)
    return json.loads(payload.decode("utf-8"))


def _decode(payload: bytes, limits: Limits, fast: bool = False) -> list[Any]:
    """The payload's readings as JSON values; raises _RefusalError for the message as a whole."""
    if len(payload) > limits.max_payload_bytes:
        raise _RefusalError(
            f"payload of {len(payload)} bytes exceeds the limit of {limits.max_payload_bytes} (its first"
            f" {limits.max_payload_bytes} bytes kept)", "payload"
        )
    try:
        document = _json(payload, fast)
    except UnicodeDecodeError as exc:
        raise _RefusalError(f"payload is not valid UTF-8 (byte {exc.start})", "payload") from None
    except json.JSONDecodeError as exc:
        raise _RefusalError(
            f"payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "payload"
        ) from None
    except RecursionError:
        raise _RefusalError("payload is nested too deeply", "payload") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise _RefusalError(f"payload is not valid JSON: {str(exc)[:120]}", "payload") from None
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise _RefusalError("payload must be a JSON object (one reading) or an array of them", "payload")
    if not document:
        raise _RefusalError("payload is an empty array", "payload")
    if len(document) > limits.max_readings_per_message:
        raise _RefusalError(
            f"payload has {len(document)} readings, more than the limit of {limits.max_readings_per_message}", "payload"
        )
    return document


# The names a dead letter's field is counted under in the metrics (``urbanpulse_gateway_rejections``): the contract's
# fields, SenML's labels and the parser's own; any other (an unknown field a device sent) is "unknown", so a device
# cannot add a metric series, and a set in memory, per name it makes up (a security review found 6,601).
_COUNTED_FIELDS = frozenset({name for model in READING_MODELS.values() for name in model.model_fields}
                            | senml.LABELS | {"payload", "topic", "kind", "device_id", "reading", "record", "time"})


def counted_field(field_name: str | None) -> str:
    """The metrics' name of a dead letter's field: itself when the contract or SenML knows it, else ``unknown``
    (``other`` for a refusal of no one field)."""
    if field_name is None:
        return "other"
    return field_name if field_name in _COUNTED_FIELDS else "unknown"


def _duration(seconds: float) -> str:
    """Whole seconds, and the span in larger units when it is a minute or more: ``90000 s (1.0 days)``."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds:.0f} s ({seconds / size:.1f} {unit})"
    return f"{seconds:.0f} s"


def _reading(item: Any, kind: Kind, topic_device: str, received_at: datetime, limits: Limits) -> Reading:
    """One reading validated against the contract, the topic and the time policy; raises _RefusalError."""
    if isinstance(item, senml.SenmlError):
        raise _RefusalError(item.reason, item.field)
    if not isinstance(item, dict):
        raise _RefusalError("a reading must be a JSON object", "reading")
    if "kind" in item:
        stated = item["kind"]
        if stated != kind.value:
            raise _RefusalError(f"kind {str(stated)!r} in payload differs from topic kind {kind.value!r}", "kind")
        item = {k: v for k, v in item.items() if k != "kind"}
    try:
        reading = READING_MODELS[kind].model_validate(item)
    except ValidationError as exc:
        raise _RefusalError(*_describe(exc)) from None
    if reading.device_id != topic_device:
        raise _RefusalError(
            f"device_id {reading.device_id!r} in payload differs from topic device {_clean(topic_device)!r}",
            "device_id",
        )
    if reading.time > received_at + limits.max_future_skew:
        ahead = (reading.time - received_at).total_seconds()
        raise _RefusalError(
            f"time {reading.time.isoformat()} is {ahead:.0f} s in the future (limit "
            f"{limits.max_future_skew.total_seconds():.0f} s)",
            "time",
        )
    if reading.time < received_at - limits.max_late:
        late = (received_at - reading.time).total_seconds()
        raise _RefusalError(
            f"time {reading.time.isoformat()} is {_duration(late)} late; the limit is "
            f"{_duration(limits.max_late.total_seconds())}",
            "time",
        )
    return reading


def parse_status(
    topic: str, device_id: str, payload: bytes, received_at: datetime, known: Callable[[str], str | None] | None = None
) -> tuple[bool | None, Parsed]:
    """A presence message, ``online`` or ``offline`` (also a device's last will), of ``device_id``: whether it
    is online, or ``None`` and the message's dead letter (neither word; a device ``known`` refuses: the gateway
    refuses unknown devices only, as a disabled device's last will is its presence).

    >>> parse_status("urbanpulse/v1/status/air-1", "air-1", b"online", utc_now())[0]
    True
    >>> parse_status("urbanpulse/v1/status/air-9", "air-9", b"offline", utc_now(),
    ...              known=lambda d: f"unknown device {d!r}")[1].rejected[0].reason
    "status of unknown device 'air-9'"
    """
    out = Parsed(received_at=received_at)
    state = payload.strip().lower()
    if state not in (b"online", b"offline"):
        reason, field_name = "a status payload must be 'online' or 'offline'", "payload"
    elif known is not None and (refused := known(device_id)) is not None:
        reason, field_name = f"status of {refused}", "device_id"
    else:
        return state == b"online", out
    out.rejected.append(_dead_letter(topic, payload, reason, received_at, field_name, _clean(device_id), STATUS_KIND))
    return None, out


def _short(text: str | None, most: int) -> str | None:
    """``text`` cut to ``most`` characters (marked): a device's own text in a reason, a kind or an id is shown to
    operators (the Grafana role reads them, not the payload), so a device may not write pages into them."""
    if text is None or len(text) <= most:
        return text
    return text[: most - 1] + "…"


def _dead_letter(topic: str, payload: bytes, reason: str, received_at: datetime, field_name: str | None,
                 device_id: str | None, kind: str | None, payload_limit: int = MAX_PAYLOAD_BYTES) -> DeadLetter:
    """A refusal as stored: topic, reason and field as text PostgreSQL can hold; what the device wrote cut short,
    the payload to ``payload_limit`` bytes (a status message or one the gateway failed on too)."""
    return DeadLetter(topic=_clean(topic), payload=payload[:payload_limit], reason=_short(_clean(reason), 500) or "",
                      received_at=received_at, field=_short(None if field_name is None else _clean(field_name), 64),
                      device_id=_short(device_id, 128), kind=_short(kind, 32))


def failed(topic: str, payload: bytes, received_at: datetime, exc: Exception) -> Parsed:
    """A message the gateway failed on (a bug: every refusal has its reason), as one dead letter saying so: kept
    and acknowledged, not redelivered to fail again at every start."""
    parts = parse_topic(topic)
    reason = f"the gateway failed on this message ({type(exc).__name__}: {first_line(exc)[:200]}): please report it"
    out = Parsed(received_at=received_at)
    out.rejected.append(_dead_letter(topic, payload, reason, received_at, None,
                                     _clean(parts.device_id) if parts else None, _clean(parts.kind) if parts else None))
    return out


def parse_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits | None = None,
    *,
    identity: Identity | None = None,
    fast: bool = True,
) -> Parsed:
    """Validate one MQTT message against the reading contract (and ``identity``, when given).

    ``fast``: a SenML pack the fast path proves valid whole skips the per-record work (``fastpath``);
    the outcome is the same either way.
    """
    limits = limits or Limits()
    out = Parsed(received_at=received_at)

    def reject(reason: str, field_name: str | None, device_id: str | None = None, kind: str | None = None) -> None:
        # The payload once per message, with its first dead letter: a message of 1,000 refused readings stored
        # it 1,000 times (a device could grow the table by a gigabyte a message; security review, 2026-12-01);
        # an oversized payload its first max_payload_bytes (the reason says).
        stored = b"" if out.rejected else payload
        out.rejected.append(_dead_letter(topic, stored, reason, received_at, field_name, device_id, kind,
                                         limits.max_payload_bytes))

    parts = parse_topic(topic)
    if parts is None:
        reject(f"topic {topic!r} is not of the form urbanpulse/v1/<kind>/<device_id>", "topic")
        return out
    device_id, kind_name = _clean(parts.device_id), _clean(parts.kind)
    try:
        kind = Kind(parts.kind)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        reject(f"unknown kind {kind_name!r} in topic (known: {known})", "kind", device_id, kind_name)
        return out
    out.kind = kind
    if identity is not None and (refused := identity(parts.device_id, kind)) is not None:
        reject(refused, "device_id", device_id, kind)
        return out
    if fast and payload[:1] == b"[" and len(payload) <= limits.max_payload_bytes:
        accepted = fastpath.senml_payload(
            payload,
            kind,
            parts.device_id,
            received_at,
            received_at - limits.max_late,
            received_at + limits.max_future_skew,
            limits.max_readings_per_message,
        )
        if accepted is not None:
            out.readings = accepted
            return out
    try:
        document = _decode(payload, limits, fast)
        is_senml = senml.is_senml(document)
        items: list[Any] = senml.readings(document, kind, received_at) if is_senml else document
    except _RefusalError as refusal:
        reject(refusal.reason, refusal.field_name, device_id, kind)
        return out
    except senml.SenmlError as refusal:
        reject(refusal.reason, refusal.field, device_id, kind)
        return out
    out.readings = accepted = []
    for index, item in enumerate(items):
        try:
            accepted.append(_reading(item, kind, parts.device_id, received_at, limits))
        except _RefusalError as refusal:
            prefix = f"reading {index}: " if len(items) > 1 else ""
            reject(prefix + refusal.reason, refusal.field_name, device_id, kind)
    return out
