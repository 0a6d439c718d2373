"""Register the simulated fleet in the device registry (each device with its own secret)."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from urbanpulse.gateway.registry import import_devices, spec
from urbanpulse.sim.city import Device


def register_fleet(dsn: str, devices: Iterable[Device], firmware: str = "sim-1.0") -> dict[str, str]:
    """Register the devices not registered yet; returns their secrets (``{device_id: secret}``)."""
    wanted = list(devices)
    with psycopg.connect(dsn) as conn:
        known = {str(r[0]) for r in conn.execute("SELECT device_id FROM devices WHERE device_id = ANY(%s)",
                                                 [[d.device_id for d in wanted]]).fetchall()}
        fresh = [spec(device_id=d.device_id, kind=d.kind, province=d.province.name, district=d.district.name,
                      lat=round(d.lat, 6), lon=round(d.lon, 6), firmware_version=firmware)
                 for d in wanted if d.device_id not in known]
        secrets = dict(import_devices(conn, fresh)) if fresh else {}
        conn.commit()
    return secrets
