"""Settings: bounds an operator can get wrong, ``off`` for the metrics port only, the spool under the
data folder, and variables that name no setting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from urbanpulse.cli import main
from urbanpulse.cli_errors import settings_problem
from urbanpulse.settings import Settings, unknown_variables


@pytest.mark.parametrize(("variable", "value"), [
    ("URBANPULSE_ANALYTICS__ALPHA", "5"),
    ("URBANPULSE_ANALYTICS__WARMUP", "-3"),
    ("URBANPULSE_GATEWAY__BATCH_SIZE", "-1"),
    ("URBANPULSE_SIM__MALFORMED_RATE", "7"),
    ("URBANPULSE_GATEWAY__METRICS_PORT", "70000"),
    ("URBANPULSE_BROKER__PORT", "0"),
    ("URBANPULSE_STORAGE__TRAFFIC_RETENTION", "-5 days"),  # maintain dropped today's partition with it
    ("URBANPULSE_STORAGE__AIR_RETENTION", "0 days"),
    ("URBANPULSE_STORAGE__ISPEED_RETENTION", "-P5D"),
    ("URBANPULSE_STORAGE__AIR_CHUNK_INTERVAL", "0"),
    ("URBANPULSE_STORAGE__PREMAKE", "1 fortnight"),
    ("URBANPULSE_STORAGE__PREMAKE", "5 ms"),  # not 5 minutes
    ("URBANPULSE_STORAGE__TRAFFIC_RETENTION", "0.5"),  # stored in whole seconds: it would be 0
])
def test_a_value_out_of_bounds_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert settings_problem(refused.value).startswith(f"{variable}={value!r}: ")


@pytest.mark.parametrize(("written", "days"), [
    ("12 hours", 0.5), ("1 week", 7), ("1 day 12 hours", 1.5), ("1 day, 12 hours", 1.5), ("2 Days", 2),
    ("90s", 90 / 86400), ("36h", 1.5), ("3600", 1 / 24), ("P30D", 30), ("PT12H", 0.5), ("01:30:00", 1.5 / 24),
    ("p30d", 30), (".5 days", 0.5), ("+5 days", 5), ("5 mins", 5 / 1440),
])
def test_durations_as_the_docs_write_them(monkeypatch: pytest.MonkeyPatch, written: str, days: float) -> None:
    monkeypatch.setenv("URBANPULSE_STORAGE__REFRESH_LOOKBACK", written)
    assert Settings().storage.refresh_lookback.total_seconds() == pytest.approx(days * 86400)


def test_a_retention_shorter_than_the_gateways_lateness_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readings accepted 5 days late into a table that keeps 3 would be dropped by the next maintenance."""
    monkeypatch.setenv("URBANPULSE_STORAGE__TRAFFIC_RETENTION", "3 days")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert settings_problem(refused.value) == (
        "URBANPULSE_STORAGE__TRAFFIC_RETENTION (3 days) is shorter than URBANPULSE_GATEWAY__MAX_LATE_SECONDS"
        " (7 days): readings the gateway accepts that late would be dropped by the next maintenance; lengthen"
        " the one or shorten the other")
    monkeypatch.setenv("URBANPULSE_GATEWAY__MAX_LATE_SECONDS", str(2 * 86400))
    assert Settings().storage.traffic_retention.days == 3


def test_resolve_score_above_open_score_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_ANALYTICS__RESOLVE_SCORE", "0.9")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "resolve_score (0.9) must not be above open_score (0.8)" in settings_problem(refused.value)


def test_off_turns_off_the_metrics_port_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_GATEWAY__METRICS_PORT", "off")
    monkeypatch.setenv("URBANPULSE_BROKER__PASSWORD", "off")  # a password may well be "off"
    settings = Settings()
    assert (settings.gateway.metrics_port, settings.broker.password) == (None, "off")


def test_the_spool_follows_the_data_folder_unless_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().gateway.spool_dir == Path(".urbanpulse/spool")
    monkeypatch.setenv("URBANPULSE_DATA_DIR", str(tmp_path / "data"))
    assert Settings().gateway.spool_dir == tmp_path / "data" / "spool"
    monkeypatch.setenv("URBANPULSE_GATEWAY__SPOOL_DIR", str(tmp_path / "spool"))
    assert Settings().gateway.spool_dir == tmp_path / "spool"


def test_a_variable_that_names_no_setting_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"URBANPULSE_GATEWAY__BATCHSIZE": "5", "URBANPULSE_DATA_DIR": "x", "URBANPULSE_TEST_PG_PRELOAD": "y",
               "URBANPULSE_DATABASE__DSN": "z", "PATH": "/bin", "URBANPULSE_NONSENSE": "1"}
    assert unknown_variables(environ) == [
        "URBANPULSE_GATEWAY__BATCHSIZE names no setting (did you mean URBANPULSE_GATEWAY__BATCH_SIZE?)",
        "URBANPULSE_NONSENSE names no setting",
    ]
    monkeypatch.setenv("URBANPULSE_ANALYTICS__OPENSCORE", "0.9")
    monkeypatch.setattr(sys, "argv", ["urbanpulse", "--help"])
    with pytest.raises(SystemExit):
        main()
    assert "URBANPULSE_ANALYTICS__OPENSCORE names no setting (did you mean URBANPULSE_ANALYTICS__OPEN_SCORE?)" in (
        capsys.readouterr().err)
