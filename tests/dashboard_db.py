"""The dashboards' test database and how Grafana queries it: shared by the panel tests.

``filled`` (a fixture of ``conftest.py``, one per backend for the session) is 8 days of the simulator's
history for a small fleet in two provinces (``dashboards.sample``), with rollups, events and incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from urbanpulse.dashboards.macros import expand
from urbanpulse.dashboards.sample import Sample

Columns = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Filled:
    dsn: str
    backend: str
    sample: Sample


def run(conn: psycopg.Connection[Any], sql: str) -> tuple[Columns, list[tuple[Any, ...]]]:
    cur = conn.execute(sql.encode())
    assert cur.description is not None
    columns = []
    for column in cur.description:
        info = psycopg.postgres.types.get(column.type_code)
        columns.append((column.name, info.name if info else str(column.type_code)))
    return columns, cur.fetchall()


def grafana(dsn: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET ROLE urbanpulse_grafana")
    return conn


def every_place_and_device(filled: Filled) -> dict[str, list[str]]:
    """The variables province, district, device and network on "All" of the sample."""
    devices = filled.sample.devices
    return {"province": sorted({d.province.name for d in devices}),
            "district": sorted({d.district.name for d in devices}),
            "device": sorted(d.device_id for d in devices), "network": ["4G", "5G"]}


def rows_of(filled: Filled, sql: str, span: timedelta, interval: timedelta) -> list[tuple[Any, ...]]:
    """A panel query over the last ``span`` at Grafana interval ``interval``, everything chosen, as Grafana's role."""
    end = filled.sample.end
    with grafana(filled.dsn) as conn:
        return run(conn, expand(sql, time_from=end - span, time_to=end, interval=interval,
                                variables=every_place_and_device(filled)))[1]


def assert_same_rows(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], keys: int = 2) -> None:
    assert len(got) >= 5
    assert [r[:keys] for r in got] == [r[:keys] for r in expected]
    assert [r[keys:] for r in got] == [pytest.approx(r[keys:], nan_ok=True) for r in expected]
