"""The device registry: who may publish, as what kind, with which secret (table ``devices``).

Each device has its own random secret, shown once when it is created or rotated and stored only as a
hash in Mosquitto's ``$7$`` format (PBKDF2-HMAC-SHA512, what ``mosquitto_passwd`` writes), so the
broker's password_file is regenerated from the table without knowing any secret. The secrets are
256-bit random tokens: no dictionary attack applies, so the KDF's work factor adds nothing and the
iteration count stays at ``mosquitto_passwd``'s 101, cheap for a broker checking every CONNECT.

The CLI uses the synchronous functions (one transaction each); the gateway uses the ``async`` ones:
``load_directory`` for the lookup it makes per message, ``mark_seen`` / ``set_online`` for presence.

>>> directory = DeviceDirectory({"air-1": (Kind.AIR, True), "tr-9": (Kind.TRAFFIC, False)})
>>> directory.check("air-1", Kind.AIR) is None
True
>>> directory.check("air-1", Kind.TRAFFIC)
"device 'air-1' is registered as air, not traffic"
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import psycopg
from psycopg.rows import TupleRow
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from urbanpulse.contract import DeviceId, Kind, Label

HASH_ITERATIONS = 101  # mosquitto_passwd's count (see the module docstring)
SALT_BYTES = 12  # as mosquitto_passwd
SECRET_BYTES = 32
RESERVED_PREFIX = "urbanpulse-"  # service accounts (the gateway's MQTT user); never a device
CSV_HEADER = ("device_id", "kind", "province", "district", "lat", "lon", "firmware_version")
_COLUMNS = "device_id, kind, province, district, lat, lon, firmware_version, enabled, created_at, last_seen, online"


class RegistryError(ValueError):
    """A registry change was refused; the message says why (and which CSV line)."""


# --- secrets ----------------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh device secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> str:
    """Mosquitto's ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`` hash of ``secret``.

    >>> hash_secret("s3cret", salt=base64.b64decode("lig8rG1Q+Cn2ylJG"))[:41]  # as mosquitto_passwd
    '$7$101$lig8rG1Q+Cn2ylJG$Dzu1UahPsSEtp4u2v'
    """
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(secret: str, secret_hash: str) -> bool:
    """Whether ``secret`` matches a ``$7$`` hash (as Mosquitto checks it)."""
    parts = secret_hash.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt = base64.b64decode(parts[3])
    return hmac.compare_digest(hash_secret(secret, salt=salt, iterations=int(parts[2])), secret_hash)


# --- what a device is ------------------------------------------------------------------------------


class DeviceSpec(BaseModel):
    """A device to register: the CLI's options or one line of an import CSV."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: DeviceId
    kind: Kind
    province: Label | None = None
    district: Label | None = None
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    firmware_version: Label | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> DeviceSpec:
        """A position is a latitude and a longitude: one without the other puts the device nowhere on a map."""
        if (self.lat is None) != (self.lon is None):
            msg = "lat and lon go together: give both or neither"
            raise ValueError(msg)
        return self


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device as ``list`` shows it (never its secret)."""

    device_id: str
    kind: Kind
    province: str | None
    district: str | None
    lat: float | None
    lon: float | None
    firmware_version: str | None
    enabled: bool
    created_at: datetime
    last_seen: datetime | None
    online: bool


def spec(**fields: object) -> DeviceSpec:
    """Validate one device's fields; a ``RegistryError`` names the first bad field."""
    device_id = str(fields.get("device_id", ""))
    if device_id.startswith(RESERVED_PREFIX):
        msg = f"device_id {device_id!r}: the prefix {RESERVED_PREFIX!r} is reserved for service accounts"
        raise RegistryError(msg)
    try:
        return DeviceSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "device"
        msg = f"{where}: {first['msg']} (got {first.get('input')!r})"
        raise RegistryError(msg) from None


def parse_devices_csv(text: str) -> list[tuple[int, DeviceSpec]]:
    """``(line, device)`` of each device of an import CSV (header as ``CSV_HEADER``).

    Empty cells are left unset, blank lines skipped. The first problem raises ``RegistryError`` naming
    its line.
    """
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        msg = f"line 1: the header must be {','.join(CSV_HEADER)} (got {','.join(header or [])!r})"
        raise RegistryError(msg)
    out: list[tuple[int, DeviceSpec]] = []
    first_line: dict[str, int] = {}
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_HEADER):
            msg = f"line {line}: expected {len(CSV_HEADER)} fields, got {len(row)}"
            raise RegistryError(msg)
        fields = {name: cell.strip() for name, cell in zip(CSV_HEADER, row, strict=True) if cell.strip()}
        try:
            device = spec(**fields)
        except RegistryError as exc:
            raise RegistryError(f"line {line}: {exc}") from None
        if device.device_id in first_line:
            msg = f"line {line}: device {device.device_id!r} is already on line {first_line[device.device_id]}"
            raise RegistryError(msg)
        first_line[device.device_id] = line
        out.append((line, device))
    return out


# --- the table, for the CLI (synchronous; each call is one transaction) ----------------------------

Conn = psycopg.Connection[TupleRow]


def _insert(conn: Conn, devices: Sequence[DeviceSpec]) -> list[tuple[str, str]]:
    secrets_out = [(d.device_id, new_secret()) for d in devices]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (device_id, kind, province, district, lat, lon, firmware_version, secret_hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    d.device_id,
                    d.kind.value,
                    d.province,
                    d.district,
                    d.lat,
                    d.lon,
                    d.firmware_version,
                    hash_secret(secret),
                )
                for d, (_, secret) in zip(devices, secrets_out, strict=True)
            ],
        )
    return secrets_out


def add_device(conn: Conn, device: DeviceSpec) -> str:
    """Register one device; return its secret (shown once, only the hash is stored)."""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM devices WHERE device_id = %s", [device.device_id]).fetchone():
            msg = f"device {device.device_id!r} is already registered"
            raise RegistryError(msg)
        return _insert(conn, [device])[0][1]


def import_devices(
    conn: Conn, devices: Sequence[DeviceSpec], lines: Mapping[str, int] | None = None
) -> list[tuple[str, str]]:
    """Register all ``devices`` or none; return ``(device_id, secret)`` pairs.

    Runs in the caller's transaction if there is one (so the caller can save the secrets before the
    commit), else in its own. A device already registered raises ``RegistryError`` (naming its CSV
    line when ``lines`` maps ids to lines).
    """
    with conn.transaction():
        taken = conn.execute(
            "SELECT device_id FROM devices WHERE device_id = ANY(%s)", [[d.device_id for d in devices]]
        ).fetchall()
        if taken:
            ids = sorted((str(row[0]) for row in taken), key=lambda i: (lines or {}).get(i, 0))
            where = f"line {lines[ids[0]]}: " if lines and ids[0] in lines else ""
            more = f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""
            msg = f"{where}device {ids[0]!r} is already registered{more}; nothing was imported"
            raise RegistryError(msg)
        return _insert(conn, devices)


def list_devices(conn: Conn, kind: Kind | None = None, province: str | None = None) -> list[Device]:
    """Registered devices, by id, optionally of one kind and/or one province."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM devices WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(province)s::text IS NULL OR province = %(province)s) ORDER BY device_id",
        {"kind": kind.value if kind else None, "province": province},
    ).fetchall()
    return [Device(r[0], Kind(r[1]), *r[2:]) for r in rows]


def _update(conn: Conn, device_id: str, assignment: str, value: object) -> None:
    with conn.transaction():
        found = conn.execute(
            f"UPDATE devices SET {assignment} WHERE device_id = %s RETURNING 1", [value, device_id]
        ).fetchone()
    if not found:
        msg = f"unknown device {device_id!r}"
        raise RegistryError(msg)


def set_enabled(conn: Conn, device_id: str, enabled: bool) -> None:
    """Enable or disable a device (it takes effect at the broker once its files are rewritten)."""
    _update(conn, device_id, "enabled = %s", enabled)


def rotate_secret(conn: Conn, device_id: str) -> str:
    """Give a device a new secret and return it; the old one stops working at the next broker reload."""
    secret = new_secret()
    _update(conn, device_id, "secret_hash = %s", hash_secret(secret))
    return secret


def broker_entries(conn: Conn) -> list[tuple[str, str]]:
    """``(device_id, secret_hash)`` of every enabled device: the devices' part of the password_file."""
    rows = conn.execute("SELECT device_id, secret_hash FROM devices WHERE enabled ORDER BY device_id").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


# --- the gateway's side (async) ---------------------------------------------------------------------


class DeviceDirectory:
    """Who may send what, in memory: ``{device_id: (kind, enabled)}``, checked for every message.

    The broker already refuses unknown and disabled devices and topics of other devices; the gateway
    checks again (the broker's files may lag the table until the next reload) and checks the kind,
    which the broker's ACL leaves open.
    """

    def __init__(self, devices: Mapping[str, tuple[Kind, bool]]) -> None:
        self.devices = dict(devices)

    def __len__(self) -> int:
        return len(self.devices)

    def registered(self, device_id: str) -> str | None:
        """``None`` if ``device_id`` is registered (enabled or not: a disabled device's last will, ``offline``,
        is still its presence), else the reason it is refused."""
        return None if device_id in self.devices else f"unknown device {device_id!r}"

    def check(self, device_id: str, kind: Kind) -> str | None:
        """``None`` if ``device_id`` may send readings of ``kind``, else the reason it may not."""
        entry = self.devices.get(device_id)  # once: every reading message is checked
        if entry is None:
            return f"unknown device {device_id!r}"
        registered, enabled = entry
        if not enabled:
            return f"device {device_id!r} is disabled"
        if registered != kind:
            return f"device {device_id!r} is registered as {registered.value}, not {Kind(kind).value}"
        return None


async def load_directory(conn: psycopg.AsyncConnection[TupleRow]) -> DeviceDirectory:
    """Read the whole registry into a ``DeviceDirectory``."""
    cur = await conn.execute("SELECT device_id, kind, enabled FROM devices")
    return DeviceDirectory({str(r[0]): (Kind(r[1]), bool(r[2])) for r in await cur.fetchall()})


async def mark_seen(conn: psycopg.AsyncConnection[TupleRow], device_ids: Iterable[str], when: datetime) -> None:
    """Record that ``device_ids`` were heard from at ``when`` (never moves ``last_seen`` back).

    Runs in the caller's transaction (commit it, or use an autocommit connection).
    """
    ids = sorted(set(device_ids))
    if ids:
        await conn.execute(
            "UPDATE devices SET last_seen = GREATEST(last_seen, %s) WHERE device_id = ANY(%s)", [when, ids]
        )


async def set_online(conn: psycopg.AsyncConnection[TupleRow], device_id: str, online: bool, when: datetime) -> None:
    """Record a presence message (``online`` or its last will); going online also counts as seen."""
    await conn.execute(
        "UPDATE devices SET online = %s,"
        " last_seen = CASE WHEN %s THEN GREATEST(last_seen, %s) ELSE last_seen END WHERE device_id = %s",
        [online, online, when, device_id],
    )
