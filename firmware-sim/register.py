"""Register the simulated fleet in the device registry (each device with its own secret)."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from urbanpulse.gateway.registry import import_devices, spec
from urbanpulse.sim.city import Device


def register_fleet(dsn: str, devices: Iterable[Device], firmware: str = "sim-1.0") -> dict[str, str]:
    """Register the devices not registered yet; returns their secrets (``{device_id: secret}``).

    A simulated device already registered (its firmware ``sim-...``) is moved to where this fleet puts
    it (province, district, position): live runs and scenarios give the same ids different places, and a
    scenario's incidents must land where its ground truth says. Devices of any other firmware are left
    as they are."""
    wanted = list(devices)
    with psycopg.connect(dsn) as conn:
        known = {str(r[0]) for r in conn.execute("SELECT device_id FROM devices WHERE device_id = ANY(%s)",
                                                 [[d.device_id for d in wanted]]).fetchall()}
        fresh = [spec(device_id=d.device_id, kind=d.kind, province=d.province.name, district=d.district.name,
                      lat=round(d.lat, 6), lon=round(d.lon, 6), firmware_version=firmware)
                 for d in wanted if d.device_id not in known]
        secrets = dict(import_devices(conn, fresh)) if fresh else {}
        conn.cursor().executemany(
            "UPDATE devices SET province = %s, district = %s, lat = %s, lon = %s WHERE device_id = %s"
            " AND firmware_version LIKE 'sim-%%' AND (province, district, lat, lon)"
            " IS DISTINCT FROM (%s, %s, %s::float8, %s::float8)",
            [(d.province.name, d.district.name, round(d.lat, 6), round(d.lon, 6), d.device_id,
              d.province.name, d.district.name, round(d.lat, 6), round(d.lon, 6))
             for d in wanted if d.device_id in known])
        conn.commit()
    return secrets
