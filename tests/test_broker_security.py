"""A real Mosquitto run on the files generated from the registry: who may connect and publish where.

Each test starts its own broker with ``allow_anonymous false``, the password_file and acl_file written
by ``write_broker_files`` and a gateway account; devices and the gateway connect with paho.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from secured_broker import GATEWAY, GATEWAY_SECRET, NOT_AUTHORIZED, Mqtt, Secured, eventually, tls_broker
from typer.testing import CliRunner

from urbanpulse.cli import app
from urbanpulse.contract import reading_topic, status_topic
from urbanpulse.gateway.broker_files import (
    TlsFiles,
    acl_file_text,
    broker_config,
    password_file_text,
    reload_broker,
    service_account,
    simulator_account,
)
from urbanpulse.gateway.registry import hash_secret, rotate_secret, set_enabled, verify_secret
from urbanpulse.settings import Settings
from urbanpulse.sim.publisher import publish
from urbanpulse.sim.stream import SimMessage

pytestmark = pytest.mark.integration

def test_device_publishes_to_its_own_topic_and_the_gateway_receives(secured: Secured) -> None:
    gateway = secured.gateway("$share/gateways/urbanpulse/v1/+/+")  # the gateway's real subscription
    device = secured.connect("air-1", secured.secrets["air-1"])
    assert device.accepted
    assert device.publish(reading_topic("air", "air-1"), b"own") == 0
    assert device.publish(status_topic("air-1"), b"online") == 0
    assert device.publish(reading_topic("traffic", "air-1"), b"kind is the gateway's check") == 0
    assert gateway.until(reading_topic("traffic", "air-1"), b"kind is the gateway's check") == [
        (reading_topic("air", "air-1"), b"own"), (status_topic("air-1"), b"online"),
        (reading_topic("traffic", "air-1"), b"kind is the gateway's check")]


FORGED = [reading_topic("air", "air-2"), reading_topic("traffic", "tr-1"), status_topic("air-2"),
          "urbanpulse/v1/air/air-1/extra", "urbanpulse/v2/air/air-1", "elsewhere/air-1"]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_device_cannot_publish_as_another_device(secured: Secured, protocol: MQTTProtocolVersion) -> None:
    gateway = secured.gateway("#")
    for topic in FORGED:
        # Mosquitto 2.0.11 closes the connection of a client whose publish it denied: one client each.
        device = secured.connect("air-1", secured.secrets["air-1"], protocol=protocol)
        # MQTT 5: PUBACK 135 Not authorized. 3.1.1 has no reason codes: the broker drops it silently.
        assert device.publish(topic, b"forged") == (NOT_AUTHORIZED if protocol == mqtt.MQTTv5 else 0), topic
    sentinel = secured.connect("air-2", secured.secrets["air-2"], protocol=protocol)
    assert sentinel.publish(reading_topic("air", "air-2"), b"sentinel") == 0
    assert gateway.until(reading_topic("air", "air-2"), b"sentinel") == [(reading_topic("air", "air-2"), b"sentinel")]


def test_device_reads_nothing(secured: Secured) -> None:
    device = secured.connect("air-1", secured.secrets["air-1"])
    assert device.subscribe("urbanpulse/v1/#") == 1  # Mosquitto 2.0.11 grants it, then delivers nothing
    assert device.subscribe(reading_topic("air", "air-1")) == 1
    gateway = secured.gateway()
    for sender in ("air-1", "air-2"):
        client = secured.connect(sender, secured.secrets[sender])
        assert client.publish(reading_topic("air", sender), b"private") == 0
        assert gateway.until(reading_topic("air", sender), b"private")
    assert device.received(0.5) == []


def test_simulator_has_its_own_account_and_publishes_for_every_device(
    secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``broker files`` adds the simulator's account when it is configured; the simulator then publishes the
    fleet's readings over its one connection (the gateway's account, which it used before, may not publish)."""
    for name, value in {"DATABASE__DSN": secured.dsn, "BROKER__PORT": str(secured.server.port),
                        "BROKER__USERNAME": GATEWAY, "BROKER__PASSWORD": GATEWAY_SECRET,
                        "SIM__BROKER_USERNAME": "urbanpulse-sim", "SIM__BROKER_PASSWORD": "sim-secret"}.items():
        monkeypatch.setenv(f"URBANPULSE_{name}", value)
    done = CliRunner().invoke(app, ["broker", "files", "--broker-dir", str(secured.broker_dir),
                                    "--reload", str(secured.broker_dir / "mosquitto.pid")])
    assert done.exit_code == 0, done.output
    assert "user urbanpulse-sim\ntopic write urbanpulse/v1/#\n" in (secured.broker_dir / "acl").read_text()
    gateway = secured.gateway()
    sent = [SimMessage(reading_topic(kind, device), f"{device}-{n}".encode(), kind, device, None)
            for n in range(3) for device, kind in [("air-1", "air"), ("air-2", "air"), ("tr-1", "traffic")]]
    broker = Settings().simulator_broker()
    assert (broker.username, broker.port) == ("urbanpulse-sim", secured.server.port)
    report = asyncio.run(publish(sent, broker))
    assert len(report.acked) == len(sent)
    assert report.reconnects == 0
    assert sorted(gateway.until(sent[-1].topic, sent[-1].payload)) == sorted((m.topic, m.payload) for m in sent)
    reader = secured.connect("urbanpulse-sim", "sim-secret")
    assert reader.accepted
    reader.subscribe("urbanpulse/v1/#")
    device = secured.connect("air-1", secured.secrets["air-1"])
    assert device.publish(reading_topic("air", "air-1"), b"private") == 0
    assert gateway.until(reading_topic("air", "air-1"), b"private")
    assert reader.received(0.5) == []  # it writes, it reads nothing


def test_simulator_account_needs_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_SIM__BROKER_USERNAME", "urbanpulse-sim")
    with pytest.raises(ValueError, match="set both or neither"):
        Settings()
    monkeypatch.setenv("URBANPULSE_SIM__BROKER_PASSWORD", "")
    with pytest.raises(ValueError, match="must not be empty"):
        Settings()
    monkeypatch.delenv("URBANPULSE_SIM__BROKER_PASSWORD")
    monkeypatch.delenv("URBANPULSE_SIM__BROKER_USERNAME")
    monkeypatch.setenv("URBANPULSE_BROKER__USERNAME", "gw")
    assert Settings().simulator_broker().username == "gw"  # no account of its own: the broker settings' one


@pytest.mark.parametrize(("username", "refusal"), [
    (GATEWAY, "must differ from URBANPULSE_BROKER__USERNAME"),
    ("sim with space", "cannot go into Mosquitto's files"),
])
def test_a_simulator_account_that_cannot_be_is_refused_before_anything_changes(
    secured: Secured, monkeypatch: pytest.MonkeyPatch, username: str, refusal: str
) -> None:
    before = (secured.broker_dir / "passwd").read_text()
    for name, value in {"DATABASE__DSN": secured.dsn, "BROKER__USERNAME": GATEWAY, "BROKER__PASSWORD": GATEWAY_SECRET,
                        "SIM__BROKER_USERNAME": username, "SIM__BROKER_PASSWORD": "x"}.items():
        monkeypatch.setenv(f"URBANPULSE_{name}", value)
    done = CliRunner().invoke(app, ["broker", "files", "--broker-dir", str(secured.broker_dir)])
    assert done.exit_code == 2
    assert refusal in " ".join(done.output.split())
    assert "Traceback" not in done.output
    assert (secured.broker_dir / "passwd").read_text() == before


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_wrong_secret_or_no_account_is_refused(secured: Secured, protocol: MQTTProtocolVersion) -> None:
    for user, password in [("air-1", "wrong"), ("air-1", secured.secrets["air-2"]), ("nobody", "x"),
                           (GATEWAY, "wrong"), ("air-1", "")]:
        client = secured.connect(user, password, protocol=protocol)
        assert not client.accepted, (user, password)


def test_disabled_device_is_refused_after_reload_and_its_connection_closed(secured: Secured) -> None:
    live = secured.connect("tr-1", secured.secrets["tr-1"])
    assert live.accepted
    with psycopg.connect(secured.dsn) as conn:
        set_enabled(conn, "tr-1", False)
    secured.regenerate()
    eventually(lambda: not live.client.is_connected())  # Mosquitto drops it on reload
    assert not secured.connect("tr-1", secured.secrets["tr-1"]).accepted
    assert secured.connect("air-1", secured.secrets["air-1"]).accepted
    with psycopg.connect(secured.dsn) as conn:
        set_enabled(conn, "tr-1", True)
    secured.regenerate()
    eventually(lambda: secured.connect("tr-1", secured.secrets["tr-1"]).accepted)


def test_rotated_secret_replaces_the_old_one(secured: Secured) -> None:
    old = secured.secrets["air-2"]
    with psycopg.connect(secured.dsn) as conn:
        new = rotate_secret(conn, "air-2")
    live = secured.connect("air-2", old)
    assert live.accepted  # until the broker reloads
    secured.regenerate(via_pid_file=True)
    eventually(lambda: not live.client.is_connected())  # Mosquitto re-checks connected clients on reload
    assert not secured.connect("air-2", old).accepted
    device = secured.connect("air-2", new)
    assert device.accepted
    gateway = secured.gateway()
    assert device.publish(reading_topic("air", "air-2"), b"after rotation") == 0
    assert gateway.until(reading_topic("air", "air-2"), b"after rotation") == [
        (reading_topic("air", "air-2"), b"after rotation")]


def test_tls_listener(secured: Secured, tmp_path: Path) -> None:
    ca, tls_port = tls_broker(secured, tmp_path)
    for password, accepted in [(secured.secrets["air-1"], True), ("wrong", False)]:
        client = Mqtt(tls_port, "air-1", password, tls_ca=ca)
        secured.clients.append(client)
        assert client.accepted is accepted


def test_config_and_files_text() -> None:
    plain = broker_config(password_file=Path("/etc/m/passwd"), acl_file=Path("/etc/m/acl"),
                          data_dir=Path("/var/lib/mosquitto"))
    for line in ("allow_anonymous false", "password_file /etc/m/passwd", "acl_file /etc/m/acl", "listener 1883",
                 "persistence true", "persistence_location /var/lib/mosquitto/", "autosave_interval 1",
                 "max_queued_messages 0", "max_inflight_messages 0"):
        assert line in plain.splitlines()
    assert not any(line.startswith("user ") for line in plain.splitlines())
    assert "8883" not in plain
    tls = broker_config(password_file=Path("p"), acl_file=Path("a"), data_dir=Path("d"), port=1884, bind="10.0.0.1",
                        tls=TlsFiles(Path("/c.pem"), Path("/k.pem"), Path("/ca.pem")), user="mosquitto")
    assert "listener 1884 10.0.0.1\nlistener 8883 10.0.0.1\ncafile /ca.pem\ncertfile /c.pem\nkeyfile /k.pem\n" in tls
    assert "\nuser mosquitto\n" in tls

    gateway = service_account("gateway", "gw", "x")
    assert gateway.secret_hash.startswith("$7$210000$")  # a person's password: OWASP's count (the broker takes it)
    assert verify_secret("x", gateway.secret_hash)
    assert hash_secret("a").startswith("$7$101$")  # a device's 256 random bits: mosquitto_passwd's
    text = password_file_text([("air-1", hash_secret("a"))], [gateway])
    assert text.startswith("# Generated")
    assert [line.split(":")[0] for line in text.splitlines()[1:]] == ["gw", "air-1"]
    with pytest.raises(ValueError, match="'gw' appears twice"):
        password_file_text([("gw", hash_secret("a"))], [gateway])
    with pytest.raises(ValueError, match="cannot go into"):
        password_file_text([], [service_account("gateway", "a:b", "x")])
    sim = simulator_account("urbanpulse-sim", hash_secret("s"))
    assert acl_file_text([gateway, sim]).endswith(
        "\nuser gw\ntopic read urbanpulse/v1/#\n\nuser urbanpulse-sim\ntopic write urbanpulse/v1/#\n")


def test_reload_sends_no_hangup_to_a_process_that_is_not_mosquitto(tmp_path: Path) -> None:
    """A stale pid file whose pid another program took: refused, and that program lives on."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "mosquitto.pid").write_text(f"{other.pid}\n")
        with pytest.raises(ValueError, match="is not a Mosquitto"):
            reload_broker(str(tmp_path / "mosquitto.pid"))
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
