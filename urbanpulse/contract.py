"""The reading contract: what a device may send, defined once.

Three kinds of device publish readings. Each reading carries ``device_id``, ``time`` (the moment of
measurement, ISO 8601 with a UTC offset, or Unix seconds) and ``seq`` (a per-device counter). The
measurements have units and physically plausible ranges; anything outside is rejected with the field
named. Concentrations are all in µg/m³ -- CO included (VN_AQI's breakpoints use µg/m³ for CO too).

The gateway validates against these models, ingest derives its columns from them, analytics takes
its metrics from them and the simulator produces them.

>>> r = AirReading.model_validate({"device_id": "air-1", "time": "2026-01-01T00:00:00Z", "seq": 1,
...                                "pm25": 12.5, "pm10": 20.0, "temperature": 28.0, "humidity": 70.0})
>>> r.pm25, r.time.isoformat()
(12.5, '2026-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

TOPIC_ROOT = "urbanpulse"
TOPIC_VERSION = "v1"
DEVICE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # letters, digits, _ . -; up to 64
DEVICE_ID_PATTERN = f"^{DEVICE_ID}$"
STATUS_KIND = "status"  # urbanpulse/v1/status/<device_id>: presence (online / offline), not readings
# The 4G download speed (Mbit/s) under which an operations centre calls a province slow; the default of
# ``StorageSettings.ispeed_slow_mbps``, which the rollups, dashboards and severity rules use.
SLOW_DOWNLOAD_MBPS = 40.0
# The radio network that line is drawn for: the slow-province rule counts its tests by default, and the network
# dashboard shows them first (5G tests would lift a 4G median).
RadioNetwork = Literal["4G", "5G"]
LINE_NETWORK: RadioNetwork = "4G"


class Kind(enum.StrEnum):
    """The kinds of device urbanpulse knows."""

    AIR = "air"
    TRAFFIC = "traffic"
    ISPEED = "ispeed"


def aware_utc(value: datetime) -> datetime:
    """The time in UTC; raises ValueError for a naive one. A datetime already in ``UTC`` comes back as
    it is (``astimezone`` to its own zone returns itself), which the gateway's fast path relies on."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "time must carry a UTC offset (e.g. 2026-01-01T00:00:00Z)"
        raise ValueError(msg)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is past the last datetime once in UTC
        msg = "time is out of range once in UTC (years 1 to 9999)"
        raise ValueError(msg) from None


def _storable_text(value: str) -> str:
    if "\x00" in value:
        msg = "must not contain NUL characters"
        raise ValueError(msg)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        msg = "must be valid Unicode (no lone surrogates)"
        raise ValueError(msg) from None
    return value


def _no_dollar(value: str) -> str:
    """A device's label is shown by the dashboards, whose SQL Grafana reads for ``$`` variables and
    ``$__`` macros after putting the label in: a province named ``$__timeFilter(`` would take a panel's
    query apart (the security review of 2026-12-01). Stored as it is otherwise: SQL-looking text is only text."""
    if "$" in value:
        msg = "must not contain '$' (the dashboards' queries would read it as a Grafana variable or macro)"
        raise ValueError(msg)
    return value


DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
UtcTime = Annotated[datetime, Field(strict=False), AfterValidator(aware_utc)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_storable_text),
                  AfterValidator(_no_dollar)]


def measure(unit: str, ge: float, le: float, description: str) -> Any:
    """A measured quantity with its unit and plausible range."""
    return Field(ge=ge, le=le, allow_inf_nan=False, description=description, json_schema_extra={"unit": unit})


def optional_measure(unit: str, ge: float, le: float, description: str) -> Any:
    """A measured quantity a device may leave out (or send as null)."""
    return Field(None, ge=ge, le=le, allow_inf_nan=False, description=description,
                 json_schema_extra={"unit": unit})


class Reading(BaseModel):
    """Fields every reading carries."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    device_id: DeviceId = Field(description="The publishing device; must match the topic.")
    time: UtcTime = Field(description="Measurement time, stored in UTC.")
    seq: int = Field(ge=0, le=2**62, description="Per-device sequence number.")


class AirReading(Reading):
    """An air-quality station (fine dust, gases, weather, noise)."""

    pm25: float = measure("µg/m³", 0, 1000, "PM2.5 mass concentration")
    pm10: float = measure("µg/m³", 0, 2000, "PM10 mass concentration")
    temperature: float = measure("°C", -40, 60, "air temperature")
    humidity: float = measure("%", 0, 100, "relative humidity")
    no2: float | None = optional_measure("µg/m³", 0, 4000, "NO2 concentration")
    o3: float | None = optional_measure("µg/m³", 0, 2000, "O3 concentration")
    so2: float | None = optional_measure("µg/m³", 0, 3000, "SO2 concentration")
    co: float | None = optional_measure("µg/m³", 0, 200000, "CO concentration")
    noise: float | None = optional_measure("dBA", 20, 140, "A-weighted sound level")


class TrafficReading(Reading):
    """A road-traffic detector (loop or camera) reporting per interval."""

    vehicle_count: int = measure("vehicles", 0, 20000, "vehicles counted in the interval")
    interval_s: int = measure("s", 1, 3600, "length of the counting interval")
    speed_kmh: float = measure("km/h", 0, 250, "mean speed of the counted vehicles")
    occupancy_pct: float = measure("%", 0, 100, "share of the interval the detector was occupied")


class IspeedReading(Reading):
    """A crowd-sourced mobile speed test (iSpeed-style)."""

    download_mbps: float = measure("Mbit/s", 0, 10000, "download throughput")
    upload_mbps: float = measure("Mbit/s", 0, 10000, "upload throughput")
    latency_ms: float = measure("ms", 0, 60000, "round-trip latency")
    jitter_ms: float = measure("ms", 0, 60000, "latency jitter")
    packet_loss_pct: float = measure("%", 0, 100, "lost packets")
    operator: Label = Field(description="mobile network operator")
    network: RadioNetwork = Field(description="radio access technology of the test")
    rsrp_dbm: float = measure("dBm", -140, -44, "LTE/NR reference signal received power")
    lat: float = measure("°", -90, 90, "latitude of the test (WGS84)")
    lon: float = measure("°", -180, 180, "longitude of the test (WGS84)")
    province: Label = Field(description="province the test was taken in")


READING_MODELS: dict[Kind, type[Reading]] = {
    Kind.AIR: AirReading,
    Kind.TRAFFIC: TrafficReading,
    Kind.ISPEED: IspeedReading,
}


@dataclass(frozen=True, slots=True)
class Metric:
    """A numeric measurement of a kind that analytics watches and dashboards chart."""

    kind: Kind
    name: str
    unit: str
    required: bool


def metrics(kind: Kind) -> tuple[Metric, ...]:
    """The numeric measurement fields of ``kind``, in contract order."""
    model = READING_MODELS[kind]
    out = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if name in Reading.model_fields or not isinstance(extra, dict):
            continue
        out.append(Metric(kind, name, str(extra["unit"]), info.is_required()))
    return tuple(out)


def reading_topic(kind: Kind | str, device_id: str) -> str:
    """The topic a device publishes its readings to: ``urbanpulse/v1/<kind>/<device_id>``."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{kind}/{device_id}"


def status_topic(device_id: str) -> str:
    """The topic of a device's presence messages (online / offline, also its last will)."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{STATUS_KIND}/{device_id}"


READINGS_FILTER = f"{TOPIC_ROOT}/{TOPIC_VERSION}/+/+"
OPS_TOPIC = f"{TOPIC_ROOT}/{TOPIC_VERSION}/ops"  # analytics publishes events and incidents under it


@dataclass(frozen=True, slots=True)
class TopicParts:
    """What a reading topic says: the kind (as sent, maybe unknown) and the device."""

    kind: str
    device_id: str


def parse_topic(topic: str) -> TopicParts | None:
    """Split a reading topic; ``None`` when it is not of the form ``urbanpulse/v1/<kind>/<device>``."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != TOPIC_VERSION:
        return None
    return TopicParts(kind=parts[2], device_id=parts[3])


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
