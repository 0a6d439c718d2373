"""Hostile payloads never break the gateway: each is dead-lettered with a reason, each valid one stored.

The generator of ``hostile_payloads.py`` builds messages of every family, valid and hostile. Hypothesis
drives it through the pure parser (thousands of cases, derandomized); a seeded sample of the same
generator goes through the real broker, gateway and database. Recorded payloads live in
``fixtures/hostile.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from faults import through_gateway
from hostile_payloads import (
    FIXTURES,
    HOSTILE,
    NASTY,
    NOW,
    VALID,
    Case,
    collect_garbage_first,
    derandomized,
    make_case,
    nasty_text,
)
from hypothesis import given
from hypothesis import strategies as st

from urbanpulse.contract import Kind
from urbanpulse.gateway.parse import parse_message
from urbanpulse.settings import Settings
from urbanpulse.sim.stream import SimMessage


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


def test_hostile_payloads_are_dead_lettered_and_valid_ones_accepted() -> None:
    collect_garbage_first()
    seen: Counter[str] = Counter()

    @derandomized(5200)
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
    # a message's payload is kept once, with its first dead letter; its other readings' letters have none
    reasons = {(topic, bytes(payload)): reason for topic, payload, reason in letters if payload}
    kept = settings.gateway.max_payload_bytes  # of an oversized payload, its first max_payload_bytes
    assert {(c.topic, c.payload[:kept]) for c in hostile} == set(reasons)
    assert all(reasons.values())
    assert {topic for topic, payload, _ in letters if not payload} <= {topic for topic, _ in reasons}
