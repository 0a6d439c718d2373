"""Fixtures: real PostgreSQL and Mosquitto servers from the system binaries, in temp dirs on free ports.

- ``pg_cluster``: one PostgreSQL for the session; ``database`` gives each test a fresh, migrated
  database in it (fast).
- ``pg_server``: a PostgreSQL of the test's own, for fault tests that stop, kill and restart it.
- ``broker``: a Mosquitto of the test's own (starts in milliseconds).
- ``secured``: a Mosquitto of the test's own on the registry's password and ACL files (``secured_broker``).
- ``filled``: for the dashboards' tests, one database per backend for the session, with 8 days of history
  (``dashboard_db``; the TimescaleDB case skips unless the servers preload it).

Set ``URBANPULSE_TEST_PG_PRELOAD=timescaledb`` to start the servers with that library preloaded
(the TimescaleDB path; the extension must be installed for the server's PostgreSQL version).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from dashboard_db import Filled
from secured_broker import GATEWAY, GATEWAY_SECRET, Secured, start_broker

from urbanpulse.dashboards.sample import fill
from urbanpulse.gateway.broker_files import service_account, write_broker_files
from urbanpulse.gateway.registry import add_device, spec
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import BrokerSettings, DatabaseSettings, GatewaySettings, Settings, StorageSettings

_counter = itertools.count()
TIMESCALE = "timescaledb" in os.environ.get("URBANPULSE_TEST_PG_PRELOAD", "")


def _pg_conf() -> dict[str, str]:
    preload = os.environ.get("URBANPULSE_TEST_PG_PRELOAD")
    if not preload:
        return {}
    return {"shared_preload_libraries": preload, "timescaledb.telemetry_level": "off"}


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path_factory.mktemp("pg-cluster"), extra_conf=_pg_conf()) as server:
        yield server


def fresh_database(server: PostgresServer, name: str) -> str:
    """Create database ``name`` in ``server``, migrate it and return its DSN."""
    dsn = server.create_database(name)
    migrate(dsn)
    return dsn


@pytest.fixture
def database(pg_cluster: PostgresServer) -> str:
    """DSN of a fresh, migrated database for this test."""
    return fresh_database(pg_cluster, f"t{os.getpid()}_{next(_counter)}")


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (to stop, kill and restart), already migrated."""
    server = PostgresServer(tmp_path / "pg", extra_conf=_pg_conf())
    server.start()
    migrate(server.dsn)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def make_settings(dsn: str, broker: MosquittoServer, **gateway: object) -> Settings:
    return Settings(
        broker=BrokerSettings(port=broker.port),
        database=DatabaseSettings(dsn=dsn),
        # registration is tested on its own (test_gateway_identity.py); elsewhere any device may publish
        gateway=GatewaySettings(**{"retry_seconds": 0.2, "metrics_port": None, "require_registration": False,
                                   **gateway}),  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(database: str, broker: MosquittoServer) -> Settings:
    return make_settings(database, broker)


@pytest.fixture(scope="session", params=["postgres", "timescaledb"])
def filled(request: pytest.FixtureRequest, pg_cluster: PostgresServer) -> Filled:
    """A database with 8 days of the simulator's history, rollups, events and incidents, per backend."""
    if request.param == "timescaledb" and not TIMESCALE:
        pytest.skip("TimescaleDB case: run with URBANPULSE_TEST_PG_PRELOAD=timescaledb")
    dsn = pg_cluster.create_database(f"dash{os.getpid()}_{next(_counter)}")
    migrate(dsn, StorageSettings(backend=request.param))
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    return Filled(dsn, str(request.param), fill(dsn, end))


@pytest.fixture
def secured(database: str, tmp_path: Path) -> Iterator[Secured]:
    """A broker on the registry's files (three devices, the gateway's account), closed with its clients."""
    with psycopg.connect(database) as conn:
        secrets = {d: add_device(conn, spec(device_id=d, kind=k)) for d, k in
                   [("air-1", "air"), ("air-2", "air"), ("tr-1", "traffic")]}
    folder = tmp_path / "broker"
    with psycopg.connect(database) as conn:  # the files first: the broker reads them at start
        write_broker_files(conn, folder, [service_account("gateway", GATEWAY, GATEWAY_SECRET)])
    state = Secured(start_broker(folder), database, folder, secrets, [])
    try:
        yield state
    finally:
        for client in state.clients:
            client.close()
        state.server.kill()
