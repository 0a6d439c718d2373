"""Self-monitoring: Prometheus metrics and a health check over plain HTTP.

``GET /metrics`` serves the gateway's Prometheus metrics (prometheus-client's text format) and
``GET /healthz`` answers 200 while the gateway is connected to the broker and its last database write
succeeded (or it has not needed one), 503 otherwise, with a one-line JSON body saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector


class _StatsCollector(Collector):
    """Reads the gateway's counters at scrape time: GatewayStats stays the one place they live."""

    def __init__(self, read: Callable[[], Mapping[str, object]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        stats = self._read()
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(f"urbanpulse_gateway_{name}", help_text, value=float(stats[name]))  # type: ignore[arg-type]
        rejections = CounterMetricFamily("urbanpulse_gateway_rejections", "Dead letters by field", labels=["field"])
        for field_name, count in dict(stats["rejections"]).items():  # type: ignore[call-overload]
            rejections.add_metric([field_name], float(count))
        yield rejections
        for name, help_text in GAUGES.items():
            yield GaugeMetricFamily(f"urbanpulse_gateway_{name}", help_text, value=float(stats[name]))  # type: ignore[arg-type]


COUNTERS = {
    "messages": "MQTT messages received",
    "readings_accepted": "Readings that passed validation",
    "readings_stored": "Readings new to the database",
    "duplicates": "Redelivered readings that were stored before",
    "dead_letters": "Messages or readings refused",
    "batches": "Batches committed",
    "write_retries": "Failed database writes that were retried",
    "acked": "Messages acknowledged to the broker",
    "reconnects": "Broker reconnections",
    "spooled": "Messages written to the on-disk spool",
    "replayed": "Messages replayed from the spool",
}
GAUGES = {
    "spool_bytes": "Bytes waiting in the spool",
    "spool_files": "Batches waiting in the spool",
    "unacked": "Messages received, not yet acknowledged",
}


class GatewayMetrics:
    """The gateway's Prometheus registry: its counters, plus batch size and write latency histograms."""

    def __init__(self, read_stats: Callable[[], Mapping[str, object]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(read_stats))
        self.batch_size = Histogram(
            "urbanpulse_gateway_batch_readings",
            "Readings per committed batch",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "urbanpulse_gateway_write_seconds",
            "Batch commit latency",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve(
    metrics: GatewayMetrics, health: Callable[[], tuple[bool, str]], host: str, port: int
) -> asyncio.Server:
    """Start the HTTP endpoint; the caller owns the returned server (close it to stop)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/metrics"):
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
            elif path.startswith("/healthz"):
                ok, why = health()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps({"ok": ok, "detail": why}).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
