"""The console script tells an operator's mistakes and outages in one line, with an exit status."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from urbanpulse.cli import main
from urbanpulse.cli_errors import explain
from urbanpulse.localstack import MosquittoServer, PostgresServer, ServerError, free_port


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["urbanpulse", *argv])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), capsys.readouterr().err


def test_a_setting_that_does_not_parse_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("URBANPULSE_GATEWAY__BATCH_SIZE", "abc")
    code, err = run(monkeypatch, capsys, "events", "list")
    assert code == 2
    assert "URBANPULSE_GATEWAY__BATCH_SIZE='abc'" in err
    assert "Traceback" not in err


def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", f"postgresql://ops:s3cret@127.0.0.1:{free_port()}/city")
    code, err = run(monkeypatch, capsys, "events", "list")
    assert code == 1
    assert "cannot reach the database at" in err
    assert "URBANPULSE_DATABASE__DSN" in err
    assert "s3cret" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dsn", ["not-a-dsn", "ops:s3cret@127.0.0.1:5432/city"])
@pytest.mark.parametrize("command", [("events", "list"), ("db", "status"), ("gateway",), ("analytics",)])
def test_a_connection_string_libpq_cannot_read_is_a_setting_mistake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dsn: str, command: tuple[str, ...]
) -> None:
    """Refused when the settings are read, before any command connects (a traceback, or for the gateway a retry
    for ever, before), and without repeating the string, which may hold a password."""
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", dsn)
    code, err = run(monkeypatch, capsys, *command)
    assert code == 2
    assert "URBANPULSE_DATABASE__DSN: not a libpq connection string" in err
    assert "s3cret" not in err
    assert "Traceback" not in err


def test_a_timestamp_that_does_not_parse_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\nnot-a-time,2\n")
    code, err = run(monkeypatch, capsys, "detect", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    assert code == 2
    assert "line 3: timestamp 'not-a-time' does not parse" in err
    assert "Traceback" not in err
    code, err = run(monkeypatch, capsys, "detect", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "out.csv"))
    assert code == 2
    assert "does not exist" in err


@pytest.mark.integration
@pytest.mark.parametrize("argv", [("events", "list"), ("db", "maintain"), ("devices", "list")])
def test_a_database_that_is_not_migrated_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_cluster: PostgresServer,
    argv: tuple[str, ...],
) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", pg_cluster.create_database(f"bare{os.getpid()}"))
    code, err = run(monkeypatch, capsys, *argv)
    assert code == 1
    assert err.startswith("error: the database is not migrated (run `urbanpulse db migrate` first)")
    assert "Traceback" not in err


@pytest.mark.integration
def test_a_database_that_does_not_exist_is_a_setting_mistake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_cluster: PostgresServer
) -> None:
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", pg_cluster.dsn.rsplit("/", 1)[0] + "/urbanpulsx")
    code, err = run(monkeypatch, capsys, "events", "list")
    assert code == 2
    assert "the database refused the connection at" in err
    assert 'database "urbanpulsx" does not exist' in err


def test_a_data_folder_that_cannot_be_one_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("URBANPULSE_DATA_DIR", str(tmp_path / "afile"))
    spool = tmp_path / "afile" / "spool" / "urbanpulse-gateway"
    message, code = explain(NotADirectoryError(20, "Not a directory", str(spool))) or ("", 0)
    assert code == 2
    assert message.endswith(f"(URBANPULSE_DATA_DIR={tmp_path / 'afile'})")
    assert explain(NotADirectoryError(20, "Not a directory", "/elsewhere")) == (
        "[Errno 20] Not a directory: '/elsewhere'", 1)


@pytest.mark.integration
def test_sql_errors_of_a_migrated_database_are_bugs(
    pg_cluster: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing function or table in a migrated database, or a savepoint that does not exist, is a bug: its
    traceback is kept (they read "not migrated" and "the database refused the connection")."""
    import psycopg  # noqa: PLC0415

    from urbanpulse.ingest.migrate import migrate  # noqa: PLC0415

    dsn = pg_cluster.create_database(f"migrated{os.getpid()}")
    migrate(dsn)
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in ("SELECT now(1)", "SELECT * FROM no_such_table", "ROLLBACK TO SAVEPOINT nope"):
            with pytest.raises(psycopg.Error) as failed, conn.transaction():
                conn.execute(statement)  # type: ignore[arg-type]
            assert explain(failed.value) is None, statement


def test_two_consumers_of_one_checkpoint_are_told_apart() -> None:
    from urbanpulse.analytics.store import CheckpointConflictError  # noqa: PLC0415

    message, code = explain(CheckpointConflictError("checkpoint 'ewma' was moved by another consumer")) or ("", 0)
    assert code == 1
    assert message.endswith("one `urbanpulse analytics` runs per checkpoint; stop the other one, or give this one"
                            " another URBANPULSE_ANALYTICS__CHECKPOINT_NAME")


@pytest.mark.integration
def test_a_pool_timeout_is_told_with_the_servers_answer(pg_cluster: PostgresServer) -> None:
    """The gateway's pool only says it got no connection in time; the log line says why (no such database)."""
    import asyncio  # noqa: PLC0415

    from psycopg_pool import PoolTimeout  # noqa: PLC0415

    from urbanpulse.ingest.problems import database_problem  # noqa: PLC0415

    dsn = pg_cluster.dsn.rsplit("/", 1)[0] + "/no_such_database"
    why = asyncio.run(database_problem(PoolTimeout("couldn't get a connection after 5.00 sec"), dsn))
    assert 'database "no_such_database" does not exist' in why


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ZeroDivisionError

    monkeypatch.setattr("urbanpulse.cli.app", broken)
    with pytest.raises(ZeroDivisionError):
        main()


@pytest.mark.integration
def test_a_second_local_server_on_the_same_folder_is_refused_clearly(pg_cluster: PostgresServer) -> None:
    """``urbanpulse up`` twice in one folder: the second is told the first runs, not shown postgres' log."""
    with pytest.raises(ServerError, match=r"another PostgreSQL \(pid \d+\) already runs on .*URBANPULSE_DATA_DIR"):
        PostgresServer(pg_cluster.data_dir).start()
    assert explain(ServerError("x")) == ("x", 1)


@pytest.mark.integration
def test_a_second_local_broker_on_the_same_folder_is_refused_clearly(tmp_path: Path) -> None:
    """Two brokers on one folder would share one persistence file; a stale pid file (a killed broker) is not in
    the way."""
    with MosquittoServer(tmp_path / "mq") as first:
        with pytest.raises(ServerError, match=r"another Mosquitto \(pid \d+\) already runs on .*URBANPULSE_DATA_DIR"):
            MosquittoServer(tmp_path / "mq").start()
        assert first.running
        first.kill()
    assert (tmp_path / "mq" / "mosquitto.pid").exists()  # left behind by the kill
    with MosquittoServer(tmp_path / "mq") as again:
        assert again.running
        # a stale pid file whose pid is now another folder's broker (the system's, after a reboot): not refused
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "mosquitto.pid").write_text(f"{again.pid}\n")
        with MosquittoServer(tmp_path / "other") as other:
            assert other.running


def test_a_stale_pid_file_naming_another_program_is_left_to_postgres(tmp_path: Path) -> None:
    """After a crash the pid in ``postmaster.pid`` may belong to another program by now: not refused."""
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")  # this Python
    PostgresServer(tmp_path).refuse_if_in_use()


def test_a_timeout_keeps_its_traceback() -> None:
    assert explain(TimeoutError()) is None
    assert explain(OSError(98, "address in use")) == ("[Errno 98] address in use", 1)
