"""``urbanpulse gateway`` stopped as a supervisor stops it (docker sends SIGTERM): it finishes and exits 0, its
workers with it; a worker that cannot start stops the gateway instead of leaving half of it running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_local_stack import eventually

from urbanpulse.localstack import MosquittoServer, free_port

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """The processes ``pid`` started, from /proc."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@contextmanager
def gateway(tmp_path: Path, database: str, broker: MosquittoServer, *args: str,
            metrics_port: int = 0) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    env = {**os.environ, "URBANPULSE_DATABASE__DSN": database, "URBANPULSE_BROKER__PORT": str(broker.port),
           "URBANPULSE_DATA_DIR": str(tmp_path / "data"), "URBANPULSE_GATEWAY__METRICS_PORT": str(metrics_port),
           "URBANPULSE_GATEWAY__REQUIRE_REGISTRATION": "false"}
    log = tmp_path / "gateway.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from urbanpulse.cli import main; main()", "gateway", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        for pid in [proc.pid, *children(proc.pid)]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_the_gateway_and_its_workers(tmp_path: Path, database: str, broker: MosquittoServer,
                                                    workers: int) -> None:
    with gateway(tmp_path, database, broker, "--workers", str(workers)) as (proc, log):
        eventually(lambda: log.read_text().count("subscribed to") == workers, 60, f"{workers} subscribed")
        started = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        text = log.read_text()
        assert code == 0, text
        assert "Traceback" not in text
        eventually(lambda: not any(alive(pid) for pid in started), 10, "no worker left running")


def test_a_worker_that_cannot_start_stops_the_gateway(tmp_path: Path, database: str, broker: MosquittoServer) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), \
            gateway(tmp_path, database, broker, "--workers", "2", metrics_port=port) as (proc, log):
        started = time.monotonic()
        code = proc.wait(60)  # worker 0's metrics port is in use; worker 1's (port + 1) is free
        text = log.read_text()
        assert code == 1, text
        assert time.monotonic() - started < 45
        assert re.search(r"error: gateway worker \d: \[Errno 98\]", text), text  # 0's (1's too if port + 1 is taken)
        assert "stopping the others" in text
        assert "Traceback" not in text


def test_a_worker_killed_by_a_signal_is_said_as_a_shell_says_it() -> None:
    from urbanpulse.cli import _status  # noqa: PLC0415

    assert [_status(code) for code in (None, 0, 1, 2, -9, -15)] == [0, 0, 1, 2, 137, 143]
