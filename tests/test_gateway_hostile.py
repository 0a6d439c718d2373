"""Hostile payloads never break the gateway: each is dead-lettered with a reason, each valid one stored.

One generator, ``make_case(family, rnd, nasty, ...)``, builds a message of a family (valid readings,
SenML packs, and hostile ones: huge, deeply nested, invalid UTF-8, NaN/Infinity, wrong types, junk,
truncated SenML, SQL-looking, control-character, NUL and lone-surrogate text in every text field).
Hypothesis drives it through the pure parser (thousands of cases, derandomized); a seeded sample of
the same generator goes through the real broker, gateway and database. Recorded payloads live in
``fixtures/hostile.jsonl``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from faults import through_gateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.contract import DEVICE_ID_PATTERN, READING_MODELS, Kind, reading_topic
from urbanpulse.gateway.parse import parse_message
from urbanpulse.gateway.senml import UNITS
from urbanpulse.settings import Settings
from urbanpulse.sim.stream import SimMessage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "hostile.jsonl"
NASTY = (
    "'); DROP TABLE air_readings; --",
    "Robert'); DROP TABLE ispeed_readings;--",
    "' OR '1'='1",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\x1b[31mred\x1b[0m",
    "\t\r\n",
    "\x07\x08\x0b\x0c",
    "\x7f\x80\x9f",
    "\u202egnp.exe",
    "%s%n%x",
    "${jndi:ldap://x/a}",
    "<script>alert(1)</script>",
    '"\\',
    "\U0001f642",
    "\ufeff",
    "\u2028\u2029",
    "NULL",
    "x" * 70,
)
TOPIC_SAFE = (
    "'); DROP TABLE air_readings; --",
    "' OR '1'='1",
    "NULL;",
    "<b>",
    "air ",
    "AIR",
    "weather",
    "\u00e9t\u00e9",
)
VALID = ("valid", "valid_text", "valid_senml")
HOSTILE = (
    "huge",
    "deep",
    "utf8",
    "nonfinite",
    "wrong_type",
    "missing",
    "extra",
    "range",
    "time",
    "junk",
    "topic",
    "text",
    "truncated",
    "senml_bad",
)
INTS = frozenset(("seq", "vehicle_count", "interval_s"))
TEXTS = frozenset(("device_id", "operator", "province", "network"))


@dataclass(frozen=True, slots=True)
class Case:
    family: str
    topic: str
    payload: bytes
    kind: Kind
    device_id: str
    time: datetime
    text: dict[str, str] = field(default_factory=dict)  # operator / province a valid ispeed reading stores

    @property
    def valid(self) -> bool:
        return self.family in VALID


def storable(text: str) -> bool:
    return 0 < len(text) <= 64 and "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def tame(text: str) -> str:
    """``text`` made storable (a valid operator or province), keeping what is storable of it."""
    kept = "".join(c for c in text if c != "\x00" and not "\ud800" <= c <= "\udfff")[:64]
    return kept or "'; --"


def dump(value: Any, rnd: random.Random, ascii_only: bool | None = None) -> bytes:
    ascii_only = rnd.random() < 0.5 if ascii_only is None else ascii_only
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def native(kind: Kind, device: str, at: datetime, rnd: random.Random, text: dict[str, str]) -> dict[str, Any]:
    stamp = rnd.choice([at.isoformat(), int(at.timestamp()), at.astimezone(timezone(timedelta(hours=7))).isoformat()])
    body: dict[str, Any] = {"device_id": device, "time": stamp, "seq": rnd.randint(0, 2**40)}
    u = rnd.uniform
    if kind is Kind.AIR:
        body |= {
            "pm25": round(u(0, 900), 1),
            "pm10": round(u(0, 1900), 1),
            "temperature": round(u(-40, 60), 1),
            "humidity": round(u(0, 100), 1),
            "noise": rnd.choice([None, round(u(20, 140), 1)]),
        }
    elif kind is Kind.TRAFFIC:
        body |= {
            "vehicle_count": rnd.randint(0, 20000),
            "interval_s": rnd.randint(1, 3600),
            "speed_kmh": round(u(0, 250), 1),
            "occupancy_pct": round(u(0, 100), 1),
        }
    else:
        body |= {
            "download_mbps": round(u(0, 9000), 2),
            "upload_mbps": round(u(0, 900), 2),
            "latency_ms": round(u(0, 900), 1),
            "jitter_ms": round(u(0, 90), 1),
            "packet_loss_pct": round(u(0, 100), 1),
            "network": rnd.choice(["4G", "5G"]),
            "rsrp_dbm": round(u(-140, -44), 1),
            "lat": round(u(-90, 90), 5),
            "lon": round(u(-180, 180), 5),
            "operator": text.get("operator", "Viettel"),
            "province": text.get("province", "Ha Noi"),
        }
    return body


def senml(body: dict[str, Any], at: datetime, rnd: random.Random) -> list[dict[str, Any]]:
    device = body["device_id"]
    records = []
    for name, value in body.items():
        if name in ("device_id", "time") or value is None:
            continue
        record: dict[str, Any] = {"n": name, "vs" if isinstance(value, str) else "v": value}
        if name in UNITS and rnd.random() < 0.7:
            record["u"] = rnd.choice(UNITS[name])
        records.append(record)
    rnd.shuffle(records)
    base = rnd.choice([f"urn:dev:urbanpulse:{device}:", f"{device}/", f"{device}:"])
    records[0] = {"bn": base, "bt": int(at.timestamp()), **records[0]}
    return records


def required(kind: Kind) -> list[str]:
    return [name for name, info in READING_MODELS[kind].model_fields.items() if info.is_required()]


def wrong_value(name: str, rnd: random.Random, nasty: str) -> Any:
    if name == "time":
        return rnd.choice([True, None, [], {}, {"t": 1}, nasty])
    if name in TEXTS:
        return rnd.choice([12, 1.5, True, None, [], {"a": nasty}])
    return rnd.choice(["12", True, None, [], {}, [1.0], {"v": 1}, nasty, *([1.5] if name in INTS else [])])


def deep(rnd: random.Random, body: dict[str, Any]) -> bytes:
    depth = rnd.randint(1000, 40000)
    match rnd.randrange(4):
        case 0:
            return b"[" * depth + b"]" * depth
        case 1:
            return b'{"a":' * depth + b"1" + b"}" * depth
        case 2:
            inner = "[" * rnd.randint(2, 900) + "1" + "]" * 0
            return (
                json.dumps({**body, "seq": "DEEP"})
                .replace('"DEEP"', inner + inner[::-1].replace("[", "]").replace("1", ""))
                .encode()
            )
        case _:
            return (
                json.dumps([{"n": "x/pm25", "v": 1}, {"n": "x/pm10", "v": "DEEP"}])
                .replace('"DEEP"', "[" * depth + "]" * depth)
                .encode()
            )


def senml_bad(rnd: random.Random, pack: list[dict[str, Any]], nasty: str) -> list[dict[str, Any]]:
    index = rnd.randrange(len(pack))
    record = pack[index]
    match rnd.randrange(12):
        case 0:
            record["u"] = nasty
        case 1:
            record[rnd.choice(["v", "extra", "n"])] = rnd.choice([{}, [], {"a": [1]}, [[[]]]])
        case 2:
            record.pop("n")
        case 3:
            record[nasty] = 1
        case 4:
            record.update(rnd.choice([{"n": 12}, {"vb": "true"}, {"bt": "now"}, {"u": 1}, {"bn": None}]))
        case 5:
            pack[0]["bver"] = rnd.choice([11, 0, 1.5, "10", True])
        case 6:
            record["s" if "v" in record or "vs" in record else "v"] = 1
        case 7:
            record["vd"] = "AAAA"
        case 8:
            record["t"] = rnd.choice([math.nan, math.inf, -math.inf, 1e308 * 10])
        case 9:
            record["n"] = nasty
        case 10:
            pack.append({"n": record["n"], "v": 1})
        case _:
            pack[0]["bn"] = rnd.choice(["urn:dev:urbanpulse:other-1:", nasty, "other-1/"])
    return pack


def make_case(  # noqa: PLR0912 - one branch per family of hostile payload
    family: str, rnd: random.Random, nasty: str, n: int, now: datetime, *, broker: bool
) -> Case:
    """One message of ``family``; ``broker`` keeps topics publishable to the gateway's subscription."""
    kind = rnd.choice([Kind.ISPEED] if family in ("valid_text", "text") and rnd.random() < 0.8 else list(Kind))
    device = f"{kind.value}-h{n}"
    at = now - timedelta(seconds=rnd.randint(0, 6 * 86400))
    text = {"operator": tame(nasty), "province": tame(nasty[::-1])} if family == "valid_text" else {}
    body = native(kind, device, at, rnd, text)
    topic = reading_topic(kind, device)
    fields = [f for f in required(kind) if f != "device_id"]
    measures = [f for f in fields if f not in TEXTS and f != "time"]
    payload: Any = body
    match family:
        case "valid" | "valid_text":
            text = {k: body[k] for k in ("operator", "province") if k in body}
        case "valid_senml":
            text = {k: body[k] for k in ("operator", "province") if k in body}
            payload = senml(body, at, rnd)
        case "huge":
            payload = rnd.choice(
                [b" " * 65537 + dump(body, rnd), dump({**body, "seq": "x" * 70000}, rnd), dump([{}] * 1001, rnd)]
            )
        case "deep":
            payload = deep(rnd, body)
        case "utf8":
            raw = dump(body, rnd, ascii_only=True)
            cut = rnd.randrange(len(raw))
            payload = raw[:cut] + rnd.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]) + raw[cut:]
        case "nonfinite":
            body[rnd.choice(measures)] = rnd.choice([math.nan, math.inf, -math.inf])
            payload = senml(body, at, rnd) if rnd.random() < 0.3 else body
        case "wrong_type":
            name = rnd.choice(fields)
            body[name] = wrong_value(name, rnd, nasty)
        case "missing":
            del body[rnd.choice(fields)]
        case "extra":
            body[rnd.choice([nasty, "colour", "pm2_5", "n", "bn"])] = rnd.choice([1, nasty, None])
        case "range":
            name = rnd.choice(measures)
            body[name] = rnd.choice([-1, 2**63] if name == "seq" else [-(10**9), 10**9])
        case "time":
            late = now - timedelta(days=rnd.uniform(7.01, 20000))
            body["time"] = rnd.choice([late.isoformat(), (now + timedelta(seconds=rnd.uniform(600, 1e8))).isoformat()])
        case "junk":
            payload = rnd.randbytes(rnd.randint(0, 3000))
        case "topic":
            if broker:
                segment = rnd.choice(TOPIC_SAFE)
                if rnd.random() < 0.5:  # a device id the contract refuses, in topic and payload alike
                    segment = rnd.choice([s for s in TOPIC_SAFE if not re.fullmatch(DEVICE_ID_PATTERN, s)])
                    body["device_id"] = segment
                topic = reading_topic(kind, segment) if body["device_id"] == segment else reading_topic(segment, device)
            else:
                topic = rnd.choice(
                    [
                        reading_topic(nasty, device),
                        f"{topic}/{nasty}",
                        nasty,
                        f"urbanpulse/v2/{kind}/{device}",
                        reading_topic(kind, nasty),
                    ]
                )
        case "text":
            name = rnd.choice(
                ["device_id", "time", "kind", *(["network", "operator", "province"] if kind is Kind.ISPEED else [])]
            )
            spoilt = nasty + rnd.choice(["\x00", "\ud800", "x" * 64])
            body[name] = nasty if name not in ("operator", "province") else spoilt
        case "truncated":
            raw = dump(senml(body, at, rnd) if rnd.random() < 0.7 else body, rnd)
            payload = raw[: rnd.randrange(len(raw))]
        case "senml_bad":
            payload = senml_bad(rnd, senml(body, at, rnd), nasty)
        case _:
            raise ValueError(family)
    raw = payload if isinstance(payload, bytes) else dump(payload, rnd)
    return Case(family, topic, raw, kind, device, at, text)


def nasty_text() -> st.SearchStrategy[str]:
    extra = st.text(st.characters(exclude_categories=()), max_size=12)
    return st.builds(lambda a, b, c: a + b if c else b + a, st.sampled_from(NASTY), extra, st.booleans()).filter(
        lambda s: not any(s == k for k in ("4G", "5G", *Kind))
    )


def check(case: Case) -> None:
    """The parser's promise for one message (raises AssertionError on a broken one)."""
    parsed = parse_message(case.topic, case.payload, NOW)
    for letter in parsed.rejected:
        assert letter.reason, case
        for text in (letter.reason, letter.topic, letter.field or "", letter.device_id or "", letter.kind or ""):
            assert "\x00" not in text
            text.encode("utf-8")
    if case.valid:
        assert parsed.rejected == [], (case, parsed.rejected)
        assert len(parsed.readings) == 1
        stored = parsed.readings[0].model_dump()
        assert {k: stored[k] for k in case.text} == case.text
    else:
        assert parsed.readings == [], (case, parsed.readings)
        assert parsed.rejected, case


def collect_garbage_first() -> None:
    """Deep payloads make ``json`` recurse to the interpreter's limit; a collection that starts there runs
    the finalizers of earlier tests' garbage (sockets, connections) without stack, and pytest reports
    their RecursionError. Collecting first keeps these tests independent of what ran before."""
    gc.collect()


def test_hostile_payloads_are_dead_lettered_and_valid_ones_accepted() -> None:
    collect_garbage_first()
    seen: Counter[str] = Counter()

    @settings(
        max_examples=5200,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        hostile=st.sampled_from(HOSTILE), valid=st.sampled_from(VALID), seed=st.integers(0, 2**32), nasty=nasty_text()
    )
    def run(hostile: str, valid: str, seed: int, nasty: str) -> None:
        rnd = random.Random(seed)
        for family in (hostile, valid):
            check(make_case(family, rnd, nasty, seed, NOW, broker=False))
            seen[family] += 1

    run()
    assert sum(seen[f] for f in HOSTILE) >= 5000
    assert set(seen) == {*HOSTILE, *VALID}


def recorded() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURES.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("entry", recorded(), ids=lambda e: e["name"])
def test_recorded_hostile_payloads(entry: dict[str, Any]) -> None:
    payload = (
        bytes.fromhex(entry["payload_hex"])
        if "payload_hex" in entry
        else entry["payload"].encode("utf-8", "surrogatepass")
    )
    parsed = parse_message(entry["topic"], payload, NOW)
    assert parsed.readings == []
    assert [(d.field, entry["words"] in d.reason) for d in parsed.rejected] == [(entry["field"], True)]
    assert "\x00" not in parsed.rejected[0].reason


def corpus(count: int, seed: int, now: datetime) -> list[Case]:
    """A fixed sample of the generator (hostile and valid mixed) for the real broker."""
    rnd = random.Random(seed)
    families = [*HOSTILE, *VALID, "valid_text", "valid_text"]
    out = []
    for n in range(count):
        nasty = rnd.choice(NASTY) + "".join(
            chr(rnd.choice([rnd.randint(1, 0x7F), rnd.randint(0x80, 0x2FFF), rnd.randint(0xD800, 0xDFFF), 0x1F642]))
            for _ in range(rnd.randint(0, 8))
        )
        out.append(make_case(rnd.choice(families), rnd, nasty, n, now, broker=True))
    return out


@pytest.mark.integration
def test_hostile_payloads_through_broker_and_gateway(settings: Settings) -> None:
    cases = corpus(2000, seed=20260301, now=datetime.now(UTC).replace(microsecond=0))
    valid = [c for c in cases if c.valid]
    hostile = [c for c in cases if not c.valid]
    assert len(hostile) > 1200
    assert len(valid) > 300
    sent = [
        SimMessage(
            c.topic, c.payload, c.kind.value, c.device_id, c.time if c.valid else None, None if c.valid else c.family
        )
        for c in cases
    ]
    gateway, _ = asyncio.run(through_gateway(settings, sent))
    assert gateway.stats.messages == len(cases)
    with psycopg.connect(settings.database.dsn) as conn:
        for kind in Kind:
            rows = conn.execute(f"SELECT device_id, time FROM {kind.value}_readings").fetchall()
            assert sorted(rows) == sorted((c.device_id, c.time) for c in valid if c.kind is kind), kind
        texts = dict(conn.execute("SELECT device_id, (operator, province) FROM ispeed_readings").fetchall())
        expected = {c.device_id: (c.text["operator"], c.text["province"]) for c in valid if c.kind is Kind.ISPEED}
        assert texts == expected  # SQL-looking and control-character text stored verbatim
        assert any("DROP TABLE" in operator for operator, _ in texts.values())
        letters = conn.execute("SELECT topic, payload, reason FROM dead_letters").fetchall()
    reasons = {(topic, bytes(payload)): reason for topic, payload, reason in letters}
    assert {(c.topic, c.payload) for c in hostile} == set(reasons)
    assert all(reasons.values())
