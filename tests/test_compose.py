"""docker-compose.yml parses and stays in step with the code (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from urbanpulse.cli import app
from urbanpulse.dashboards.build import build
from urbanpulse.settings import COMPOSE_VARIABLES, Settings, unknown_variables

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def urbanpulse_services() -> dict[str, Any]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == "urbanpulse:local"}


def test_compose_has_the_whole_stack() -> None:
    services = compose()["services"]
    expected = {"timescale", "mosquitto", "grafana", "migrate", "gateway", "analytics", "maintain", "sim", "dashboards"}
    assert expected <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in compose()["volumes"], source


@pytest.mark.parametrize("name", sorted(urbanpulse_services()))
def test_every_service_command_exists(name: str) -> None:
    command = urbanpulse_services()[name]["command"]
    words = [w for w in command if not w.startswith("-")][:2]
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output


def test_service_environment_is_read_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for svc in urbanpulse_services().values():
        for key, value in svc["environment"].items():
            assert key.startswith("URBANPULSE_"), key
            monkeypatch.setenv(key, str(value).replace("${URBANPULSE_DB_PASSWORD:-urbanpulse}", "pw"))
    settings = Settings()
    assert settings.broker.host == "mosquitto"
    assert settings.database.dsn == "postgresql://urbanpulse:pw@timescale:5432/urbanpulse"
    assert settings.sim.devices_per_kind == 50


def test_grafana_mounts_what_the_dashboards_service_writes(tmp_path: Path) -> None:
    services = compose()["services"]
    written = {p.relative_to(tmp_path).parts[0] for p in build(tmp_path, Settings(), timescaledb=True)}
    mounts = {v.split(":")[1].removeprefix("/out/") for v in services["dashboards"]["volumes"]}
    assert written == mounts == {"provisioning", "dashboards"}
    grafana = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= grafana
    provider = yaml.safe_load((tmp_path / "provisioning/dashboards/urbanpulse.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    # Grafana gets exactly the variables its data source file interpolates
    datasource = next((tmp_path / "provisioning/datasources").iterdir()).read_text()
    assert set(services["grafana"]["environment"]) == set(re.findall(r"\$\{(\w+)\}", datasource)) == {
        "URBANPULSE_GRAFANA__DB_HOST", "URBANPULSE_GRAFANA__DB_PASSWORD"}


def test_compose_substitutions_are_not_taken_for_misspelt_settings() -> None:
    """Compose's own ``${URBANPULSE_...}`` variables are known, so the CLI does not warn about them."""
    text = (ROOT / "docker-compose.yml").read_text()
    substituted = set(re.findall(r"\$\{(URBANPULSE_[A-Z_]+?)(?::-[^}]*)?\}", text))
    assert substituted == COMPOSE_VARIABLES
    assert unknown_variables(dict.fromkeys(substituted, "x")) == []


def test_the_database_is_published_on_this_machine_only() -> None:
    """Its superuser's password has a default: published on every interface, anyone on the network could try it
    (the security review). The services reach it on the compose network; devices need the broker, people Grafana."""
    services = compose()["services"]
    assert services["timescale"]["ports"] == ["127.0.0.1:5432:5432"]
    assert services["mosquitto"]["ports"] == ["1883:1883"]
