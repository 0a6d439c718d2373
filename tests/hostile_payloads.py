"""Hostile and valid MQTT payloads for the gateway tests: one generator, ``make_case(family, rnd, nasty, ...)``,
builds a message of a family (valid readings, SenML packs, and hostile ones: huge, deeply nested, invalid
UTF-8, NaN/Infinity, wrong types, junk, truncated SenML, SQL-looking, control-character, NUL and
lone-surrogate text in every text field). Used by test_gateway_hostile.py and test_gateway_fastpath.py.
"""

from __future__ import annotations

import gc
import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from urbanpulse.contract import DEVICE_ID_PATTERN, READING_MODELS, Kind, reading_topic
from urbanpulse.gateway.senml import UNITS

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


def tame(text: str) -> str:
    """``text`` made storable (a valid operator or province), keeping what is storable of it."""
    kept = "".join(c for c in text if c not in "\x00$" and not "\ud800" <= c <= "\udfff")[:64]
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


def collect_garbage_first() -> None:
    """Deep payloads make ``json`` recurse to the interpreter's limit; a collection that starts there runs
    the finalizers of earlier tests' garbage (sockets, connections) without stack, and pytest reports
    their RecursionError. Collecting first keeps these tests independent of what ran before."""
    gc.collect()


def derandomized(max_examples: int) -> settings:
    """Hypothesis settings of the hostile-payload tests: the same examples on every run, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
