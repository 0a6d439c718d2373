"""How the services meet a production broker. A device cannot take the gateway's MQTT session: with a services'
listener (``broker config --service-port``), a device's client id is its user name; without one, a device that
connects under the gateway's client id disconnects the gateway and takes over its session (the security review
of 2026-12-01: queued readings lost). And the services connect over TLS, checking the broker's certificate."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import make_settings
from secured_broker import GATEWAY, GATEWAY_SECRET, Mqtt, Secured, start_broker, tls_broker

from urbanpulse.contract import reading_topic
from urbanpulse.gateway.broker_files import broker_config, service_account, write_broker_files
from urbanpulse.gateway.registry import add_device, spec
from urbanpulse.gateway.service import Gateway
from urbanpulse.localstack import free_port
from urbanpulse.settings import BrokerSettings

pytestmark = pytest.mark.integration

GATEWAY_ID = "urbanpulse-gateway"  # the gateway's default client id (URBANPULSE_GATEWAY__CLIENT_ID)


@pytest.mark.parametrize("separate", [False, True])
def test_a_device_under_the_gateways_client_id(database: str, tmp_path: Path, separate: bool) -> None:
    with psycopg.connect(database) as conn:
        secret = add_device(conn, spec(device_id="air-1", kind="air"))
        folder = tmp_path / "broker"
        write_broker_files(conn, folder, [service_account("gateway", GATEWAY, GATEWAY_SECRET)])
    service_port = free_port() if separate else None
    server = start_broker(folder, service_port=service_port)
    clients: list[Mqtt] = []
    try:
        gateway = Mqtt(service_port or server.port, GATEWAY, GATEWAY_SECRET, client_id=GATEWAY_ID)
        clients.append(gateway)
        assert gateway.accepted
        gateway.subscribe("urbanpulse/v1/#")
        device = Mqtt(server.port, "air-1", secret, client_id=GATEWAY_ID)  # its own secret, the gateway's id
        clients.append(device)
        assert device.accepted
        if not separate:  # the broker hands the gateway's session to the device
            assert gateway.disconnected.wait(5)
            return
        assert not gateway.disconnected.wait(1.0)
        assert device.publish(reading_topic("air", "air-1"), b"still the gateway's") == 0
        assert gateway.until(reading_topic("air", "air-1"), b"still the gateway's")
    finally:
        for client in clients:
            client.close()
        server.kill()


def test_the_services_listener_in_the_configuration(tmp_path: Path) -> None:
    text = broker_config(password_file=tmp_path / "p", acl_file=tmp_path / "a", data_dir=tmp_path, port=1883,
                         service_port=1884)
    assert "listener 1883\n# A device's client id is its user name" in text
    assert "use_username_as_clientid true" in text
    assert text.rstrip().count("listener ") == 2
    assert "listener 1884 127.0.0.1" in text
    assert "use_username_as_clientid" not in broker_config(password_file=tmp_path / "p", acl_file=tmp_path / "a",
                                                           data_dir=tmp_path)


def test_the_gateway_connects_over_tls(secured: Secured, tmp_path: Path) -> None:
    """``URBANPULSE_BROKER__TLS_CA_FILE`` and the TLS port: the gateway checks the broker's certificate and stores
    a device's reading sent over TLS (the services had no TLS settings: the security review)."""
    ca, tls_port = tls_broker(secured, tmp_path)
    settings = make_settings(secured.dsn, secured.server, require_registration=True).model_copy(update={
        "broker": BrokerSettings(port=tls_port, username=GATEWAY, password=GATEWAY_SECRET, tls_ca_file=ca)})
    assert settings.broker.ssl_context() is not None

    device = Mqtt(tls_port, "air-1", secured.secrets["air-1"], tls_ca=ca)  # a device over TLS too
    secured.clients.append(device)
    assert device.accepted

    async def run() -> int:
        stop = asyncio.Event()
        async with Gateway(settings) as gateway:
            task = asyncio.create_task(gateway.run(stop))
            await asyncio.wait_for(gateway.subscribed.wait(), 20)
            reading = {"device_id": "air-1", "time": datetime.now(UTC).isoformat(), "seq": 1, "pm25": 12.0,
                       "pm10": 20.0, "temperature": 28.0, "humidity": 70.0}
            code = await asyncio.to_thread(device.publish, reading_topic("air", "air-1"), json.dumps(reading).encode())
            assert code == 0
            for _ in range(200):
                if gateway.stats.readings_stored:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
            return gateway.stats.readings_stored

    assert asyncio.run(run()) == 1
    other_ca = tmp_path / "other.pem"  # a broker whose certificate this CA did not sign is refused
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)], check=True, capture_output=True)
    context = BrokerSettings(port=tls_port, tls_ca_file=other_ca).ssl_context()
    assert context is not None
    with socket.create_connection(("127.0.0.1", tls_port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
