"""``urbanpulse sim`` registers its fleet first, so a gateway that refuses unknown devices stores its readings."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from urbanpulse.cli import app
from urbanpulse.localstack import MosquittoServer

pytestmark = pytest.mark.integration


def test_sim_registers_its_devices_once(database: str, broker: MosquittoServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", database)
    monkeypatch.setenv("URBANPULSE_BROKER__PORT", str(broker.port))
    runner = CliRunner()
    first = runner.invoke(app, ["sim", "--devices", "2", "--interval", "0.5", "--duration", "1"])
    assert first.exit_code == 0, first.output
    assert "6 simulated devices registered, 0 already known" in first.output
    with psycopg.connect(database) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM devices WHERE enabled GROUP BY 1 ORDER BY 1").fetchall()
    assert kinds == [("air", 2), ("ispeed", 2), ("traffic", 2)]
    again = runner.invoke(app, ["sim", "--devices", "2", "--interval", "0.5", "--duration", "1"])
    assert again.exit_code == 0, again.output
    assert "0 simulated devices registered, 6 already known" in again.output


def test_sim_without_a_database_says_what_to_do(broker: MosquittoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    monkeypatch.setenv("URBANPULSE_BROKER__PORT", str(broker.port))
    runner = CliRunner()
    refused = runner.invoke(app, ["sim", "--devices", "1", "--duration", "1"])
    assert refused.exit_code == 2
    assert "--no-register" in refused.output
    unregistered = runner.invoke(app, ["sim", "--devices", "1", "--interval", "0.5", "--duration", "1",
                                       "--no-register"])
    assert unregistered.exit_code == 0, unregistered.output
    assert "published" in unregistered.output
