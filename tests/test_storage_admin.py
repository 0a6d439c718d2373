"""The read-only Grafana role, ``status`` and ``export``, on both backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from test_storage_backend import HOUR, NOW, air, backend, ispeed, store, write

from urbanpulse.ingest.export import export
from urbanpulse.ingest.maintain import maintain
from urbanpulse.ingest.rollups import VIEWS
from urbanpulse.ingest.status import status

__all__ = ["backend", "store"]  # fixtures
pytestmark = pytest.mark.integration

WRITES = [
    "INSERT INTO air_readings SELECT * FROM air_readings LIMIT 1",
    "UPDATE air_readings SET pm25 = 0",
    "DELETE FROM air_readings",
    "TRUNCATE air_readings",
    "INSERT INTO air_aqi_1h_store SELECT * FROM air_aqi_1h_store",
    "DELETE FROM traffic_typical_speed",
    "CREATE TABLE public.grafana_was_here (x int)",
    "CREATE VIEW grafana_view AS SELECT 1",
    "DROP VIEW air_hourly",
    "ALTER TABLE air_readings ADD COLUMN x int",
    "SELECT secret_hash FROM devices",
    "SELECT * FROM storage_config",
    "SELECT * FROM dead_letters",
]
MAINTENANCE = {"postgres": "SELECT readings_drop_partitions('air_readings', now())",
               "timescaledb": "SELECT drop_chunks('air_readings', now())"}


def test_grafana_role_reads_and_cannot_write(store: str, backend: str) -> None:
    write(store, [air("air-1", NOW - k * HOUR) for k in range(5)] + [ispeed("sp-1", NOW - HOUR, 30.0)])
    maintain(store)
    with psycopg.connect(store) as conn:
        role = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'urbanpulse_grafana'").fetchone()
        assert role == (False,)
        conn.execute("SET ROLE urbanpulse_grafana")
        for view in (*VIEWS, "air_readings", "traffic_readings", "ispeed_readings"):
            conn.execute(f"SELECT * FROM {view} WHERE true LIMIT 5").fetchall()
        assert conn.execute("SELECT count(*) FROM air_hourly").fetchone() == (5,)
        for statement in [*WRITES, MAINTENANCE[backend]]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)  # type: ignore[arg-type]


def test_sessions_run_without_jit(store: str) -> None:
    """Migration 014: the rollup views' estimated cost would trigger JIT, which costs more than their plans."""
    with psycopg.connect(store) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)
        settings = conn.execute(
            "SELECT setconfig FROM pg_db_role_setting JOIN pg_roles r ON r.oid = setrole"
            " WHERE r.rolname = 'urbanpulse_grafana'").fetchone()
        assert settings is not None
        assert "jit=off" in settings[0]


def test_status_describes_the_storage(store: str, backend: str) -> None:
    write(store, [air("air-1", NOW - k * HOUR) for k in range(60)])
    if backend == "timescaledb":
        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute("SELECT compress_chunk(c)"
                         " FROM show_chunks('air_readings', older_than => now() - interval '1 day') c")
    maintain(store)
    text = "\n".join(status(store))
    assert f"backend: {backend}" in text
    assert "air_readings: 60 rows" in text
    if backend == "timescaledb":
        assert "in the columnstore, compression ratio" in text
        assert "ratio n/a" not in text.split("\n")[2]
    else:
        assert "default with 0 rows" in text
    assert "rollup air_device_1h" in text or backend == "timescaledb"
    assert "rollup air_aqi_1h" in text
    assert "ingest horizon: consumers wait for ingest transactions only" in text
    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute("ALTER TABLE ingest_batches DISABLE TRIGGER ingest_batches_mark")
    assert "ingest horizon: the server's oldest transaction (trigger ingest_batches_mark missing" in "\n".join(
        status(store))


def test_export_writes_parquet_and_csv(store: str, tmp_path: Path) -> None:
    write(store, [air("air-1", NOW - k * HOUR) for k in range(10)])
    n = export(store, "air", NOW - 5 * HOUR, NOW + timedelta(seconds=1), "parquet", tmp_path / "air.parquet")
    frame = pl.read_parquet(tmp_path / "air.parquet")
    assert n == frame.height == 6
    assert frame["time"].is_sorted()
    assert "pm25" in frame.columns
    assert export(store, "air_hourly", NOW - 24 * HOUR, NOW, "csv", tmp_path / "h.csv") == 9
    assert pl.read_csv(tmp_path / "h.csv").height == 9
    assert export(store, "traffic", NOW - HOUR, NOW, "csv", tmp_path / "none.csv") == 0
    # every view it offers exports (a view without a time column whole: it used to fail on `bucket`)
    for view in VIEWS:
        assert export(store, view, NOW - 24 * HOUR, NOW, "csv", tmp_path / f"{view}.csv") >= 0, view
    with pytest.raises(ValueError, match="nothing to export"):
        export(store, "devices", NOW - HOUR, NOW, "csv", tmp_path / "x.csv")


def test_cli_maintain_status_and_export(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from urbanpulse.cli import app  # noqa: PLC0415

    write(store, [air("air-1", NOW - k * HOUR) for k in range(4)])
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", store)
    monkeypatch.setenv("URBANPULSE_STORAGE__AIR_RETENTION", "P30D")
    runner = CliRunner()
    done = runner.invoke(app, ["db", "maintain"])
    assert done.exit_code == 0, done.output
    assert "air_aqi: " in done.output
    shown = runner.invoke(app, ["db", "status"])
    assert "air_retention=30 days" in " ".join(shown.output.split())  # the environment's retention is in force
    out = tmp_path / "air.csv"
    hi = (NOW + HOUR).isoformat()
    exported = runner.invoke(app, ["export", "--kind", "air", "--from", (NOW - 10 * HOUR).isoformat(), "--to", hi,
                                   "--out", str(out), "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    assert pl.read_csv(out).height == 4
    refused = runner.invoke(app, ["export", "--kind", "devices", "--from", NOW.isoformat(), "--to", hi,
                                  "--out", str(out)])
    assert refused.exit_code == 2
    assert "nothing to export" in refused.output
    backwards = runner.invoke(app, ["export", "--kind", "air", "--from", hi, "--to", NOW.isoformat(),
                                    "--out", str(out)])
    assert backwards.exit_code == 2
    assert "must be before --to" in backwards.output


def test_a_changed_storage_setting_is_said(store: str) -> None:
    """maintain from a shell without the production variables puts the defaults back in force: said, not silent;
    a fixed key that differs is said to be ignored."""
    from urbanpulse.ingest.config import write_config  # noqa: PLC0415
    from urbanpulse.settings import StorageSettings  # noqa: PLC0415

    with psycopg.connect(store, autocommit=True) as conn:
        assert write_config(conn, StorageSettings(air_retention=timedelta(days=3650))) == [
            "air_retention: 365 days -> 3650 days (URBANPULSE_STORAGE__AIR_RETENTION, or its default)"]
        assert write_config(conn, StorageSettings(air_retention=timedelta(days=3650))) == []  # nothing new
        assert write_config(conn, StorageSettings(air_chunk_interval=timedelta(hours=6),
                                                  air_retention=timedelta(days=3650))) == [
            "air_chunk_interval stays 1 day: fixed when the schema was created"
            " (URBANPULSE_STORAGE__AIR_CHUNK_INTERVAL=6 hours ignored)"]
        assert write_config(conn, StorageSettings(air_chunk_interval=timedelta(hours=6)), fixed_too=False) == [
            "air_retention: 3650 days -> 365 days (URBANPULSE_STORAGE__AIR_RETENTION, or its default)"]


def test_the_storage_job_logs_each_run(store: str, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio  # noqa: PLC0415

    from urbanpulse.ingest.maintain import maintain_every  # noqa: PLC0415
    from urbanpulse.settings import StorageSettings  # noqa: PLC0415

    async def one_run() -> None:
        stop = asyncio.Event()
        job = asyncio.create_task(maintain_every(store, StorageSettings(), stop))
        for _ in range(600):
            if "storage maintenance done in" in caplog.text:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(job, 30)

    with caplog.at_level("INFO", logger="urbanpulse.ingest"):
        asyncio.run(one_run())
    line = next(r.getMessage() for r in caplog.records if "storage maintenance done in" in r.getMessage())
    assert "backend: " in line
    assert "traffic typical speed: " in line


def test_the_storage_job_deletes_old_dead_letters(store: str) -> None:
    """Refused messages past STORAGE__DEAD_LETTER_RETENTION are deleted (they were kept for ever: a device sending
    garbage could fill the disk); younger ones stay."""
    from urbanpulse.ingest import maintain as job  # noqa: PLC0415
    from urbanpulse.settings import StorageSettings  # noqa: PLC0415

    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute("DELETE FROM dead_letters")
        conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason, batch_id)"
                      " SELECT now() - make_interval(days => d), 't', '\\x00', 'r', 0"
                      " FROM generate_series(1, 5) AS d, generate_series(1, 3)")
    old = job.DEAD_LETTER_BATCH
    job.DEAD_LETTER_BATCH = 4  # several batches
    try:
        report = maintain(store, StorageSettings(dead_letter_retention=timedelta(days=2, hours=12)))
    finally:
        job.DEAD_LETTER_BATCH = old
    assert report.dead_letters_deleted == 9  # 3 a day, days 3 to 5
    assert "dead letters: 9 past their retention deleted" in report.lines()
    with psycopg.connect(store) as conn:
        row = conn.execute("SELECT count(*), max(now() - received_at) FROM dead_letters").fetchone()
    assert row is not None
    assert row[0] == 6
    assert row[1] < timedelta(days=2, hours=12)
