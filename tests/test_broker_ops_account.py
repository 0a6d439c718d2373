"""Analytics publishes event and incident changes on a secured broker with an account of its own: the gateway's
may only read, so on such a broker nothing left the outbox (found by the security review of 2026-12-01)."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from secured_broker import GATEWAY, GATEWAY_SECRET, Secured
from typer.testing import CliRunner

from urbanpulse.analytics.publish import Publisher
from urbanpulse.cli import app
from urbanpulse.settings import Settings

pytestmark = pytest.mark.integration

OPS = "urbanpulse/v1/ops/events/7"


def settle(secured: Secured, monkeypatch: pytest.MonkeyPatch, **accounts: str) -> None:
    for name, value in {"DATABASE__DSN": secured.dsn, "BROKER__PORT": str(secured.server.port),
                        "BROKER__USERNAME": GATEWAY, "BROKER__PASSWORD": GATEWAY_SECRET, **accounts}.items():
        monkeypatch.setenv(f"URBANPULSE_{name}", value)
    with psycopg.connect(secured.dsn) as conn:
        conn.execute("INSERT INTO event_outbox (topic, retain, payload) VALUES (%s, false, '{\"id\": 7}')", [OPS])


async def publish_for(seconds: float) -> Publisher:
    publisher = Publisher(Settings(), poll=0.2)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await publisher.run(stop)
    return publisher


def outbox(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM event_outbox").fetchone()
    return int(row[0]) if row else -1


def test_analytics_publishes_with_its_own_account(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(secured, monkeypatch, ANALYTICS__BROKER_USERNAME="urbanpulse-analytics",
           ANALYTICS__BROKER_PASSWORD="an-secret")
    done = CliRunner().invoke(app, ["broker", "files", "--broker-dir", str(secured.broker_dir),
                                    "--reload", str(secured.broker_dir / "mosquitto.pid")])
    assert done.exit_code == 0, done.output
    assert "user urbanpulse-analytics\ntopic write urbanpulse/v1/ops/#\n" in (secured.broker_dir / "acl").read_text()
    integration = secured.gateway("urbanpulse/v1/ops/#")  # an account that reads them
    publisher = asyncio.run(publish_for(2.0))
    assert publisher.stats.published == 1
    assert outbox(secured.dsn) == 0
    [(topic, payload)] = integration.received(1.0)
    assert topic == OPS
    assert b'"id": 7' in payload
    reader = secured.connect("urbanpulse-analytics", "an-secret")
    assert reader.accepted
    assert reader.subscribe("urbanpulse/v1/#") in (0, 1, 128)
    device = secured.connect("air-1", secured.secrets["air-1"])
    assert device.publish("urbanpulse/v1/air/air-1", b"private") == 0
    assert reader.received(0.5) == []  # it writes events, it reads nothing


def test_without_its_account_the_refusal_says_what_to_set(
    secured: Secured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settle(secured, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="urbanpulse.analytics.publish"):
        publisher = asyncio.run(publish_for(2.0))
    assert publisher.stats.published == 0
    assert outbox(secured.dsn) == 1  # kept for when it may publish
    assert "give analytics its own account (URBANPULSE_ANALYTICS__BROKER_USERNAME" in caplog.text, caplog.text


def test_the_accounts_must_differ(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(secured, monkeypatch, ANALYTICS__BROKER_USERNAME=GATEWAY, ANALYTICS__BROKER_PASSWORD="x")
    done = CliRunner().invoke(app, ["broker", "files", "--broker-dir", str(secured.broker_dir)])
    assert done.exit_code == 2
    assert "URBANPULSE_ANALYTICS__BROKER_USERNAME must differ from URBANPULSE_BROKER__USERNAME" in " ".join(
        done.output.split())
