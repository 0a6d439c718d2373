"""``dashboards push`` through grafana-client against a stand-in for Grafana's HTTP API (Grafana cannot run
here): a loopback server implementing the few endpoints push uses, keeping what it is sent and recording
every call. A second push must only read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from grafana_client.api import GrafanaApi

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.push import FOLDER_UIDS, datasource_payload, push
from urbanpulse.settings import Settings


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.calls: list[tuple[str, str]] = []
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        assert isinstance(body, dict)
        return body

    def _route(self, method: str) -> None:
        path = self.path.split("?")[0]
        grafana = self.server
        grafana.calls.append((method, path))
        parts = path.strip("/").split("/")
        if method == "GET" and path.startswith("/api/datasources/uid/"):
            found = grafana.datasources.get(parts[-1])
            self._send(200, found) if found else self._send(404, {"message": "Data source not found"})
        elif method == "POST" and path == "/api/datasources":
            body = self._body()
            grafana.datasources[body["uid"]] = {k: v for k, v in body.items() if k != "secureJsonData"}
            self._send(200, {"message": "Datasource added", "id": 1})
        elif method == "PUT" and path.startswith("/api/datasources/uid/"):
            body = self._body()
            grafana.datasources[parts[-1]] = {k: v for k, v in body.items() if k != "secureJsonData"}
            self._send(200, {"message": "Datasource updated"})
        elif method == "GET" and path.startswith("/api/folders/"):
            found = grafana.folders.get(parts[-1])
            self._send(200, found) if found else self._send(404, {"message": "folder not found"})
        elif method == "POST" and path == "/api/folders":
            body = self._body()
            grafana.folders[body["uid"]] = body
            self._send(200, body)
        elif method == "GET" and path.startswith("/api/dashboards/uid/"):
            found = grafana.dashboards.get(parts[-1])
            self._send(200, found) if found else self._send(404, {"message": "Dashboard not found"})
        elif method == "POST" and path == "/api/dashboards/db":
            body = self._body()
            uid = body["dashboard"]["uid"]
            version = grafana.dashboards.get(uid, {}).get("dashboard", {}).get("version", 0) + 1
            grafana.dashboards[uid] = {"dashboard": {**body["dashboard"], "id": 7, "version": version},
                                       "meta": {"folderUid": body["folderUid"]}}
            self._send(200, {"status": "success", "uid": uid, "version": version})
        else:
            self._send(404, {"message": "not implemented by the stand-in"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def api(server: FakeGrafana) -> GrafanaApi:
    return GrafanaApi.from_url(f"http://127.0.0.1:{server.server_address[1]}", credential=("admin", "admin"))


def payload(timescaledb: bool = False) -> dict[str, Any]:
    return datasource_payload(Settings(), timescaledb=timescaledb, host="db:5432", password="secret")


def test_first_push_creates_everything(grafana: FakeGrafana) -> None:
    actions = push(api(grafana), payload())
    assert {(a.kind, a.done) for a in actions} == {("datasource", "created"), ("folder", "created"),
                                                   ("dashboard", "created")}
    assert sorted(grafana.dashboards) == sorted(b.uid for b in panels.DASHBOARDS)
    assert set(grafana.folders) == set(FOLDER_UIDS.values())
    ds = grafana.datasources["urbanpulse-pg"]
    assert ds["user"] == "urbanpulse_grafana"
    assert ds["url"] == "db:5432"
    assert grafana.dashboards["urbanpulse-platform"]["meta"]["folderUid"] == FOLDER_UIDS["urbanpulse platform"]


def test_second_push_only_reads(grafana: FakeGrafana) -> None:
    push(api(grafana), payload())
    grafana.calls.clear()
    actions = push(api(grafana), payload())
    assert {a.done for a in actions} == {"unchanged"}
    assert {method for method, _ in grafana.calls} == {"GET"}
    assert all(d["dashboard"]["version"] == 1 for d in grafana.dashboards.values())


def test_changed_datasource_is_updated_in_place(grafana: FakeGrafana) -> None:
    push(api(grafana), payload())
    grafana.calls.clear()
    actions = push(api(grafana), payload(timescaledb=True))
    assert [(a.kind, a.done) for a in actions if a.done != "unchanged"] == [("datasource", "updated")]
    assert ("PUT", "/api/datasources/uid/urbanpulse-pg") in grafana.calls
    assert grafana.datasources["urbanpulse-pg"]["jsonData"]["timescaledb"] is True


@pytest.mark.parametrize(("grafana_host", "expected"),
                         [("grafana-db:6432", "grafana-db:6432"), (None, "elsewhere:5433")])
def test_push_command_points_the_datasource_at_the_grafana_db_host(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, grafana_host: str | None, expected: str
) -> None:
    """``URBANPULSE_GRAFANA__DB_HOST`` (the database as Grafana's network sees it) is push's ``--db-host``;
    without it, the host of the DSN urbanpulse connects to."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from urbanpulse.cli import app  # noqa: PLC0415

    if grafana_host:
        monkeypatch.setenv("URBANPULSE_GRAFANA__DB_HOST", grafana_host)
    else:
        monkeypatch.delenv("URBANPULSE_GRAFANA__DB_HOST", raising=False)
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", "postgresql://urbanpulse@elsewhere:5433/urbanpulse")
    url = f"http://127.0.0.1:{grafana.server_address[1]}"
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url, "--no-timescaledb"])
    assert result.exit_code == 0, result.output
    assert "names no setting" not in result.output
    assert grafana.datasources["urbanpulse-pg"]["url"] == expected
