"""Table-driven tests of the pure message parser: every refusal names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from urbanpulse.contract import Kind, parse_topic, reading_topic
from urbanpulse.gateway.parse import Limits, parse_message

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AIR = {
    "device_id": "air-1",
    "time": "2026-03-01T11:59:00Z",
    "seq": 3,
    "pm25": 12.0,
    "pm10": 20.0,
    "temperature": 28.5,
    "humidity": 70.0,
}
TRAFFIC = {
    "device_id": "tr-1",
    "time": "2026-03-01T11:59:00+07:00",
    "seq": 1,
    "vehicle_count": 42,
    "interval_s": 60,
    "speed_kmh": 38.5,
    "occupancy_pct": 12.0,
}
ISPEED = {
    "device_id": "sp-1",
    "time": 1772366340,
    "seq": 9,
    "download_mbps": 35.2,
    "upload_mbps": 12.1,
    "latency_ms": 28.0,
    "jitter_ms": 3.1,
    "packet_loss_pct": 0.0,
    "operator": "Viettel",
    "network": "4G",
    "rsrp_dbm": -95.0,
    "lat": 21.03,
    "lon": 105.85,
    "province": "Ha Noi",
}


def body(base: dict[str, Any], **changes: Any) -> bytes:
    out = {**base, **changes}
    return json.dumps({k: v for k, v in out.items() if v is not ...}).encode()


def parse(kind: str, device: str, payload: bytes, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return parse_message(reading_topic(kind, device), payload, NOW, limits)


@pytest.mark.parametrize(
    ("kind", "device", "payload"),
    [
        ("air", "air-1", body(AIR)),
        ("air", "air-1", body(AIR, no2=40.0, co=900.0, noise=None)),
        ("traffic", "tr-1", body(TRAFFIC)),
        ("ispeed", "sp-1", body(ISPEED)),
        ("air", "air-1", json.dumps([AIR, {**AIR, "time": "2026-03-01T11:58:00Z"}]).encode()),
        ("air", "air-1", body(AIR, kind="air")),
    ],
)
def test_valid_messages_are_accepted(kind: str, device: str, payload: bytes) -> None:
    parsed = parse(kind, device, payload)
    assert parsed.rejected == []
    assert parsed.readings
    assert parsed.kind == Kind(kind)
    assert all(r.time.tzinfo is not None and r.time.utcoffset() == timedelta(0) for r in parsed.readings)


@pytest.mark.parametrize(
    ("kind", "device", "payload", "field", "words"),
    [
        ("air", "air-1", b'{"device_id": "air-1", "time"', "payload", "not valid JSON"),
        ("air", "air-1", b"\xff\xfe{}", "payload", "UTF-8"),
        ("air", "air-1", b"42", "payload", "JSON object"),
        ("air", "air-1", b"[]", "payload", "empty"),
        ("air", "air-1", body(AIR, pm25=...), "pm25", "Field required"),
        ("air", "air-1", body(AIR, pm25=-1), "pm25", "greater than or equal"),
        ("air", "air-1", body(AIR, pm25=5000), "pm25", "less than or equal"),
        ("air", "air-1", body(AIR, pm25="12"), "pm25", "valid number"),
        ("air", "air-1", body(AIR, pm25=True), "pm25", "valid number"),
        (
            "air",
            "air-1",
            b'{"device_id":"air-1","time":"2026-03-01T11:59:00Z","seq":1,"pm25":NaN,'
            b'"pm10":1,"temperature":1,"humidity":1}',
            "pm25",
            "finite",
        ),
        ("air", "air-1", body(AIR, seq=1.5), "seq", "valid integer"),
        ("air", "air-1", body(AIR, time="2026-03-01T11:59:00"), "time", "UTC offset"),
        ("air", "air-1", body(AIR, time="yesterday"), "time", "datetime"),
        ("air", "air-1", body(AIR, time="2026-03-01T13:00:00Z"), "time", "future"),
        ("air", "air-1", body(AIR, colour="blue"), "colour", "Extra inputs"),
        ("air", "air-1", body(AIR, device_id="air-2"), "device_id", "differs from topic"),
        ("air", "air-1", body(AIR, kind="traffic"), "kind", "differs from topic"),
        ("weather", "air-1", body(AIR), "kind", "unknown kind"),
        ("traffic", "tr-1", body(TRAFFIC, vehicle_count=4.5), "vehicle_count", "valid integer"),
        ("ispeed", "sp-1", body(ISPEED, network="3G"), "network", "'4G' or '5G'"),
        ("ispeed", "sp-1", body(ISPEED, operator="x\u0000y"), "operator", "NUL"),
        ("ispeed", "sp-1", body(ISPEED, rsrp_dbm=-20), "rsrp_dbm", "less than or equal"),
    ],
)
def test_malformed_messages_name_the_field(kind: str, device: str, payload: bytes, field: str, words: str) -> None:
    parsed = parse(kind, device, payload)
    assert parsed.readings == []
    assert len(parsed.rejected) == 1
    letter = parsed.rejected[0]
    assert letter.field == field
    assert words in letter.reason
    assert letter.payload == payload
    assert "\x00" not in letter.reason


def test_bad_reading_in_an_array_is_refused_alone() -> None:
    good = {**AIR, "time": "2026-03-01T11:58:00Z"}
    parsed = parse("air", "air-1", json.dumps([AIR, {**AIR, "pm10": "x"}, good]).encode())
    assert len(parsed.readings) == 2
    assert [r.reason for r in parsed.rejected] == ["reading 1: pm10: Input should be a valid number"]


def test_limits() -> None:
    small = Limits(max_payload_bytes=100, max_readings_per_message=2)
    assert "exceeds the limit" in parse("air", "air-1", body(AIR) * 2, small).rejected[0].reason
    many = json.dumps([AIR, AIR, AIR]).encode()
    assert "more than the limit" in parse("air", "air-1", many, Limits(max_readings_per_message=2)).rejected[0].reason
    deep = b"[" * 100000 + b"]" * 100000
    assert parse("air", "air-1", deep).rejected[0].field == "payload"


def test_topics() -> None:
    assert reading_topic(Kind.AIR, "a-1") == "urbanpulse/v1/air/a-1"
    parts = parse_topic("urbanpulse/v1/air/a-1")
    assert parts is not None
    assert (parts.kind, parts.device_id) == ("air", "a-1")
    for bad in ("urbanpulse/v2/air/a", "urbanpulse/v1/air", "x/v1/air/a", "urbanpulse/v1/air/a/b"):
        assert parse_topic(bad) is None
    letter = parse_message("urbanpulse/v1/air", b"{}", NOW).rejected[0]
    assert letter.field == "topic"


def test_huge_integers_are_refused_not_raised() -> None:
    letter = parse("air", "air-1", b'{"pm25": ' + b"9" * 5000 + b"}").rejected[0]
    assert (letter.field, "not valid JSON" in letter.reason) == ("payload", True)


REGISTRY = {"air-1": (Kind.AIR, True), "air-9": (Kind.AIR, False), "tr-1": (Kind.TRAFFIC, True)}


def registry(device_id: str, kind: Kind) -> str | None:
    """An identity check as a device registry would make it."""
    if device_id not in REGISTRY:
        return f"unknown device {device_id!r}"
    registered, enabled = REGISTRY[device_id]
    if not enabled:
        return f"device {device_id!r} is disabled"
    if registered != kind:
        return f"device {device_id!r} is registered as {registered}, not {kind}"
    return None


@pytest.mark.parametrize(
    ("kind", "device", "payload", "reason"),
    [
        ("air", "air-1", body(AIR), None),
        ("traffic", "tr-1", body(TRAFFIC), None),
        ("air", "air-7", body(AIR, device_id="air-7"), "unknown device 'air-7'"),
        ("air", "air-9", body(AIR, device_id="air-9"), "device 'air-9' is disabled"),
        ("air", "tr-1", body(AIR, device_id="tr-1"), "device 'tr-1' is registered as traffic, not air"),
        ("air", "x\u0000y", b"{}", "unknown device 'x\\x00y'"),
        ("air", "air-7", b"not even json", "unknown device 'air-7'"),
    ],
)
def test_identity_refuses_the_whole_message(kind: str, device: str, payload: bytes, reason: str | None) -> None:
    calls: list[tuple[str, Kind]] = []

    def identity(device_id: str, kind: Kind) -> str | None:
        calls.append((device_id, kind))
        return registry(device_id, kind)

    parsed = parse_message(reading_topic(kind, device), payload, NOW, identity=identity)
    assert calls == [(device, Kind(kind))]
    if reason is None:
        assert (len(parsed.readings), parsed.rejected) == (1, [])
        return
    assert parsed.readings == []
    assert [(d.field, d.reason, d.kind) for d in parsed.rejected] == [("device_id", reason, kind)]
    assert "\x00" not in parsed.rejected[0].reason


def test_identity_is_not_asked_about_bad_topics() -> None:
    def identity(device_id: str, kind: Kind) -> str | None:
        raise AssertionError(device_id)

    for topic in ("urbanpulse/v1/air", "urbanpulse/v1/weather/air-1"):
        assert parse_message(topic, body(AIR), NOW, identity=identity).rejected[0].field in ("topic", "kind")


@pytest.mark.parametrize(
    ("time", "limits", "reason"),
    [
        ("2026-02-22T12:00:00Z", None, None),
        (
            "2026-02-22T11:59:59Z",
            None,
            "time 2026-02-22T11:59:59+00:00 is 604801 s (7.0 days) late; the limit is 604800 s (7.0 days)",
        ),
        (
            "2026-02-01T12:00:00+07:00",
            None,
            "time 2026-02-01T05:00:00+00:00 is 2444400 s (28.3 days) late; the limit is 604800 s (7.0 days)",
        ),
        (
            0,
            None,
            "time 1970-01-01T00:00:00+00:00 is 1772366400 s (20513.5 days) late; the limit is 604800 s (7.0 days)",
        ),
        ("2026-03-01T11:00:00Z", Limits(max_late=timedelta(hours=1)), None),
        (
            "2026-03-01T10:30:00Z",
            Limits(max_late=timedelta(hours=1)),
            "time 2026-03-01T10:30:00+00:00 is 5400 s (1.5 h) late; the limit is 3600 s (1.0 h)",
        ),
        (
            "2026-03-01T11:58:00Z",
            Limits(max_late=timedelta(seconds=90)),
            "time 2026-03-01T11:58:00+00:00 is 120 s (2.0 min) late; the limit is 90 s (1.5 min)",
        ),
        (
            "2026-03-01T11:59:00Z",
            Limits(max_late=timedelta(seconds=30)),
            "time 2026-03-01T11:59:00+00:00 is 60 s (1.0 min) late; the limit is 30 s",
        ),
        ("2026-03-01T12:05:00Z", None, None),
        ("2026-03-01T12:05:01Z", None, "time 2026-03-01T12:05:01+00:00 is 301 s in the future (limit 300 s)"),
    ],
)
def test_time_policy(time: str | int, limits: Limits | None, reason: str | None) -> None:
    parsed = parse("air", "air-1", body(AIR, time=time), limits)
    if reason is None:
        assert (len(parsed.readings), parsed.rejected) == (1, [])
    else:
        assert parsed.readings == []
        assert [(d.field, d.reason) for d in parsed.rejected] == [("time", reason)]


def test_positional_call_stays_compatible() -> None:
    parsed = parse_message(reading_topic("air", "air-1"), body(AIR), NOW, Limits())
    assert len(parsed.readings) == 1


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_time_outside_the_datetimes_once_in_utc_is_refused(time: str) -> None:
    """Found by the security review: it raised OverflowError, which ended the gateway, and the broker handed the
    message back at every start -- one reading stopping all."""
    parsed = parse("air", "air-1", body(AIR, time=time))
    assert parsed.readings == []
    [letter] = parsed.rejected
    assert letter.field == "time"
    assert "out of range once in UTC" in letter.reason


@pytest.mark.parametrize("field", ["province", "operator"])
def test_a_label_with_a_dollar_is_refused(field: str) -> None:
    """A province such as ``$__timeFilter(`` would take apart the dashboards' queries, which Grafana reads for
    variables and macros after putting the label in; other SQL-looking text is stored as it is."""
    refused = parse("ispeed", "sp-1", body(ISPEED, **{field: "$__timeFilter(x)"}))
    assert refused.readings == []
    assert refused.rejected[0].field == field
    assert "'$'" in refused.rejected[0].reason
    kept = parse("ispeed", "sp-1", body(ISPEED, **{field: "Ha Noi'); DROP TABLE x; --"}))
    assert kept.rejected == []


def test_a_message_the_gateway_fails_on_is_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in parsing one message keeps that message as a dead letter saying so, instead of ending the gateway
    (the broker would hand the message back at every start)."""
    from urbanpulse.gateway import service  # noqa: PLC0415
    from urbanpulse.settings import Settings  # noqa: PLC0415

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service, "parse_message", broken)
    message = service.Gateway(Settings())._message(reading_topic("air", "air-1"), body(AIR), NOW)
    assert message.parsed.readings == []
    [letter] = message.parsed.rejected
    assert letter.reason.startswith("the gateway failed on this message (ZeroDivisionError: a bug)")
    assert (letter.device_id, letter.kind, letter.payload) == ("air-1", "air", body(AIR))


def test_a_message_is_stored_once_however_many_of_its_readings_are_refused() -> None:
    """Each refused reading of an array is a dead letter, but the payload goes with the first only: it was stored
    once per refused reading (1,000 copies of up to 64 kB from one message). An oversized payload keeps its first
    max_payload_bytes, and the metrics count a field the contract does not know as "unknown" (not a series each)."""
    from urbanpulse.gateway.parse import counted_field  # noqa: PLC0415

    payload = json.dumps([{**AIR, "pm25": -1, "time": f"2026-03-01T11:{m:02d}:00Z"} for m in range(10)]).encode()
    parsed = parse("air", "air-1", payload)
    assert len(parsed.rejected) == 10
    assert [bool(letter.payload) for letter in parsed.rejected] == [True] + [False] * 9
    assert parsed.rejected[0].payload == payload
    big = b"[" + b" " * 70000 + b"]"
    [letter] = parse("air", "air-1", big, Limits(max_payload_bytes=1000)).rejected
    assert letter.payload == big[:1000]
    assert "its first 1000 bytes kept" in letter.reason
    assert [counted_field(f) for f in ("pm25", "bver", "payload", "made_up_1", None)] == [
        "pm25", "bver", "payload", "unknown", "other"]


def test_what_a_device_writes_into_a_dead_letter_is_cut_short() -> None:
    """The Grafana role reads a dead letter's reason, field, device and kind (not its payload): a device's text in
    them is cut to 500 / 64 / 128 / 32 characters (3,000-character kinds went through before)."""
    [letter] = parse("air", "air-1", body(AIR, kind="<b>" * 1000)).rejected
    assert len(letter.reason) == 500
    assert letter.reason.endswith("…")
    [letter] = parse_message("urbanpulse/v1/" + "k" * 3000 + "/air-1", body(AIR), NOW).rejected
    assert letter.kind is not None
    assert len(letter.kind) == 32


def test_every_dead_letter_keeps_at_most_max_payload_bytes() -> None:
    """Of a status message and of one the gateway failed on too: a device could store a megabyte a message on
    its own status topic (the diff review)."""
    from urbanpulse.gateway.parse import MAX_PAYLOAD_BYTES, failed, parse_status  # noqa: PLC0415

    big = b"x" * 2_000_000
    _, status = parse_status("urbanpulse/v1/status/air-1", "air-1", big, NOW, None)
    assert [len(letter.payload) for letter in status.rejected] == [MAX_PAYLOAD_BYTES]
    [letter] = failed(reading_topic("air", "air-1"), big, NOW, ValueError("x")).rejected
    assert len(letter.payload) == MAX_PAYLOAD_BYTES
