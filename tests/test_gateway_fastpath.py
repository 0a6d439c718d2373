"""The fast paths (pydantic-core's JSON parser, the columnar SenML path) change nothing: over thousands of
generated packs and hostile payloads, ``parse_message`` gives the same readings (values, value types,
fields set) and the same dead letters with ``fast`` on and off."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from hostile_payloads import HOSTILE, VALID, collect_garbage_first, derandomized, make_case, nasty_text, native
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import StringConstraints, field_validator

from urbanpulse.contract import Kind, Reading, TrafficReading, aware_utc, reading_topic
from urbanpulse.gateway import fastpath
from urbanpulse.gateway.parse import Limits, Parsed, parse_message
from urbanpulse.gateway.rules import SHAPES, IrregularError, shape
from urbanpulse.gateway.senml import UNITS
from urbanpulse.settings import GatewaySettings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASES = ("urn:dev:urbanpulse:{}:", "{}/", "{}:")
ODD = (
    "NaN",
    "-Infinity",
    "1e400",
    "-0",
    "[1.0000000000000002, 5e-324]",
    '["\\ud800"]',
    '["\\uDE42\\uD83D"]',
    '{"a": 1, "a": 2}',
    "[" * 300 + "]" * 300,
    "\ufeff[1]",
    "[1,]",
    "01",
    "[9007199254740993]",
    '"\\u0000"',
    "9" * 5000,
    "[" + "1" * 4301 + "]",
)


def typed(reading: Reading) -> tuple[Any, ...]:
    values = [(name, type(value), value) for name, value in reading.__dict__.items()]
    return type(reading), reading.model_fields_set, values


def same(topic: str, payload: bytes, limits: Limits | None = None) -> Parsed:
    """Parse both ways, assert the outcomes equal, return the fast one."""
    fast = parse_message(topic, payload, NOW, limits, fast=True)
    slow = parse_message(topic, payload, NOW, limits, fast=False)
    assert fast.kind == slow.kind
    assert fast.rejected == slow.rejected, payload
    assert [typed(r) for r in fast.readings] == [typed(r) for r in slow.readings], payload
    return fast


def records(rnd: random.Random, kind: Kind, device: str, count: int) -> list[list[dict[str, Any]]]:
    """The records of ``count`` readings, each a list of one record per field (times not yet set)."""
    out = []
    for _ in range(count):
        body = native(kind, device, NOW, rnd, {"operator": rnd.choice(["Viettel", "Mobifone"])})
        reading = []
        for name, sent in body.items():
            if name in ("device_id", "time") or sent is None:
                continue
            value = round(sent) if isinstance(sent, float) and rnd.random() < 0.2 else sent  # an int for a float
            record: dict[str, Any] = {"n": name, "vs" if isinstance(value, str) else "v": value}
            if name in UNITS and rnd.random() < 0.6:
                record["u"] = rnd.choice(UNITS[name])
            reading.append(record)
        if rnd.random() < 0.5:
            rnd.shuffle(reading)
        out.append(reading)
    return out


def pack(rnd: random.Random, kind: Kind, device: str) -> list[dict[str, Any]]:
    """A SenML pack of 1-6 readings in one of the many shapes a device may send."""
    step = rnd.choice([10, 60, 0.5, 1e-7, 0])  # 1e-7 s: times one microsecond apart or equal
    readings = records(rnd, kind, device, rnd.randint(1, 6))
    out = []
    for i, reading in enumerate(readings):
        for record in reading:
            if i or rnd.random() < 0.5:
                record["t"] = step * i
            out.append(record)
    if rnd.random() < 0.3:
        rnd.shuffle(out)  # the records of several readings interleaved
    first: dict[str, Any] = {"bn": rnd.choice(BASES).format(device)}
    match rnd.randrange(4):
        case 0:
            first["bt"] = int(NOW.timestamp()) - rnd.randint(0, 8 * 86400)
        case 1:
            first["bt"] = NOW.timestamp() - rnd.uniform(0, 3600) + rnd.choice([0, 400])
        case 2:
            first["bt"] = -rnd.uniform(0, 3600)
    if rnd.random() < 0.3:
        first["bu"] = rnd.choice(["ug/m3", "%", "Cel", "count"])
    if rnd.random() < 0.2:
        first["bver"] = rnd.choice([10, 5])
    out[0] = {**first, **out[0]}
    return out


def spoil(rnd: random.Random, records: list[dict[str, Any]], nasty: str) -> None:  # noqa: PLR0912 - a branch a change
    """One change the fast path must notice (or pass on to the full path, which decides)."""
    record = rnd.choice(records)
    label = "vs" if "vs" in record else "v"
    match rnd.randrange(16):
        case 0:
            record[label] = rnd.choice([math.nan, math.inf, -math.inf, -1e9, 1e9, 2**62 + 1, -1, 1.5, 0])
        case 1:
            record[label] = rnd.choice([True, None, "12", [], {}, nasty, "", "x" * 65, "a\x00b", "\ud800", "3G"])
        case 2:
            records.remove(record)
        case 3:
            records.append(dict(record))
        case 4:
            record["u"] = rnd.choice([nasty, None, 1, "K", "dB", "%", "count", "Mbit/s"])
        case 5:
            record[rnd.choice(["bt", "bn", "bu", "bver"])] = records[0].get("bt", 0)
        case 6:
            record[rnd.choice(["bv", "bs", "s", "vb", "vd", "ut", nasty])] = rnd.choice([1, True, "x"])
        case 7:
            record["n"] = rnd.choice([None, 5, nasty, "colour", "time", "device_id", "kind", "other-1/seq"])
        case 8:
            record.pop("n")
        case 9:
            record["t"] = rnd.choice([None, "0", math.nan, 1e300, -1e300, 2**1100])
        case 10:
            records.append(rnd.choice([42, None, "x", [], [{"n": "x"}]]))
        case 11:
            record["vs" if label == "v" else "v"] = 1
        case 12:
            records[0]["bver"] = rnd.choice([0, 11, 1.5, True, "10"])
        case 13:
            records[0]["bn"] = rnd.choice([None, 1, "", nasty, "urn:dev:urbanpulse:other-1:"])
        case 14:
            records[0]["bt"] = rnd.choice([None, "now", math.inf, 1e300, -(2**80)])
        case _:
            record["n"] = record.get("n", "pm25") + rnd.choice(["", "x", "/"])


def test_every_kind_has_a_fast_shape() -> None:
    assert set(SHAPES) == set(Kind)


def test_times_built_in_utc_pass_the_contracts_time_check_unchanged() -> None:
    """The fast path skips the time's after-validator for times it built in UTC: that is sound only while
    the validator is ``aware_utc`` alone and returns such a time as it is."""
    for spec in SHAPES.values():
        assert spec.rules["time"].checks == fastpath._IN_UTC
    for seconds in (0.0, 1.7e9, 1.7e9 + 0.123456789, -86_400.5, 4e9):
        stamp = datetime.fromtimestamp(seconds, UTC)
        assert aware_utc(stamp) is stamp
    with pytest.raises(ValueError, match="UTC offset"):
        aware_utc(datetime(2026, 1, 1))  # naive


def test_rules_refuse_what_they_cannot_read() -> None:
    class Checked(TrafficReading):
        @field_validator("speed_kmh")
        @classmethod
        def slow(cls, value: float) -> float:
            return value

    class Lowered(TrafficReading):
        province: Annotated[str, StringConstraints(to_lower=True)]

    for model in (Checked, Lowered):
        with pytest.raises(TypeError):
            shape(model)


@settings(
    max_examples=4000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(seed=st.integers(0, 2**32), kind=st.sampled_from(list(Kind)), spoilt=st.booleans(), nasty=nasty_text())
def test_generated_packs_parse_alike(seed: int, kind: Kind, spoilt: bool, nasty: str) -> None:
    rnd = random.Random(seed)
    device = f"{kind.value}-{seed % 7}"
    records = pack(rnd, kind, device)
    if spoilt:
        spoil(rnd, records, nasty)
    payload = json.dumps(records).encode("utf-8", "surrogatepass")
    same(reading_topic(kind, device), payload)


def test_the_fast_path_takes_the_common_packs() -> None:
    rnd = random.Random(4)
    taken = 0
    for n in range(300):
        kind = list(Kind)[n % 3]
        readings = records(rnd, kind, "d-1", 5)
        flat = [{**record, "t": 10 * i} for i, reading in enumerate(readings) for record in reading]
        flat[0] = {"bn": rnd.choice(BASES).format("d-1"), "bt": NOW.timestamp() - 3600, **flat[0]}
        parsed = same(reading_topic(kind, "d-1"), json.dumps(flat).encode())
        assert len(parsed.readings) == 5, parsed.rejected
        payload = json.dumps(flat).encode()
        taken += fastpath.senml_payload(payload, kind, "d-1", NOW, NOW - timedelta(days=7), NOW, 1000) is not None
    assert taken == 300


@derandomized(3000)
@given(hostile=st.sampled_from(HOSTILE), valid=st.sampled_from(VALID), seed=st.integers(0, 2**32), nasty=nasty_text())
def test_hostile_payloads_parse_alike(hostile: str, valid: str, seed: int, nasty: str) -> None:
    rnd = random.Random(seed)
    for family in (hostile, valid):
        case = make_case(family, rnd, nasty, seed, NOW, broker=False)
        same(case.topic, case.payload)


@pytest.fixture(autouse=True)
def _no_old_garbage() -> None:
    collect_garbage_first()


@pytest.mark.parametrize("text", ODD)
def test_odd_json_decodes_alike(text: str) -> None:
    same(reading_topic(Kind.AIR, "air-1"), text.encode("utf-8", "surrogatepass"))


def test_regular_packs_are_cut_into_columns_and_the_rest_grouped() -> None:
    assert [fastpath._period(n) for n in (["a", "b", "a", "b"], ["a", "b", "c"], ["a"])] == [2, 3, 1]
    for names in (["a", "b", "b", "a"], ["a", "b", "c", "b"], ["a", "b", "a"]):  # order changes, twice, cut short
        assert fastpath._period(names) == 0

    def regular(text: str) -> object:
        records = fastpath._PACK.decode(text.encode())
        names = [r.n for r in records]
        return fastpath._regular(records, names, [r.t for r in records], [r.v for r in records], 2)

    two = '[{"n":"a","u":"%","v":1,"t":5},{"n":"b","v":2,"t":5},{"n":"a","u":"%","v":3,"t":9},{"n":"b","v":4,"t":9}]'
    assert regular(two) == ([("a", "%"), ("b", fastpath.UNSET)], [5, 9], [[1, 3], [2, 4]])
    assert regular(two.replace('"t":9}', '"t":8}', 1)) is None  # one reading at two times
    assert regular(two.replace('"u":"%","v":3', '"v":3')) is None  # a unit in one reading only
    grouped = fastpath._grouped(["a", "b", "b", "a"], [1.0, 1.0, 2.0, 2.0], [1, 2, 3, 4])
    assert grouped == {1.0: {"a": 1, "b": 2}, 2.0: {"b": 3, "a": 4}}
    with pytest.raises(IrregularError):  # a field twice at one time
        fastpath._grouped(["a", "a"], [1.0, 1.0], [1, 2])


def test_interleaved_and_regular_packs_both_take_the_fast_path() -> None:
    base = {"bn": "urn:dev:urbanpulse:tr-1:", "bt": NOW.timestamp() - 60}
    by_reading = [
        {"n": name, "v": value, "t": t}
        for t in (0, 10)
        for name, value in (
            ("vehicle_count", 3),
            ("interval_s", 60),
            ("speed_kmh", 40.5),
            ("occupancy_pct", 2),
            ("seq", t),
        )
    ]
    interleaved = sorted(by_reading, key=lambda record: str(record["n"]))
    for records in (by_reading, interleaved):
        payload = json.dumps([{**base, **records[0]}, *records[1:]]).encode()
        taken = fastpath.senml_payload(payload, Kind.TRAFFIC, "tr-1", NOW, NOW - timedelta(days=1), NOW, 1000)
        assert taken is not None
        assert [(r.speed_kmh, r.occupancy_pct) for r in taken] == [(40.5, 2.0), (40.5, 2.0)]
        assert type(taken[0].occupancy_pct) is float
        assert same(reading_topic(Kind.TRAFFIC, "tr-1"), payload).readings == taken


def test_offsets_equal_as_numbers_but_timed_apart() -> None:
    """An int ``bt`` beyond 2**53 rounds differently with an int and a float ``t`` (found in review)."""
    payload = (
        b'[{"bn":"tr-1/","bt":9007201027107333,"n":"seq","v":1,"t":-9007199254740992},'
        b'{"n":"vehicle_count","v":3,"t":-9007199254740992.0},{"n":"interval_s","v":60,"t":-9007199254740992.0},'
        b'{"n":"speed_kmh","v":40,"t":-9007199254740992.0},{"n":"occupancy_pct","v":5,"t":-9007199254740992.0}]'
    )
    assert same(reading_topic(Kind.TRAFFIC, "tr-1"), payload).readings == []


def test_time_policy_settings_are_bounded() -> None:
    with pytest.raises(ValueError, match="less than or equal"):
        GatewaySettings(max_late_seconds=1e11)
    with pytest.raises(ValueError, match="greater than or equal"):
        GatewaySettings(max_future_skew_seconds=-1)


def test_times_apart_stay_apart_to_the_microsecond() -> None:
    """``_apart``'s premise: Unix times more than 2 us apart, ascending, give distinct ascending stamps, so
    the first and last stamps are the pack's extremes; closer or unordered times take the general check."""
    rnd = random.Random(7)
    for _ in range(20_000):
        first = rnd.uniform(2.0**28, 4e9)
        times = [first, first + fastpath._APART + rnd.uniform(0, 3e-7)]
        times.append(times[1] + fastpath._APART + rnd.random() * 1e-6)
        stamps = [datetime.fromtimestamp(t, UTC) for t in times]
        assert fastpath._apart(times) == (times[1] - times[0] > fastpath._APART < times[2] - times[1])
        if fastpath._apart(times):
            assert stamps == sorted(set(stamps))
    assert not fastpath._apart([2.0**28 + 1, 2.0**28 + 1 + 1e-6])  # too close
    assert not fastpath._apart([2.0**28 + 5, 2.0**28 + 1])  # descending
    assert not fastpath._apart([60.0, 120.0])  # relative to the receive time: not mapped in order
    assert not fastpath._apart([2.0**28 + 1, math.nan])


@pytest.mark.parametrize("offsets", [(0, 4e-7), (4e-7, 0), (10, 0)])
def test_readings_closer_than_the_check_or_unordered_still_get_the_general_check(offsets: tuple[float, ...]) -> None:
    """Two readings within one microsecond are refused alike; unordered ones are taken alike."""
    bt = (NOW - timedelta(minutes=5)).timestamp() + 0.1234561
    records = [
        {"n": name, "v": value, "t": t}
        for t in offsets
        for name, value in (
            ("vehicle_count", 3),
            ("interval_s", 60),
            ("speed_kmh", 40.5),
            ("occupancy_pct", 2),
            ("seq", 1),
        )
    ]
    payload = json.dumps([{"bn": "tr-1/", "bt": bt, **records[0]}, *records[1:]]).encode()
    parsed = same(reading_topic(Kind.TRAFFIC, "tr-1"), payload)
    assert len(parsed.readings) == (2 if offsets == (10, 0) else 0)


def test_the_time_policy_holds_at_both_ends_of_an_ascending_pack() -> None:
    """The first and the last stamp of an ascending pack against the earliest and latest times allowed."""
    fields = (("vehicle_count", 3), ("interval_s", 60), ("speed_kmh", 40.5), ("occupancy_pct", 2), ("seq", 1))
    records = [{"n": name, "v": value, "t": t} for t in (0, 10, 20) for name, value in fields]
    earliest = NOW - timedelta(days=7)
    for bt, accepted in (
        (NOW.timestamp() - 20, True),
        (NOW.timestamp() - 19, False),
        (earliest.timestamp(), True),
        (earliest.timestamp() - 1, False),
    ):
        payload = json.dumps([{"bn": "tr-1/", "bt": bt, **records[0]}, *records[1:]]).encode()
        taken = fastpath.senml_payload(payload, Kind.TRAFFIC, "tr-1", NOW, earliest, NOW, 1000)
        assert (taken is not None and len(taken) == 3) == accepted, bt


@pytest.mark.parametrize("name", ["vehicle_count", "speed_kmh", "seq"])
def test_a_record_without_a_value_is_refused_alike(name: str) -> None:
    """No ``v`` nor ``vs``: the value stays UNSET, which no field's check takes (regular and grouped packs)."""
    fields = (("vehicle_count", 3), ("interval_s", 60), ("speed_kmh", 40.5), ("occupancy_pct", 2), ("seq", 1))
    records: list[dict[str, Any]] = [{"n": n, "v": v, "t": t} for t in (0, 10) for n, v in fields]
    del records[[r["n"] for r in records].index(name, 5)]["v"]
    bt = (NOW - timedelta(minutes=5)).timestamp()
    for ordered in (records, sorted(records, key=lambda r: str(r["n"]))):
        payload = json.dumps([{"bn": "tr-1/", "bt": bt, **ordered[0]}, *ordered[1:]]).encode()
        assert fastpath.senml_payload(payload, Kind.TRAFFIC, "tr-1", NOW, NOW - timedelta(days=1), NOW, 100) is None
        parsed = same(reading_topic(Kind.TRAFFIC, "tr-1"), payload)
        assert not parsed.readings
        assert parsed.rejected


def test_a_devices_names_are_resolved_once_and_only_for_it() -> None:
    """The regular pack's fields are kept per device, names, units and base: a second pack of the device
    finds them, another device sending the same pack (its own names resolve to another device) does not."""
    fields = (("vehicle_count", 3), ("interval_s", 60), ("speed_kmh", 40.5), ("occupancy_pct", 2), ("seq", 1))
    records = [{"n": name, "v": value, "t": t} for t in (0, 10) for name, value in fields]
    payload = json.dumps([{"bn": "tr-cache/", "bt": NOW.timestamp() - 60, **records[0]}, *records[1:]]).encode()
    fastpath._regular_fields.cache_clear()
    for _ in range(3):
        assert fastpath.senml_payload(payload, Kind.TRAFFIC, "tr-cache", NOW, NOW - timedelta(days=1), NOW, 100)
    assert fastpath._regular_fields.cache_info()[:2] == (2, 1)  # hits, misses
    assert fastpath.senml_payload(payload, Kind.TRAFFIC, "tr-other", NOW, NOW - timedelta(days=1), NOW, 100) is None
    assert same(reading_topic(Kind.TRAFFIC, "tr-other"), payload).rejected
