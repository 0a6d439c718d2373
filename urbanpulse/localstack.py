"""PostgreSQL and Mosquitto servers of our own, run from the system binaries in a folder of ours.

``urbanpulse up`` runs its local stack on these (their data kept in its folder from one run to the
next), and the tests start throwaway ones in temp dirs on free ports so fault tests can stop, kill
and restart them. Each server is a context manager that owns its
process: leaving the block stops it.

PostgreSQL refuses to run as root; when we are root the server runs as the ``postgres`` system user
(created by Debian's ``postgresql`` package) and its data folder is handed to that user.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg


class ServerError(RuntimeError):
    """A local server could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_bindir() -> Path:
    """The folder of PostgreSQL's server binaries (newest installed major version)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    msg = "PostgreSQL server binaries not found: install Debian's 'postgresql' package"
    raise ServerError(msg)


def _command_line(pid: int) -> list[str] | None:
    """Process ``pid``'s arguments, program first (none while it is between fork and exec); ``None`` when
    ``/proc`` does not say (no such process, or no ``/proc``)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def program_name(pid: int) -> str | None:
    """The file name of process ``pid``'s program (``postgres``, ``mosquitto``; ``""`` while it has none),
    or ``None`` when ``/proc`` does not say (no such process, or no ``/proc``)."""
    argv = _command_line(pid)
    return None if argv is None else Path(argv[0]).name if argv else ""


def _refuse_if_running(pid_file: Path, program: str, label: str, folder: Path) -> None:
    """A clear error when ``pid_file`` names a live ``program`` started on ``folder``; a stale file whose pid
    another process took (even one of the same program: the system's broker, after a reboot) is ignored."""
    with contextlib.suppress(OSError, ValueError):  # none, unreadable
        pid = int(pid_file.read_text().split("\n", 1)[0].strip())
        argv = _command_line(pid)
        if argv and Path(argv[0]).name == program and any(str(folder) in arg for arg in argv[1:]):
            msg = (f"another {label} (pid {pid}) already runs on {folder}: is a local stack already up? Stop it "
                   "first, or give this one another folder (URBANPULSE_DATA_DIR)")
            raise ServerError(msg)


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a child as ``user`` with that user's own group only."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": [], "cwd": "/"}


class ChildProcess:
    """A server process in its own process group, so kill() takes its children along."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: Sequence[str], log: Path, user: str | None, env: Mapping[str, str] | None = None) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, **_as_user(user)
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal(self, sig: signal.Signals, wait: float = 30.0) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class PostgresServer:
    """A PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port`` (trust auth, loopback only).

    ``extra_conf`` adds ``-c name=value`` settings, e.g. ``shared_preload_libraries=timescaledb``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        database: str = "urbanpulse",
        superuser: str = "urbanpulse",
        extra_conf: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.database = database
        self.superuser = superuser
        self.extra_conf = dict(extra_conf or {})
        self._process = ChildProcess()
        self._run_as = "postgres" if os.geteuid() == 0 else None

    label = "PostgreSQL"

    @property
    def log(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{self.database}"

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        """The server's process id (PostgreSQL's backends are its children)."""
        return self._process.pid

    def _own(self, path: Path) -> None:
        if self._run_as is None:
            return
        entry = pwd.getpwnam(self._run_as)
        for node in [path, *path.rglob("*")]:
            os.chown(node, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        for parent in self.data_dir.parents:  # the server user must be able to reach its folder
            if parent.stat().st_mode & 0o005 != 0o005 and self._run_as:
                os.chmod(parent, parent.stat().st_mode | 0o005)
        self._own(self.data_dir)
        subprocess.run(
            [str(postgres_bindir() / "initdb"), "-D", str(self.data_dir / "pgdata"), "-U", self.superuser,
             "--auth=trust", "--encoding=UTF8", "--no-locale"],
            check=True, capture_output=True, **_as_user(self._run_as),
        )

    def refuse_if_in_use(self) -> None:
        """A clear ServerError when another server already runs on this folder (``start`` checks it too)."""
        _refuse_if_running(self.data_dir / "pgdata" / "postmaster.pid", "postgres", self.label, self.data_dir)

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the cluster if needed, start the server and wait until it takes connections."""
        if self.running:
            return
        if not (self.data_dir / "pgdata" / "PG_VERSION").exists():
            self._initdb()
        self.refuse_if_in_use()
        conf = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            "fsync": "on",
            "max_connections": "200",
            **self.extra_conf,
        }
        argv = [str(postgres_bindir() / "postgres"), "-D", str(self.data_dir / "pgdata")]
        for name, value in conf.items():
            argv += ["-c", f"{name}={value}"]
        log = self.log
        log.touch()
        self._own(log)
        self._process.spawn(argv, log, self._run_as)
        self._wait_ready(timeout)
        self._ensure_database()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                tail = self.log.read_text(errors="replace")[-2000:]
                msg = f"postgres exited during start-up:\n{tail}"
                raise ServerError(msg)
            try:
                with psycopg.connect(self._dsn_for("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        msg = f"postgres did not accept connections within {timeout} s"
        raise ServerError(msg)

    def _dsn_for(self, database: str) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` in this server, empty (an older one of that name is dropped); its DSN."""
        with psycopg.connect(self._dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self._dsn_for(name)

    def _ensure_database(self) -> None:
        with psycopg.connect(self._dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, committed data is kept."""
        self._process.signal(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL the server and its backends, as a crash would."""
        self._process.signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def mosquitto_binary() -> Path:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    msg = "mosquitto not found: install Debian's 'mosquitto' package"
    raise ServerError(msg)


class MosquittoServer:
    """A Mosquitto broker in ``data_dir`` listening on 127.0.0.1:``port``.

    Persistence saves every second and the per-client queue limits are raised, so a gateway's
    persistent session keeps its whole backlog while the gateway is away (Mosquitto's default of
    1000 queued messages silently drops the rest). ``extra_lines`` are appended to the config.
    ``config`` replaces the whole generated config (it must listen on 127.0.0.1:``port``), e.g. one
    with authentication from ``urbanpulse.gateway.broker_files.broker_config``.
    """

    def __init__(
        self, data_dir: Path, port: int | None = None, extra_lines: Sequence[str] = (), config: str | None = None
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.extra_lines = list(extra_lines)
        self.config = config
        self._process = ChildProcess()

    label = "Mosquitto"

    @property
    def log(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        """The broker's process id."""
        return self._process.pid

    def config_text(self) -> str:
        if self.config is not None:
            return self.config
        lines = [
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "max_packet_size 1048576",
            f"pid_file {self.data_dir}/mosquitto.pid",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            *self.extra_lines,
        ]
        return "\n".join(lines) + "\n"

    def refuse_if_in_use(self) -> None:
        """A clear ServerError when another broker already runs on this folder (they would share one
        persistence file); ``start`` checks it too."""
        _refuse_if_running(self.data_dir / "mosquitto.pid", "mosquitto", self.label, self.data_dir)

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        self.refuse_if_in_use()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self._process.spawn([str(mosquitto_binary()), "-c", str(conf)], self.log, None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                tail = self.log.read_text(errors="replace")[-2000:]
                msg = f"mosquitto exited during start-up:\n{tail}"
                raise ServerError(msg)
            if _port_open(self.port):
                return
            time.sleep(0.05)
        msg = f"mosquitto did not listen on {self.port} within {timeout} s"
        raise ServerError(msg)

    def stop(self) -> None:
        """Clean shutdown (SIGTERM): Mosquitto saves its persistence file."""
        self._process.signal(signal.SIGTERM)

    def kill(self) -> None:
        self._process.signal(signal.SIGKILL)

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its config, password and ACL files (and TLS certificates).

        The signal is handled asynchronously; a caller that needs the new files in force polls for it.
        """
        proc = self._process.proc
        if proc is None or proc.poll() is not None:
            msg = "mosquitto is not running"
            raise ServerError(msg)
        proc.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
