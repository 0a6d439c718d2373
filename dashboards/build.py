"""Write Grafana's provisioning layout: the data source, the dashboard provider and the dashboards.

::

    <out_dir>/provisioning/datasources/urbanpulse.yaml   -> /etc/grafana/provisioning/datasources/
    <out_dir>/provisioning/dashboards/urbanpulse.yaml    -> /etc/grafana/provisioning/dashboards/
    <out_dir>/dashboards/<folder>/<uid>.json             -> /var/lib/grafana/dashboards/<folder>/

The provider takes Grafana folders from the sub-folders (``foldersFromFilesStructure``): FOLDERS below.
The data source logs in as the read-only role ``urbanpulse_grafana`` (migrations 008 and 011).

Grafana interpolates environment variables in provisioning YAML (``$VAR``, ``${VAR}``,
``$__env{VAR}``, ``$__file{path}``; ``$$`` is a literal ``$``) -- but has no ``${VAR:-default}``
form, so defaults belong to whoever starts Grafana (docker-compose's ``environment:``). Dashboard
JSON is never interpolated, so it names the data source by its fixed uid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.model import Dashboard
from urbanpulse.dashboards.render import dashboard_json, dumps
from urbanpulse.dashboards.sqlquery import DATASOURCE_TYPE, DATASOURCE_UID
from urbanpulse.settings import Settings

DASHBOARDS_PATH = "/var/lib/grafana/dashboards"
READ_ONLY_ROLE = "urbanpulse_grafana"
# Grafana folder (a sub-folder of DASHBOARDS_PATH) of each dashboard; the rest go to OPERATIONS.
OPERATIONS = "urbanpulse operations"
FOLDERS = {"urbanpulse-platform": "urbanpulse platform"}
# Expanded by Grafana from its environment: GrafanaSettings' names (the password is the same variable
# urbanpulse reads for --grant-login; the host is the database as Grafana's network sees it).
ENV_HOST = "URBANPULSE_GRAFANA__DB_HOST"
ENV_PASSWORD = "URBANPULSE_GRAFANA__DB_PASSWORD"  # noqa: S105 - the variable's name, not a password
POSTGRES_VERSION = 1500  # PostgreSQL 15: enables the data source's 12+ features


def database_name(settings: Settings) -> str:
    """The database named by ``settings.database.dsn`` (libpq defaults to the user name)."""
    parts = conninfo_to_dict(settings.database.dsn)
    name = parts.get("dbname") or parts.get("user")
    return str(name) if name else "urbanpulse"


def datasource_config(settings: Settings, *, timescaledb: bool = False) -> dict[str, Any]:
    """The data-source provisioning document."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "urbanpulse",
                "type": DATASOURCE_TYPE,
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": f"${{{ENV_HOST}}}",
                "user": READ_ONLY_ROLE,
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "database": database_name(settings),
                    "sslmode": settings.grafana.db_sslmode,
                    "postgresVersion": POSTGRES_VERSION,
                    "timescaledb": timescaledb,
                },
                "secureJsonData": {"password": f"${{{ENV_PASSWORD}}}"},
            }
        ],
    }


def provider_config() -> dict[str, Any]:
    """The dashboard-provider provisioning document: every JSON file under the mounted folder, one Grafana
    folder per sub-folder."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "urbanpulse",
                "orgId": 1,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": True},
            }
        ],
    }


def _yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def dashboard_filename(board: Dashboard) -> str:
    """Where ``board`` goes under ``dashboards/``: its folder, then its uid."""
    return f"{FOLDERS.get(board.uid, OPERATIONS)}/{board.uid}.json"


def grant_login(dsn: str, password: str) -> None:
    """Let the read-only role log in with ``password`` (it is created ``NOLOGIN`` by migration 008)."""
    statement = sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(READ_ONLY_ROLE), sql.Literal(password))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


def detect_timescaledb(dsn: str) -> bool:
    """Whether the migrated database at ``dsn`` stores readings in TimescaleDB (``storage_config``)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT value FROM storage_config WHERE key = 'backend_in_use'").fetchone()
    return row is not None and row[0] == "timescaledb"


def build(out_dir: Path, settings: Settings, *, timescaledb: bool = False) -> list[Path]:
    """Write the provisioning files and dashboards under ``out_dir``; return the paths written.

    ``timescaledb`` sets the data source's TimescaleDB switch (``$__timeGroup`` then uses
    ``time_bucket``). Existing files are overwritten; nothing else in ``out_dir`` is touched.
    """
    written = [
        _write(out_dir / "provisioning" / "datasources" / "urbanpulse.yaml",
               _yaml(datasource_config(settings, timescaledb=timescaledb))),
        _write(out_dir / "provisioning" / "dashboards" / "urbanpulse.yaml", _yaml(provider_config())),
    ]
    for board in panels.DASHBOARDS:
        written.append(_write(out_dir / "dashboards" / dashboard_filename(board), dumps(dashboard_json(board))))
    return written
