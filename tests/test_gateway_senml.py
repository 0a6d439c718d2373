"""SenML JSON (RFC 8428) packs through the gateway parser: resolution, mapping and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from urbanpulse.contract import Kind, metrics, reading_topic
from urbanpulse.gateway.parse import Limits, Parsed, parse_message
from urbanpulse.gateway.senml import UNITS, SenmlError, is_senml, readings, resolve

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = 1772366340  # 2026-03-01T11:59:00Z
FIXTURES = Path(__file__).parent / "fixtures" / "senml"
README = Path(__file__).parent.parent / "gateway" / "README.md"
URN = "urn:dev:urbanpulse:air-1:"
AIR = [
    {"bn": URN, "bt": T0, "bu": "ug/m3", "n": "pm25", "v": 12.0},
    {"n": "pm10", "v": 20.0},
    {"n": "temperature", "u": "Cel", "v": 28.5},
    {"n": "humidity", "u": "%RH", "v": 70.0},
    {"n": "seq", "v": 3},
]


def parse(pack: Any, kind: str = "air", device: str = "air-1", limits: Limits | None = None) -> Parsed:
    payload = pack if isinstance(pack, bytes) else json.dumps(pack).encode()
    return parse_message(reading_topic(kind, device), payload, NOW, limits)


def changed(index: int, **labels: Any) -> list[dict[str, Any]]:
    """AIR with record ``index`` changed (a label set to ``...`` is removed)."""
    out = [dict(r) for r in AIR]
    out[index].update(labels)
    out[index] = {k: v for k, v in out[index].items() if v is not ...}
    return out


@pytest.mark.parametrize(
    ("kind", "device", "count"),
    [("air", "air-00001", 1), ("traffic", "traffic-00007", 2), ("ispeed", "ispeed-00002", 1)],
)
def test_readme_examples(kind: str, device: str, count: int) -> None:
    text = (FIXTURES / f"{kind}.json").read_text()
    assert text.strip() in README.read_text(), "the gateway README embeds the fixture verbatim"
    parsed = parse(text.encode(), kind, device)
    assert parsed.rejected == []
    assert len(parsed.readings) == count
    assert all(r.device_id == device for r in parsed.readings)


def test_air_example_equals_the_native_example() -> None:
    native = {
        "device_id": "air-00001",
        "time": "2026-03-01T08:00:00+07:00",
        "seq": 1812,
        "pm25": 48.2,
        "pm10": 77.0,
        "temperature": 29.1,
        "humidity": 71.0,
        "no2": 61.0,
        "o3": 40.5,
        "so2": 11.8,
        "co": 1630,
        "noise": 66.2,
    }
    expected = parse(native, "air", "air-00001").readings
    assert parse((FIXTURES / "air.json").read_bytes(), "air", "air-00001").readings == expected


def test_units_cover_every_metric() -> None:
    assert set(UNITS) == {m.name for kind in Kind for m in metrics(kind)}


@pytest.mark.parametrize(
    ("document", "senml"),
    [
        (AIR, True),
        ([{"n": "air-1/pm25", "v": 1}], True),
        ([{"bt": T0, "bn": URN, "n": "pm25", "v": 1}], True),
        ([{"device_id": "air-1", "time": T0}], False),
        ([[{"n": "x"}]], False),
        ([{"v": 1}], False),
    ],
)
def test_recognition(document: list[Any], senml: bool) -> None:
    assert is_senml(document) is senml


def test_base_fields_apply_until_overridden() -> None:
    pack = [
        {"bn": "a-1/", "bt": T0, "bu": "ug/m3", "bv": 10, "n": "pm25", "v": 2.5},
        {"n": "pm10", "u": "Cel", "v": 1},
        {"bn": "urn:dev:urbanpulse:b-2:", "bu": "%RH", "n": "humidity", "t": 60, "v": -1},
        {"bt": 100, "bv": 0.5, "bs": 1000, "n": "noise", "v": 1},
        {"n": "vehicle_count", "s": 5},
        {"n": "network", "vs": "5G"},
        {"n": "flag", "vb": False},
    ]
    records = resolve(pack, NOW)
    assert [(r.device_id, r.field) for r in records] == [
        ("a-1", "pm25"),
        ("a-1", "pm10"),
        ("b-2", "humidity"),
        ("b-2", "noise"),
        ("b-2", "vehicle_count"),
        ("b-2", "network"),
        ("b-2", "flag"),
    ]
    t0 = datetime.fromtimestamp(T0, UTC)
    assert [r.time for r in records] == [t0, t0, t0 + timedelta(seconds=60), *[NOW + timedelta(seconds=100)] * 4]
    assert [r.unit for r in records] == ["ug/m3", "Cel", "%RH", "%RH", "%RH", "%RH", "%RH"]
    assert [r.unit_given for r in records] == [False, True, False, False, False, False, False]
    assert [r.value for r in records] == [12.5, 11, 9, 1.5, 1005, "5G", False]


@pytest.mark.parametrize(
    ("bt", "t", "expected"),
    [
        (None, None, NOW),
        (None, -60, NOW - timedelta(seconds=60)),
        (-3600, 30.5, NOW - timedelta(seconds=3569.5)),
        (None, 2**28, datetime(1978, 7, 4, 21, 24, 16, tzinfo=UTC)),
        (2**28 - 1, None, NOW + timedelta(seconds=2**28 - 1)),
        (T0, -60, datetime(2026, 3, 1, 11, 58, tzinfo=UTC)),
    ],
)
def test_time_is_absolute_from_2_to_the_28(bt: float | None, t: float | None, expected: datetime) -> None:
    record: dict[str, Any] = {"n": "air-1/pm25", "v": 1}
    if bt is not None:
        record["bt"] = bt
    if t is not None:
        record["t"] = t
    assert resolve([record], NOW)[0].time == expected


def test_records_with_the_same_time_form_one_reading() -> None:
    later = [{**r, "t": 60} for r in AIR]
    later[0] = {k: v for k, v in later[0].items() if k not in ("bn", "bt", "bu")}
    parsed = parse([*AIR, *later, {"n": "seq", "t": -60, "v": 1}])
    assert [r.time.isoformat() for r in parsed.readings] == ["2026-03-01T11:59:00+00:00", "2026-03-01T12:00:00+00:00"]
    assert [r.reason for r in parsed.rejected] == [
        "reading 2: pm25: Field required; pm10: Field required; temperature: Field required; humidity: Field required"
    ]


def test_relative_pack_and_time_policy() -> None:
    relative = [{k: v for k, v in r.items() if k != "bt"} for r in AIR]
    relative[0]["bt"] = -120
    assert parse(relative).readings[0].time == NOW - timedelta(minutes=2)
    relative[0]["bt"] = -8 * 86400
    letter = parse(relative).rejected[0]
    assert (letter.field, letter.reason) == (
        "time",
        "time 2026-02-21T12:00:00+00:00 is 691200 s (8.0 days) late; the limit is 604800 s (7.0 days)",
    )
    relative[0]["bt"] = 3600
    assert "in the future" in parse(relative).rejected[0].reason


@pytest.mark.parametrize(
    ("pack", "field", "words"),
    [
        (changed(2, u="K"), "temperature", "SenML record 2: unit 'K' does not match temperature, which takes Cel"),
        (changed(1, u="mg/m3"), "pm10", "unit 'mg/m3' does not match pm10, which takes ug/m3"),
        (changed(4, u="count"), "seq", "SenML record 4: seq takes no unit, got 'count'"),
        ([{**AIR[0], "bn": ""}, *AIR[1:]], "n", "'pm25' is not urn:dev:urbanpulse:<device_id>:<field>"),
        (changed(0, bn=...), "n", "'pm25' is not urn:dev"),
        ([{"bt": T0, "v": 1}, *AIR], "n", "SenML record 0 has no name"),
        (changed(0, n=..., bn="urn:dev:urbanpulse:air-1:"), "n", "name 'urn:dev:urbanpulse:air-1:' is not"),
        (changed(1, n="time"), "n", "time is not a field a record may carry"),
        (changed(1, v={"value": 20}), "v", "SenML record 1: 'v' holds a nested object; SenML records are flat"),
        (changed(1, extra=[1, 2]), "extra", "'extra' holds a nested array"),
        (changed(1, foo_=1), "foo_", "unknown SenML label 'foo_'"),
        (changed(1, v="20"), "v", "SenML record 1: v must be a number, not a string"),
        (changed(1, v=True), "v", "v must be a number, not a boolean"),
        (changed(1, n=5), "n", "n must be a string, not a number"),
        (changed(1, vb="yes"), "vb", "vb must be a boolean, not a string"),
        (changed(1, vs="20"), "record", "more than one value (v, vs)"),
        (changed(1, s=20), "s", "both a value (v) and a sum (s)"),
        (changed(1, v=..., vd="aGk="), "vd", "vd (data value) fits no urbanpulse field"),
        (changed(1, v=...), "record", "SenML record 1: holds no value (v, vs, vb or s)"),
        (changed(0, bver=11), "bver", "bver must be a SenML version from 1 to 10"),
        ([{**AIR[0], "bver": 10}, {**AIR[1], "bver": 9}, *AIR[2:]], "bver", "bver 9 differs from 10"),
        ([*AIR, 42], "record", "SenML record 5 is a number, not a JSON object"),
        (changed(1, t=1e308, bt=1e308), "time", "not a finite number"),
        (changed(1, t=-1e300), "time", "out of range"),
        (json.dumps(AIR).replace('"v": 20.0', '"t": NaN, "v": 20.0').encode(), "time", "not a finite number"),
        (json.dumps(AIR).encode()[:-40], "payload", "not valid JSON"),
        (AIR[:-1], "seq", "seq: Field required"),
        (
            [*AIR, {"n": "pm25", "v": 3}],
            "pm25",
            "pm25 is given twice at 2026-03-01T11:59:00+00:00 (SenML records 0 and 5)",
        ),
        (changed(1, v=5000), "pm10", "pm10: Input should be less than or equal to 2000"),
        (changed(1, v=..., vb=True), "pm10", "pm10: Input should be a valid number"),
        (changed(1, v=..., vs="20"), "pm10", "pm10: Input should be a valid number"),
        ([*AIR, {"n": "colour", "vs": "blue"}], "colour", "colour: Extra inputs are not permitted"),
        (changed(4, v=1.5), "seq", "seq: Input should be a valid integer"),
        ([{**AIR[0], "bn": "urn:dev:urbanpulse:air-2:"}, *AIR[1:]], "device_id", "differs from topic device"),
    ],
)
def test_malformed_packs_name_the_field(pack: Any, field: str, words: str) -> None:
    parsed = parse(pack)
    assert parsed.readings == []
    assert len(parsed.rejected) == 1, parsed.rejected
    assert parsed.rejected[0].field == field
    assert words in parsed.rejected[0].reason


def test_values_vs_and_s() -> None:
    pack = [
        {"bn": "tr-1/", "bt": T0, "bs": 100, "n": "vehicle_count", "u": "count", "s": 12},
        {"n": "interval_s", "u": "s", "v": 60},
        {"n": "speed_kmh", "u": "km/h", "v": 40},
        {"n": "occupancy_pct", "u": "%", "v": 10},
        {"n": "seq", "v": 1},
    ]
    [reading] = parse(pack, "traffic", "tr-1").readings
    assert reading.model_dump()["vehicle_count"] == 112
    items = readings([{"bn": "sp-1:", "n": "operator", "vs": "'); DROP TABLE air_readings; --"}], Kind.ISPEED, NOW)
    assert items == [{"device_id": "sp-1", "time": NOW, "operator": "'); DROP TABLE air_readings; --"}]


def test_a_bad_reading_is_refused_alone() -> None:
    bad = [{**r, "t": 60} for r in AIR[1:]]
    bad[1]["u"] = "K"
    parsed = parse([*AIR, {"n": "pm25", "t": 60, "v": 1}, *bad])
    assert len(parsed.readings) == 1
    assert [(r.field, r.reason) for r in parsed.rejected] == [
        ("temperature", "reading 1: SenML record 7: unit 'K' does not match temperature, which takes Cel")
    ]


def test_record_limit_and_errors_are_values() -> None:
    many = AIR + [{"n": "pm25", "t": i, "v": 1} for i in range(1, 10)]
    letter = parse(many, limits=Limits(max_readings_per_message=10)).rejected[0]
    assert (letter.field, "more than the limit of 10" in letter.reason) == ("payload", True)
    with pytest.raises(SenmlError) as caught:
        readings([{"n": "x"}], Kind.AIR, NOW)
    assert caught.value.field == "n"
