"""``urbanpulse dashboards build --grant-login``: the read-only role may log in, with the configured password."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from urbanpulse.cli import app

pytestmark = pytest.mark.integration


def can_login(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'urbanpulse_grafana'").fetchone()
    assert row is not None
    return bool(row[0])


def test_grant_login_takes_the_password_from_the_grafana_settings(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", database)
    monkeypatch.delenv("URBANPULSE_GRAFANA__DB_PASSWORD", raising=False)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER ROLE urbanpulse_grafana NOLOGIN")  # roles outlive a test's database
    runner = CliRunner()
    refused = runner.invoke(app, ["dashboards", "build", "--out", str(tmp_path), "--grant-login"])
    assert refused.exit_code == 2
    assert "URBANPULSE_GRAFANA__DB_PASSWORD" in refused.output
    assert not can_login(database)
    monkeypatch.setenv("URBANPULSE_GRAFANA__DB_PASSWORD", "a long secret")
    try:
        granted = runner.invoke(app, ["dashboards", "build", "--out", str(tmp_path), "--grant-login"])
        assert granted.exit_code == 0, granted.output
        assert can_login(database)
    finally:  # the role belongs to the cluster the other tests share: as migrations create it
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ALTER ROLE urbanpulse_grafana NOLOGIN PASSWORD NULL")
    assert (tmp_path / "provisioning" / "datasources").is_dir()
