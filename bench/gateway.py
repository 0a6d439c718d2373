"""Gateway throughput against its ceilings, measured in one run on this machine.

    python bench/gateway.py [--messages 30000] [--packs 2000] [--repeat 3] [--workers 2] [--worker-packs 6000]

Every figure drains a backlog: the subscriber's persistent session is created first, the messages
are published (QoS 1) while it is away, then it reconnects and we time until it is done. So the
publisher's speed does not enter the figures. Each figure's session is ended once it is drained, so the
broker does not queue (and, every second, persist) a copy of the next figures' backlogs for it.

- ceiling: a bare paho subscriber (auto-ack) that only parses each payload's JSON;
- gateway, one reading per message: broker -> gateway -> committed rows (one worker);
- gateway, SenML packs of 50 readings: likewise;
- packs alike through ``--workers`` gateway processes (default 2) on one shared subscription, each
  in its own process as ``urbanpulse gateway --workers N`` runs them: ``--worker-packs`` (default
  6,000: 300,000 readings), so that the drain is sustained, not a second or so in which the processes'
  start is a large share;
- raw COPY: the same readings as rows, binary COPY into a bare copy of the table (no index, no key);
- CPU per reading of the workers' drain: user + system time of the gateway processes, of PostgreSQL
  (postmaster and backends) and of the broker over the drain, from /proc; and the readings a second
  the machine's cores would give if those three had them to themselves (a figure that drifts less
  with the shared machine's speed than the wall-clock ones, which also count waits).

Medians of ``--repeat`` runs; ratios against the ceiling and against raw COPY, each the median of the
runs' own ratios (the shared machine's speed drifts between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from operator import sub
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

from urbanpulse.contract import Kind, reading_topic
from urbanpulse.gateway.parse import parse_message
from urbanpulse.gateway.service import Gateway, tune_gc
from urbanpulse.gateway.sessions import end_session, retire
from urbanpulse.ingest.columns import table_columns
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import MosquittoServer, PostgresServer
from urbanpulse.settings import BrokerSettings, DatabaseSettings, GatewaySettings, Settings
from urbanpulse.sim.city import fleet
from urbanpulse.sim.signals import reading

Payloads = list[tuple[str, bytes]]
Servers = tuple[int, int]  # process ids of PostgreSQL and the broker


def single_payloads(count: int, start: datetime) -> Payloads:
    devices = fleet(100, seed=3, kinds=(Kind.TRAFFIC,))
    import random  # noqa: PLC0415

    rng = random.Random(3)
    out = []
    for i in range(count):
        device = devices[i % len(devices)]
        body = reading(device, start + timedelta(seconds=10 * (i // len(devices))), i, rng)
        out.append((reading_topic(device.kind, device.device_id), json.dumps(body).encode()))
    return out


def senml_payloads(packs: int, per_pack: int, start: datetime) -> Payloads:
    devices = fleet(100, seed=4, kinds=(Kind.TRAFFIC,))
    out = []
    for p in range(packs):
        device = devices[p % len(devices)]
        base = start + timedelta(seconds=10 * per_pack * (p // len(devices)))
        records: list[dict[str, object]] = []
        for i in range(per_pack):
            t = 10 * i
            records += [
                {"n": "vehicle_count", "u": "count", "v": 40 + i % 7, "t": t},
                {"n": "interval_s", "u": "s", "v": 60, "t": t},
                {"n": "speed_kmh", "u": "km/h", "v": 35.5, "t": t},
                {"n": "occupancy_pct", "u": "%", "v": 12.0, "t": t},
                {"n": "seq", "v": p * per_pack + i, "t": t},
            ]
        records[0] = {"bn": f"urn:dev:urbanpulse:{device.device_id}:", "bt": base.timestamp(), **records[0]}
        out.append((reading_topic(device.kind, device.device_id), json.dumps(records).encode()))
    return out


def publish_backlog(port: int, payloads: Payloads) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def bare_paho_drain(port: int, payloads: Payloads) -> float:
    """Seconds a bare paho subscriber needs to receive and json-parse the backlog."""
    done = threading.Event()
    count = 0
    started = 0.0

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count
        json.loads(message.payload)
        count += 1
        if count == len(payloads):
            done.set()

    def session(clean: bool) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv311, clean_session=clean
        )
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        return client

    first = session(clean=True)
    first.disconnect()
    first = session(clean=False)
    first.subscribe("urbanpulse/v1/+/+", qos=1)
    first.loop(1.0)
    first.disconnect()
    publish_backlog(port, payloads)
    client = session(clean=False)
    started = time.perf_counter()
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    session(clean=True).disconnect()  # no session left to take a copy of the later phases' backlogs
    return elapsed


def gateway_drain(settings: Settings, payloads: Payloads, readings: int) -> float:
    """Seconds from the gateway's reconnect until every reading of the backlog is committed."""

    async def once(wait_for: Callable[[Gateway], bool]) -> float:
        stop = asyncio.Event()
        async with Gateway(settings) as gateway:
            task = asyncio.create_task(gateway.run(stop))
            await gateway.subscribed.wait()
            started = time.perf_counter()
            while not wait_for(gateway):  # noqa: ASYNC110 - polling the counters is the measurement
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            stop.set()
            await task
        return elapsed

    asyncio.run(once(lambda g: True))  # creates the session
    publish_backlog(settings.broker.port, payloads)
    elapsed = asyncio.run(once(lambda g: g.stats.readings_stored + g.stats.duplicates >= readings))
    # End the session (nor here: it takes a copy of the later figures' backlogs). Should it still hold
    # messages (seen once: readings already stored, a copy queued twice or an acknowledgement that did
    # not arrive), retiring stores them, as duplicates, before ending it.
    left = asyncio.run(retire(settings, settings.gateway.client_id))
    if left.messages:
        print(f"  (sent again after the drain: {left.messages} messages, {left.duplicates} duplicates)", flush=True)
    assert end_session(settings, settings.gateway.client_id)  # ended by retire: this one was new and empty
    return elapsed


def _worker(settings: Settings, worker: int, ready: Synchronized, stop: Event, done: Synchronized) -> None:  # type: ignore[type-arg]
    """One gateway process of ``workers_drain``: its subscription time (``time.time()``) into ``ready``,
    readings stored (or found stored) into ``done``."""
    tune_gc()

    async def main() -> None:
        stopping = asyncio.Event()
        async with Gateway(settings, worker=worker) as gateway:
            task = asyncio.create_task(gateway.run(stopping))
            await gateway.subscribed.wait()
            ready.value = time.time()
            while not stop.is_set():
                done.value = gateway.stats.readings_stored + gateway.stats.duplicates
                await asyncio.sleep(0.005)
            stopping.set()  # a clean stop, as on SIGTERM: no write cancelled half-way
            await task

    asyncio.run(main())


def cpu_seconds(*groups: Iterable[int]) -> list[float]:
    """User and system CPU seconds so far of each group of processes (given by pid) and their children
    (a server's backends), from one pass over Linux's /proc; processes gone count nothing."""
    wanted = [set(group) for group in groups]
    totals = [0] * len(wanted)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm)": state ppid pgrp ...
        pid, parent = int(stat.parent.name), int(fields[1])
        for k, group in enumerate(wanted):
            if pid in group or parent in group:
                totals[k] += int(fields[11]) + int(fields[12])  # utime, stime
    return [ticks / os.sysconf("SC_CLK_TCK") for ticks in totals]


def workers_drain(
    settings: Settings, payloads: Payloads, readings: int, workers: int, servers: Servers
) -> tuple[float, dict[str, float]]:
    """Seconds from the moment the first of ``workers`` gateway processes on one shared subscription is
    subscribed until every reading of the backlog is committed (``urbanpulse gateway --workers N``); and
    the CPU seconds the workers, PostgreSQL and the broker spent meanwhile."""
    shared = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"share_group": "bench", "client_id": "bench-gw"})}
    )
    context = multiprocessing.get_context("spawn")

    def once(wait: bool) -> float:
        ready = [context.Value("d", 0.0) for _ in range(workers)]
        stop = context.Event()
        done = [context.Value("q", 0) for _ in range(workers)]
        procs = [context.Process(target=_worker, args=(shared, i, ready[i], stop, done[i])) for i in range(workers)]
        for proc in procs:
            proc.start()
        deadline = time.time() + 60
        while not any(r.value for r in ready) and time.time() < deadline:
            time.sleep(0.002)
        gateways = [p.pid for p in procs if p.pid is not None]
        before = cpu_seconds(gateways, *([pid] for pid in servers))
        while not all(r.value for r in ready) and time.time() < deadline:
            time.sleep(0.005)
        while wait and sum(d.value for d in done) < readings:
            time.sleep(0.005)
        elapsed = time.time() - min(r.value for r in ready)
        after = cpu_seconds(gateways, *([pid] for pid in servers))
        stop.set()
        for proc in procs:
            proc.join(30)
        return elapsed, dict(zip(("gateway", "postgres", "broker"), map(sub, after, before), strict=True))

    once(wait=False)  # creates the sessions
    publish_backlog(settings.broker.port, payloads)
    return once(wait=True)


def raw_copy(dsn: str, payloads: Payloads) -> tuple[float, int]:
    """Seconds to COPY the readings of ``payloads`` (as rows) into a bare table; and the row count."""
    now = datetime.now(UTC)
    rows = []
    for topic, payload in payloads:
        parsed = parse_message(topic, payload, now)
        rows += [[*r.__dict__.values(), now, 0] for r in parsed.readings]
    columns = table_columns(Kind.TRAFFIC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bare_traffic")
        conn.execute("CREATE UNLOGGED TABLE bare_traffic (LIKE traffic_readings)")
        conn.execute("ALTER TABLE bare_traffic SET LOGGED")
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor().copy(
                "COPY bare_traffic (" + ", ".join(c.name for c in columns) + ") FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types([c.pg_type for c in columns])
            for row in rows:
                copy.write_row(row)
        return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--packs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gateway processes for the shared-subscription figure")
    parser.add_argument(
        "--worker-packs", type=int, default=6000, help="packs of the shared-subscription figure (a sustained drain)"
    )
    parser.add_argument("--default-gc", action="store_true", help="keep Python's GC settings (not the gateway's)")
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()  # as `urbanpulse gateway` does; the bare paho subscriber runs in this process too
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    figures: dict[str, list[float]] = {"bare": [], "single": [], "senml": [], "workers": [], "copy": []}
    figures |= {"cpu gateway": [], "cpu postgres": [], "cpu broker": []}  # us per reading, worker drain
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            with PostgresServer(Path(tmp) / f"pg{run}") as pg, MosquittoServer(Path(tmp) / f"mq{run}") as mq:
                migrate(pg.dsn)
                settings = Settings(
                    broker=BrokerSettings(port=mq.port),
                    database=DatabaseSettings(dsn=pg.dsn),
                    gateway=GatewaySettings(
                        spool_dir=Path(tmp) / f"spool{run}", metrics_port=None, require_registration=False
                    ),
                )
                singles = single_payloads(args.messages, start)
                packs = senml_payloads(args.packs, 50, start - timedelta(days=1))
                figures["bare"].append(len(singles) / bare_paho_drain(mq.port, singles))
                figures["single"].append(len(singles) / gateway_drain(settings, singles, len(singles)))
                figures["senml"].append(args.packs * 50 / gateway_drain(settings, packs, args.packs * 50))
                packs = senml_payloads(args.worker_packs, 50, start - timedelta(days=1.5))
                readings = args.worker_packs * 50
                drained, cpu = workers_drain(settings, packs, readings, args.workers, (pg.pid or 0, mq.pid or 0))
                figures["workers"].append(readings / drained)
                for name, seconds in cpu.items():
                    figures[f"cpu {name}"].append(seconds / readings * 1e6)
                seconds, rows = raw_copy(pg.dsn, singles)
                figures["copy"].append(rows / seconds)
            rates = ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items() if not k.startswith("cpu"))
            cpus = ", ".join(f"{k[4:]} {v[-1]:.1f}" for k, v in figures.items() if k.startswith("cpu"))
            print(f"run {run + 1}: {rates}; CPU us/reading of the worker drain: {cpus}", flush=True)
    med = {k: statistics.median(v) for k, v in figures.items()}

    def ratio(a: str, b: str) -> float:
        """Median of the runs' own ratios: each run's figures were taken minutes apart at most, while the
        shared machine's speed drifts by up to 2x between runs."""
        return statistics.median(x / y for x, y in zip(figures[a], figures[b], strict=True))

    print(f"\nmedians of {args.repeat} runs (readings/s; ratios: medians of each run's ratio):")
    print(f"  bare paho subscriber, parse only (ceiling) {med['bare']:>12,.0f} msg/s")
    print(
        f"  gateway, 1 reading per message            {med['single']:>12,.0f}   "
        f"{ratio('single', 'bare'):.2f} x ceiling, {ratio('single', 'copy'):.2f} x raw COPY"
    )
    print(
        f"  gateway, SenML packs of 50                {med['senml']:>12,.0f}   "
        f"{ratio('senml', 'bare'):.2f} x ceiling, {ratio('senml', 'copy'):.2f} x raw COPY"
    )
    print(
        f"  gateway, SenML packs of 50, {args.workers} workers     {med['workers']:>12,.0f}   "
        f"{ratio('workers', 'senml'):.2f} x one worker, {ratio('workers', 'copy'):.2f} x raw COPY"
    )
    print(f"  raw binary COPY into a bare table         {med['copy']:>12,.0f}")
    cpu = {k[4:]: med[k] for k in med if k.startswith("cpu")}
    cores, total = os.cpu_count() or 1, sum(cpu.values())
    print(
        f"  CPU per reading, {args.workers}-worker drain (medians): "
        + ", ".join(f"{k} {v:.1f} us" for k, v in cpu.items())
        + f"; {cores} cores / {total:.1f} us = {cores / total * 1e6:,.0f} readings/s if nothing else ran"
    )


if __name__ == "__main__":
    main()
