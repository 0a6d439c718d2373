"""``urbanpulse up`` as an operator runs it (a child process, its own PostgreSQL and Mosquitto in a temp folder):
it rides out its database and its broker being killed, starts them again, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from urbanpulse.localstack import free_port

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def stored(dsn: str) -> int:
    """Readings stored, or -1 while the database cannot be reached."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT (SELECT count(*) FROM air_readings) + (SELECT count(*) FROM traffic_readings)"
                               " + (SELECT count(*) FROM ispeed_readings)").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else -1


def pid_in(path: Path) -> int:
    return int(path.read_text().split("\n", 1)[0].strip())


def test_up_starts_its_killed_database_and_broker_again(tmp_path: Path) -> None:
    data, pg_port = tmp_path / "data", free_port()
    dsn = f"postgresql://urbanpulse@127.0.0.1:{pg_port}/urbanpulse"
    env = {**os.environ, "URBANPULSE_DATA_DIR": str(data), "URBANPULSE_DATABASE__DSN": dsn,
           "URBANPULSE_BROKER__PORT": str(free_port()), "URBANPULSE_GATEWAY__METRICS_PORT": "0",
           "URBANPULSE_GATEWAY__RETRY_SECONDS": "0.5"}
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen([sys.executable, "-c", "from urbanpulse.cli import main; main()", "up", "--devices", "2",
                               "--duration", "120"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: stored(dsn) > 0, 90, "readings stored")
        os.kill(pid_in(data / "postgres" / "pgdata" / "postmaster.pid"), signal.SIGKILL)
        eventually(lambda: "PostgreSQL exited" in log.read_text(), 15, "the database's death noticed")
        eventually(lambda: stored(dsn) >= 0, 60, "the database started again")
        restarted = stored(dsn)
        eventually(lambda: stored(dsn) > restarted, 30, "readings stored after the database's restart")
        assert up.poll() is None, log.read_text()

        os.kill(pid_in(data / "mosquitto" / "mosquitto.pid"), signal.SIGKILL)
        eventually(lambda: "Mosquitto is back" in log.read_text(), 30, "the broker started again")
        time.sleep(2.0)  # what was on its way before the kill is stored by now
        after_broker = stored(dsn)
        eventually(lambda: stored(dsn) > after_broker, 60, "readings stored through the restarted broker")
        assert up.poll() is None, log.read_text()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
    text = log.read_text()
    assert code == 0, text
    assert "PostgreSQL is back" in text
    assert "Mosquitto is back" in text
    assert "stopped cleanly" in text
    assert "Traceback" not in text


def test_a_second_stack_takes_free_ports(tmp_path: Path) -> None:
    """With the database's, the broker's and the gateway's metrics port taken (another `up` in another folder),
    the local servers and the gateway get free ones, and say which (the metrics port was not: `up` failed)."""
    import io  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from urbanpulse.settings import Settings  # noqa: PLC0415
    from urbanpulse.stack import local_servers  # noqa: PLC0415

    taken = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    pg, mq, metrics = (s.getsockname()[1] for s in taken)
    settings = Settings(data_dir=tmp_path / "data", database={"dsn": f"postgresql://urbanpulse@127.0.0.1:{pg}/up"},
                        broker={"port": mq}, gateway={"metrics_port": metrics})  # type: ignore[arg-type]
    said = io.StringIO()
    try:
        with local_servers(settings, Console(file=said, width=200)) as (running, _):
            assert running.gateway.metrics_port not in (None, metrics)
            assert running.broker.port != mq
            assert f"({metrics} is taken)" in said.getvalue()
            assert f"gateway metrics on 127.0.0.1:{running.gateway.metrics_port}" in said.getvalue()
    finally:
        for s in taken:
            s.close()


def test_a_second_stack_on_one_folder_is_refused_before_it_says_it_starts(tmp_path: Path) -> None:
    """The refusal comes first: not "starting PostgreSQL ..." and then that another one runs there."""
    import io  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from urbanpulse.localstack import MosquittoServer, ServerError  # noqa: PLC0415
    from urbanpulse.settings import Settings  # noqa: PLC0415
    from urbanpulse.stack import local_servers  # noqa: PLC0415

    said = io.StringIO()
    with MosquittoServer(tmp_path / "data" / "mosquitto"), pytest.raises(ServerError, match="already runs on"), \
            local_servers(Settings(data_dir=tmp_path / "data"), Console(file=said, width=200)):  # the first's broker
        pass
    assert said.getvalue() == ""
    assert not (tmp_path / "data" / "postgres").exists()
