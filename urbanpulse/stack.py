"""``urbanpulse up``: the whole chain on one machine, no Docker needed.

Starts its own PostgreSQL and Mosquitto from the system binaries in ``data_dir``, whose data they keep
from one run to the next (or uses the configured ones), migrates, then runs gateway, analytics, the
storage job and the live simulator in one event loop and shows live counts (a line every 10 s when
the output is not a terminal) until Ctrl-C, after which everything stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.live import Live
from rich.table import Table

from urbanpulse.ingest.maintain import maintain_every
from urbanpulse.ingest.migrate import migrate
from urbanpulse.ingest.problems import first_line
from urbanpulse.localstack import MosquittoServer, PostgresServer, free_port
from urbanpulse.settings import Settings

COUNT_SQL = """
SELECT (SELECT count(*) FROM air_readings), (SELECT count(*) FROM traffic_readings),
       (SELECT count(*) FROM ispeed_readings), (SELECT count(*) FROM dead_letters),
       (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE status <> 'resolved'),
       (SELECT count(*) FROM incidents WHERE status <> 'resolved'), (SELECT max(received_at) FROM air_readings)
"""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


Server = PostgresServer | MosquittoServer


@contextlib.contextmanager
def local_servers(settings: Settings, console: Console) -> Iterator[tuple[Settings, tuple[Server, ...]]]:
    """Start PostgreSQL and Mosquitto under ``settings.data_dir``; yield settings pointing at them, and them."""
    data_dir = settings.data_dir.absolute()
    pg_port = int(conninfo_to_dict(settings.database.dsn).get("port") or 5432)
    mq_port = settings.broker.port
    pg_port = pg_port if _port_free(pg_port) else free_port()
    mq_port = mq_port if _port_free(mq_port) else free_port()
    postgres = PostgresServer(Path(data_dir) / "postgres", port=pg_port)
    mosquitto = MosquittoServer(Path(data_dir) / "mosquitto", port=mq_port)
    for server in (postgres, mosquitto):  # refused before anything is said to start
        server.refuse_if_in_use()
    console.print(f"[bold]starting {postgres.label}[/] in {postgres.data_dir} on 127.0.0.1:{pg_port}", soft_wrap=True)
    postgres.start()
    try:
        console.print(f"[bold]starting {mosquitto.label}[/] in {mosquitto.data_dir} on 127.0.0.1:{mq_port}",
                      soft_wrap=True)
        mosquitto.start()
        metrics_port = settings.gateway.metrics_port
        if metrics_port and not _port_free(metrics_port):  # another `up`'s gateway, say: as for the servers' ports
            metrics_port = free_port()
            console.print(f"gateway metrics on 127.0.0.1:{metrics_port} ({settings.gateway.metrics_port} is taken)",
                          soft_wrap=True)
        try:
            yield settings.model_copy(update={
                "database": settings.database.model_copy(update={"dsn": postgres.dsn}),
                "broker": settings.broker.model_copy(update={"host": "127.0.0.1", "port": mq_port}),
                "gateway": settings.gateway.model_copy(update={"metrics_port": metrics_port}),
            }), (postgres, mosquitto)
        finally:
            mosquitto.stop()
    finally:
        postgres.stop()


COUNTS = ("air", "traffic", "ispeed", "dead letters", "events", "open events", "open incidents", "published")
LOG_SECONDS = 10.0  # how often `up` writes a line of counts when its output is not a terminal
RESTART_SECONDS = 10.0  # a local server that exited is started again at most this often


def _counts_table(row: tuple[object, ...] | None, sim_published: int, elapsed: float, problem: str | None) -> Table:
    title = f"urbanpulse local stack — {elapsed:.0f} s (Ctrl-C to stop)"
    table = Table(title=title, caption=problem and f"[red]{problem}[/]")
    for column in COUNTS:
        table.add_column(column, justify="right")
    table.add_row(*(str(v) for v in row[:7]) if row else ["-"] * 7, str(sim_published))
    return table


def _counts_line(row: tuple[object, ...] | None, sim_published: int, elapsed: float, problem: str | None) -> str:
    """The counts as one line, for a log: ``12 s: air 480, traffic 480, ...``."""
    if row is None:
        return f"{elapsed:.0f} s: {problem}, published {sim_published}"
    return f"{elapsed:.0f} s: " + ", ".join(f"{name} {value}" for name, value in zip(COUNTS, (*row[:7], sim_published),
                                                                                     strict=True))


class _Counts:
    """The tables' counts, on a connection opened again after an outage (the stack itself rides it out)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self.problem: str | None = None

    async def read(self) -> tuple[object, ...] | None:
        """The counts, or None while the database cannot be reached (``problem`` says why)."""
        try:
            if self.conn is None:
                self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=3)
            row = await (await self.conn.execute(COUNT_SQL)).fetchone()
        except psycopg.OperationalError as exc:
            self.problem = f"database unavailable ({first_line(exc)}): the gateway spools, nothing accepted is lost"
            await self.close()
            return None
        self.problem = None
        return tuple(row) if row is not None else None

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self.conn.close()
            self.conn = None


async def _revive(servers: tuple[Server, ...], last_start: dict[int, float], console: Console) -> None:
    """Start again a local server that exited (killed, crashed), at most every RESTART_SECONDS each."""
    loop = asyncio.get_running_loop()
    for n, server in enumerate(servers):
        if server.running or loop.time() - last_start.get(n, -math.inf) < RESTART_SECONDS:
            continue
        name = server.label
        console.print(f"[red]{name} exited[/] (its log: {server.log}): starting it again", highlight=False,
                      soft_wrap=True)
        last_start[n] = loop.time()
        try:
            await asyncio.to_thread(server.start)
        except Exception as exc:  # any failure to start is told, and tried again later
            console.print(f"[red]{name} did not start[/]: {exc}", highlight=False, soft_wrap=True)
        else:
            console.print(f"{name} is back (pid {server.pid})", highlight=False)


async def run_stack(settings: Settings, console: Console, duration: float | None = None,
                    servers: tuple[Server, ...] = ()) -> None:
    """Run gateway, analytics and simulator until Ctrl-C (or ``duration`` seconds); ``servers`` (the local
    ones) are started again if they exit."""
    from urbanpulse.analytics.service import Analytics  # noqa: PLC0415 - heavy (numba) import
    from urbanpulse.gateway.service import Gateway  # noqa: PLC0415
    from urbanpulse.sim.city import fleet  # noqa: PLC0415
    from urbanpulse.sim.live import LiveStats, run_live  # noqa: PLC0415
    from urbanpulse.sim.register import register_fleet  # noqa: PLC0415

    registered = register_fleet(settings.database.dsn, fleet(settings.sim.devices_per_kind, settings.sim.seed))
    if registered:
        console.print(f"registered {len(registered)} simulated devices in the device registry")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim_stats = LiveStats()
    started = loop.time()
    counts, last_start = _Counts(settings.database.dsn), dict[int, float]()
    async with Gateway(settings) as gateway, Analytics(settings) as analytics:
        tasks = [
            asyncio.create_task(gateway.run(stop)),
            asyncio.create_task(analytics.run(stop)),
            asyncio.create_task(run_live(settings.simulator_broker(), settings.sim, stop, stats=sim_stats)),
            asyncio.create_task(maintain_every(settings.database.dsn, settings.storage, stop)),
        ]
        # a live table on a terminal; into a file or a pipe, a line of counts every LOG_SECONDS
        shown = Live(console=console, refresh_per_second=2) if console.is_terminal else contextlib.nullcontext()
        try:
            with shown as live:
                logged = -math.inf
                while not stop.is_set():
                    await _revive(servers, last_start, console)
                    row = await counts.read()
                    elapsed = loop.time() - started
                    if live is not None:
                        live.update(_counts_table(row, sim_stats.published, elapsed, counts.problem))
                    elif elapsed - logged >= LOG_SECONDS:
                        console.print(_counts_line(row, sim_stats.published, elapsed, counts.problem),
                                      highlight=False, soft_wrap=True)
                        logged = elapsed
                    if duration is not None and elapsed >= duration:
                        stop.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:  # whatever ended the loop, the gateway flushes its last batch before the servers stop
            stop.set()
            await counts.close()
            console.print("stopping: flushing the gateway's last batch ...")
            await asyncio.gather(*tasks)
    console.print("[green]stopped cleanly[/]")


def up(settings: Settings, console: Console, *, external: bool, duration: float | None) -> None:
    if external:
        migrate(settings.database.dsn, settings.storage)
        asyncio.run(run_stack(settings, console, duration))
        return
    with local_servers(settings, console) as (local, servers):
        migrate(local.database.dsn, local.storage)
        console.print(f"database: {local.database.dsn}\nbroker:   mqtt://127.0.0.1:{local.broker.port}")
        asyncio.run(run_stack(local, console, duration, servers))
