"""The device registry: secrets hashed as Mosquitto does, CRUD, CSV import, the gateway's lookup, the CLI."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer import Typer
from typer.testing import CliRunner

from urbanpulse.contract import Kind
from urbanpulse.gateway.devices_cli import broker_app, devices_app
from urbanpulse.gateway.registry import (
    DeviceDirectory,
    RegistryError,
    add_device,
    broker_entries,
    hash_secret,
    import_devices,
    list_devices,
    load_directory,
    mark_seen,
    new_secret,
    parse_devices_csv,
    rotate_secret,
    set_enabled,
    set_online,
    spec,
    verify_secret,
)

HEADER = "device_id,kind,province,district,lat,lon,firmware_version\n"
CSV = HEADER + "air-1,air,Ha Noi,Ba Dinh,21.03,105.82,1.4.2\ntr-1,traffic,Da Nang,Hai Chau,16.07,108.22,\n" \
               "sp-1,ispeed,,,,,\n"


def test_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    file = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(file), "alice", "s3cret-é"], check=True)
    user, written = file.read_text().strip().split(":", 1)
    _, seven, iterations, salt, _ = written.split("$")
    assert (user, seven) == ("alice", "7")
    assert hash_secret("s3cret-é", salt=base64.b64decode(salt), iterations=int(iterations)) == written
    assert verify_secret("s3cret-é", written)
    assert not verify_secret("s3cret", written)


def test_secrets_are_random_and_hashes_salted() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert len(a) >= 43
    assert hash_secret(a) != hash_secret(a)
    assert verify_secret(a, hash_secret(a))
    assert not verify_secret(b, hash_secret(a))
    assert not verify_secret(a, "$6$abc$def")
    assert not verify_secret(a, "plain")


@pytest.mark.parametrize(("text", "error"), [
    ("id,kind\nair-1,air\n", "line 1: the header must be"),
    (HEADER + "air-1,air,Ha Noi\n", "line 2: expected 7 fields, got 3"),
    (HEADER + "air-1,smoke,,,,,\n", "line 2: kind: Input should be 'air', 'traffic' or 'ispeed'"),
    (HEADER + "air-1,air,,,95,,\n", "line 2: lat: Input should be less than or equal to 90"),
    (HEADER + "air-1,air,,,north,,\n", "line 2: lat: Input should be a valid number"),
    (HEADER + "air/1,air,,,,,\n", "line 2: device_id: String should match pattern"),
    (HEADER + "urbanpulse-gateway,air,,,,,\n", "line 2: device_id 'urbanpulse-gateway': the prefix"),
    (HEADER + "air-1,air,,,,,\n\nair-1,air,,,,,\n", "line 4: device 'air-1' is already on line 2"),
])
def test_csv_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(RegistryError, match="^" + error.replace("(", r"\(").replace(")", r"\)")):
        parse_devices_csv(text)


def test_csv_parses_with_empty_cells_unset() -> None:
    parsed = parse_devices_csv(CSV)
    assert [line for line, _ in parsed] == [2, 3, 4]
    air, traffic, ispeed = (d for _, d in parsed)
    assert (air.kind, air.province, air.lat, air.firmware_version) == (Kind.AIR, "Ha Noi", 21.03, "1.4.2")
    assert traffic.firmware_version is None
    assert (ispeed.province, ispeed.lat) == (None, None)


@pytest.mark.integration
def test_registry_crud(database: str) -> None:
    with psycopg.connect(database) as conn:
        secret = add_device(conn, spec(device_id="air-1", kind="air", province="Ha Noi", lat=21.0, lon=105.8))
        with pytest.raises(RegistryError, match="already registered"):
            add_device(conn, spec(device_id="air-1", kind="air"))
        add_device(conn, spec(device_id="tr-1", kind="traffic", province="Da Nang"))
        stored = dict(broker_entries(conn))["air-1"]
        assert verify_secret(secret, stored)
        assert secret not in stored

        assert [d.device_id for d in list_devices(conn)] == ["air-1", "tr-1"]
        assert [d.device_id for d in list_devices(conn, kind=Kind.TRAFFIC)] == ["tr-1"]
        assert [d.device_id for d in list_devices(conn, province="Ha Noi")] == ["air-1"]
        assert list_devices(conn, kind=Kind.AIR, province="Da Nang") == []
        first = list_devices(conn)[0]
        assert (first.enabled, first.online, first.last_seen) == (True, False, None)

        set_enabled(conn, "air-1", False)
        assert [e[0] for e in broker_entries(conn)] == ["tr-1"]
        assert not list_devices(conn)[0].enabled
        set_enabled(conn, "air-1", True)
        new = rotate_secret(conn, "air-1")
        stored = dict(broker_entries(conn))["air-1"]
        assert verify_secret(new, stored)
        assert not verify_secret(secret, stored)
        for change in (lambda: set_enabled(conn, "nope", False), lambda: rotate_secret(conn, "nope")):
            with pytest.raises(RegistryError, match="unknown device 'nope'"):
                change()


@pytest.mark.integration
def test_table_refuses_what_the_registry_would(database: str) -> None:
    good = hash_secret("x")
    bad_rows = [("air 1", "air", good), ("air-1", "smoke", good), ("urbanpulse-gateway", "air", good),
                ("air-1", "air", "plain"), ("air-1", "air", good + "\nroot:$7$1$AA==$AA==")]
    with psycopg.connect(database, autocommit=True) as conn:
        for row in bad_rows:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("INSERT INTO devices (device_id, kind, secret_hash) VALUES (%s, %s, %s)", row)


@pytest.mark.integration
def test_import_is_all_or_nothing(database: str) -> None:
    with psycopg.connect(database) as conn:
        add_device(conn, spec(device_id="tr-1", kind="traffic"))
        numbered = parse_devices_csv(CSV)
        with pytest.raises(RegistryError, match=r"^line 3: device 'tr-1' is already registered; nothing"):
            import_devices(conn, [d for _, d in numbered], {d.device_id: n for n, d in numbered})
        assert [d.device_id for d in list_devices(conn)] == ["tr-1"]
        pairs = import_devices(conn, [d for _, d in numbered if d.device_id != "tr-1"])
        entries = dict(broker_entries(conn))
        assert [p[0] for p in pairs] == ["air-1", "sp-1"]
        assert all(verify_secret(secret, entries[device]) for device, secret in pairs)


def test_directory_check() -> None:
    directory = DeviceDirectory({"air-1": (Kind.AIR, True), "tr-1": (Kind.TRAFFIC, False)})
    assert directory.check("air-1", Kind.AIR) is None
    assert directory.check("x", Kind.AIR) == "unknown device 'x'"
    assert directory.check("tr-1", Kind.TRAFFIC) == "device 'tr-1' is disabled"
    assert directory.check("air-1", Kind.TRAFFIC) == "device 'air-1' is registered as air, not traffic"


@pytest.mark.integration
def test_gateway_side_lookup_and_presence(database: str) -> None:
    with psycopg.connect(database) as conn:
        import_devices(conn, [d for _, d in parse_devices_csv(CSV)])
        set_enabled(conn, "sp-1", False)
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)

    async def gateway() -> DeviceDirectory:
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            await mark_seen(conn, ["air-1", "tr-1", "air-1", "unknown"], t0)
            await mark_seen(conn, ["air-1"], t0 - timedelta(minutes=5))  # late: last_seen stays
            await set_online(conn, "tr-1", True, t0 + timedelta(minutes=1))
            await set_online(conn, "air-1", True, t0)
            await set_online(conn, "air-1", False, t0 + timedelta(minutes=9))  # a will: not "seen"
            return await load_directory(conn)

    directory = asyncio.run(gateway())
    assert len(directory) == 3
    assert directory.check("sp-1", Kind.ISPEED) == "device 'sp-1' is disabled"
    assert directory.check("tr-1", Kind.TRAFFIC) is None
    with psycopg.connect(database) as conn:
        seen = {d.device_id: (d.last_seen, d.online) for d in list_devices(conn)}
    assert seen == {"air-1": (t0, False), "tr-1": (t0 + timedelta(minutes=1), True), "sp-1": (None, False)}


def _cli(database: str, *args: str) -> tuple[int, str, str]:
    app = Typer()
    app.add_typer(devices_app, name="devices")
    app.add_typer(broker_app, name="broker")
    env = {"URBANPULSE_DATABASE__DSN": database, "URBANPULSE_BROKER__USERNAME": "urbanpulse-gateway",
           "URBANPULSE_BROKER__PASSWORD": "gw-secret"}
    result = CliRunner(env=env).invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.integration
def test_cli(database: str, tmp_path: Path) -> None:
    code, _, err = _cli(database, "devices", "add", "air-9", "--kind", "air", "--province", "Hue", "--lat", "16.4")
    assert code == 2
    assert "lat and lon go together" in err
    code, out, _ = _cli(database, "devices", "add", "air-9", "--kind", "air", "--province", "Hue", "--lat", "16.4",
                        "--lon", "107.6")
    assert code == 0
    secret = out.strip()
    csv_file, secrets_file, broker_dir = tmp_path / "d.csv", tmp_path / "secrets.csv", tmp_path / "broker"
    csv_file.write_text(HEADER + "air-9,air,,,,,\n")
    code, _, err = _cli(database, "devices", "import", str(csv_file), "--secrets-out", str(secrets_file))
    assert code == 2
    assert "line 2: device 'air-9' is already registered" in err
    assert not secrets_file.exists()
    csv_file.write_text(CSV)
    code, out, err = _cli(database, "devices", "import", str(csv_file), "--secrets-out", str(secrets_file),
                          "--broker-dir", str(broker_dir))
    assert code == 0, err
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert secrets_file.read_text().splitlines()[0] == "device_id,secret"
    code, out, _ = _cli(database, "devices", "list", "--kind", "air")
    assert code == 0
    assert "air-1" in out
    assert "air-9" in out
    assert "tr-1" not in out
    assert secret not in out

    assert _cli(database, "devices", "disable", "tr-1", "--broker-dir", str(broker_dir))[0] == 0
    users = [line.split(":")[0] for line in (broker_dir / "passwd").read_text().splitlines()[1:]]
    assert users == ["urbanpulse-gateway", "air-1", "air-9", "sp-1"]
    code, out, _ = _cli(database, "devices", "rotate-secret", "air-9", "--broker-dir", str(broker_dir))
    assert code == 0
    assert out.strip() != secret
    assert verify_secret(out.strip(), dict(line.split(":", 1) for line in
                                            (broker_dir / "passwd").read_text().splitlines()[1:])["air-9"])
    code, _, err = _cli(database, "devices", "enable", "nope")
    assert code == 2
    assert "unknown device 'nope'" in err

    (broker_dir / "passwd").unlink()
    assert _cli(database, "broker", "files", "--broker-dir", str(broker_dir))[0] == 0
    assert (broker_dir / "passwd").read_text().count("\n") == 5  # header, gateway, air-1, air-9, sp-1
    assert (broker_dir / "passwd").stat().st_mode & 0o777 == 0o640

    conf = tmp_path / "etc" / "mosquitto.conf"
    code, _, err = _cli(database, "broker", "config", "--out", str(conf), "--tls-cert", "c.pem")
    assert code == 2
    assert "go together" in err
    assert _cli(database, "broker", "config", "--out", str(conf), "--data-dir", str(tmp_path))[0] == 0
    assert f"password_file {tmp_path}/etc/passwd" in conf.read_text()


def test_a_latitude_without_a_longitude_is_refused() -> None:
    with pytest.raises(RegistryError, match="lat and lon go together"):
        spec(device_id="air-1", kind="air", lat=21.03)
    assert spec(device_id="air-1", kind="air").lat is None  # neither: a device with no place on the map
