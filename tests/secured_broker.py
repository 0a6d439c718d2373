"""A secured Mosquitto for the broker tests: started on the files generated from the registry (``allow_anonymous
false``, the password and ACL files of ``write_broker_files``, a gateway account), and paho clients that record
what it answers. The ``secured`` fixture (conftest.py) gives each test its own."""

from __future__ import annotations

import getpass
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from urbanpulse.gateway.broker_files import TlsFiles, broker_config, reload_broker, service_account, write_broker_files
from urbanpulse.localstack import MosquittoServer, free_port

GATEWAY, GATEWAY_SECRET = "urbanpulse-gateway", "gateway-secret"
NOT_AUTHORIZED = 135


class Mqtt:
    """A paho client run in its own thread, recording what the broker answers."""

    def __init__(self, port: int, user: str, password: str, *, protocol: MQTTProtocolVersion = mqtt.MQTTv5,
                 tls_ca: Path | None = None, client_id: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{time.monotonic_ns()}",
                                  protocol=protocol)
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.username_pw_set(user, password)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, int] = {}
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connected = threading.Event()
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, bytes(msg.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        if reason.is_failure:
            self.client.disconnect()  # no reconnect loop with a refused secret
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._acked:
            self.pubacks[mid] = reason.value
            self._acked.notify_all()

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish with QoS 1 and return the PUBACK's reason code (always 0 under MQTT 3.1.1)."""
        mid = self.client.publish(topic, payload, qos=1).mid
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self.pubacks, 10), "no PUBACK"
            return self.pubacks[mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe with QoS 1; return the SUBACK's reason code."""
        done: queue.Queue[int] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: done.put(codes[0].value)
        self.client.subscribe(topic, qos=1)
        return done.get(timeout=10)

    def received(self, timeout: float) -> list[tuple[str, bytes]]:
        """What arrived until ``timeout`` seconds passed without a message."""
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=timeout))
            except queue.Empty:
                return out

    def until(self, topic: str, payload: bytes, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        """Every message up to and including ``(topic, payload)`` (a sentinel published last)."""
        out: list[tuple[str, bytes]] = []
        while not out or out[-1] != (topic, payload):
            out.append(self.messages.get(timeout=timeout))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Secured:
    server: MosquittoServer
    dsn: str
    broker_dir: Path
    secrets: dict[str, str]
    clients: list[Mqtt]

    def connect(self, user: str, password: str, **kwargs: Any) -> Mqtt:
        client = Mqtt(self.server.port, user, password, **kwargs)
        self.clients.append(client)
        return client

    def gateway(self, topic: str = "urbanpulse/v1/#") -> Mqtt:
        client = self.connect(GATEWAY, GATEWAY_SECRET)
        assert client.accepted
        client.subscribe(topic)
        return client

    def regenerate(self, *, via_pid_file: bool = False) -> None:
        """Rewrite the files from the registry and SIGHUP the broker (as the CLI's --reload does, if asked)."""
        with psycopg.connect(self.dsn) as conn:
            write_broker_files(conn, self.broker_dir, [service_account("gateway", GATEWAY, GATEWAY_SECRET)])
        if via_pid_file:
            reload_broker(str(self.broker_dir / "mosquitto.pid"))
        else:
            self.server.reload()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def start_broker(folder: Path, tls: TlsFiles | None = None, service_port: int | None = None) -> MosquittoServer:
    port = free_port()
    config = broker_config(password_file=folder / "passwd", acl_file=folder / "acl", data_dir=folder,
                           port=port, bind="127.0.0.1", tls=tls, tls_port=free_port(), user=getpass.getuser(),
                           pid_file=folder / "mosquitto.pid", service_port=service_port)
    server = MosquittoServer(folder, port=port, config=config)
    server.start()
    return server


def tls_broker(secured: Secured, tmp_path: Path) -> tuple[Path, int]:
    """Restart ``secured``'s broker with a TLS listener too, on a certificate for 127.0.0.1 from a test CA made
    here with openssl; returns the CA certificate and the TLS port."""
    pki = tmp_path / "pki"
    pki.mkdir()
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*openssl, "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.pem"), "-subj", "/CN=test-ca"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "server.key"),
                    "-out", str(pki / "server.csr"), "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(pki / "server.csr"), "-CA", str(pki / "ca.pem"),
                    "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "1", "-out", str(pki / "server.pem"),
                    "-extfile", str(pki / "san.ext")], check=True, capture_output=True)
    secured.server.kill()
    secured.server = start_broker(secured.broker_dir, TlsFiles(pki / "server.pem", pki / "server.key",
                                                                pki / "ca.pem"))
    tls_port = int(next(line.split()[1] for line in secured.server.config_text().splitlines()
                        if line.startswith("listener") and int(line.split()[1]) != secured.server.port))
    eventually(lambda: _port_open(tls_port))
    return pki / "ca.pem", tls_port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
