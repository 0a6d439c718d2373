"""A device cannot take the gateway's MQTT session: with a services' listener (``broker config --service-port``),
a device's client id is its user name. Without one, a device that connects under the gateway's client id
disconnects the gateway and takes over its session (the security review of 2026-12-01: queued readings lost)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from secured_broker import GATEWAY, GATEWAY_SECRET, Mqtt, start_broker

from urbanpulse.contract import reading_topic
from urbanpulse.gateway.broker_files import broker_config, service_account, write_broker_files
from urbanpulse.gateway.registry import add_device, spec
from urbanpulse.localstack import free_port

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
