"""Configuration: the only place settings are defined.

Every setting is read from the environment with the ``URBANPULSE_`` prefix; nested groups use a
double underscore, e.g. ``URBANPULSE_DATABASE__DSN`` or ``URBANPULSE_GATEWAY__BATCH_SIZE``. The
defaults are those of the local stack that ``urbanpulse up`` starts.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from urbanpulse.contract import LINE_NETWORK, SLOW_DOWNLOAD_MBPS, RadioNetwork
from urbanpulse.durations import Duration, spoken


class BrokerSettings(BaseModel):
    """MQTT broker. Env: ``URBANPULSE_BROKER__<NAME>``."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port (plain MQTT).")
    username: str | None = Field(None, description="User name for the broker, if it asks for one.")
    password: str | None = Field(None, description="Password for the broker.")
    keepalive: int = Field(30, ge=0, le=65535, description="MQTT keepalive in seconds (0: off).")
    tls_ca_file: Path | None = Field(
        None, description="CA certificate (PEM) of the broker's TLS listener: set it, and `port` to that listener's "
        "(8883), to connect with TLS and check the broker's certificate and host name.",
    )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a connection to the broker (None: plain MQTT); the broker's certificate is checked."""
        if self.tls_ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.tls_ca_file))


def _connection_string(value: str) -> str:
    """``value`` if libpq can read it as a connection string (a URI or ``key=value`` pairs), read without
    connecting; else a ValueError that does not repeat it (it may hold a password)."""
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        msg = ("not a libpq connection string: expected postgresql://USER@HOST:PORT/DATABASE or key=value pairs"
               " such as 'host=HOST port=PORT dbname=DATABASE user=USER'")
        raise ValueError(msg) from None
    return value


class DatabaseSettings(BaseModel):
    """PostgreSQL / TimescaleDB. Env: ``URBANPULSE_DATABASE__<NAME>``."""

    dsn: Annotated[str, AfterValidator(_connection_string)] = Field(
        "postgresql://urbanpulse@127.0.0.1:5432/urbanpulse",
        description="libpq connection string of the database urbanpulse writes to.",
    )
    pool_min: int = Field(1, ge=0, description="Connections the pool keeps open.")
    pool_max: int = Field(4, ge=1, description="Connections the pool may open at most.")




class StorageSettings(BaseModel):
    """How readings are stored and rolled up. Env: ``URBANPULSE_STORAGE__<NAME>``; durations (positive) as
    ``1 day``, ``12 hours``, ``1 week``, ``1 day 12 hours``, ISO 8601 (``P30D``) or ``HH:MM:SS``.

    Keys marked *fixed* shape tables and continuous aggregates, so they count when the schema is
    created and later changes are ignored (``urbanpulse db status`` shows the values in force); the others
    apply at the next ``urbanpulse db migrate`` or ``urbanpulse db maintain``.
    """

    backend: Literal["auto", "timescaledb", "postgres"] = Field(
        "auto",
        description="Fixed. `auto`: TimescaleDB when the extension is installed and preloaded, else native "
        "partitioning; `timescaledb` / `postgres` force one (`timescaledb` fails if unavailable).",
    )
    air_chunk_interval: Duration = Field(timedelta(days=1), description="Fixed. Chunk / partition width, air.")
    traffic_chunk_interval: Duration = Field(timedelta(days=1), description="Fixed. Chunk / partition width, traffic.")
    ispeed_chunk_interval: Duration = Field(timedelta(days=7), description="Fixed. Chunk / partition width, ispeed.")
    air_retention: Duration = Field(
        timedelta(days=365), description="Raw air readings older than this are dropped (rollups are kept)."
    )
    traffic_retention: Duration = Field(timedelta(days=90), description="The same for traffic readings.")
    ispeed_retention: Duration = Field(timedelta(days=730), description="The same for speed tests.")
    dead_letter_retention: Duration = Field(
        timedelta(days=30), description="Refused messages (dead_letters) older than this are deleted by the storage "
        "job: a device sending garbage must not fill the disk.",
    )
    compress_after: Duration = Field(
        timedelta(days=8), description="TimescaleDB: chunks older than this go to the columnstore."
    )
    premake: Duration = Field(timedelta(days=7), description="Native: partitions are created this far ahead.")
    refresh_lookback: Duration = Field(
        timedelta(days=8),
        description="TimescaleDB: the continuous aggregates' refresh window (by policy and by maintain, which"
        " also refreshes older buckets that late data touched); keep it above GATEWAY__MAX_LATE_SECONDS.",
    )
    ispeed_slow_mbps: float = Field(
        SLOW_DOWNLOAD_MBPS,
        description="Fixed. The 4G download line (Mbit/s) under which a province is called slow: the speed-test"
        " rollups' share under the line and the mobile network severity rule.",
    )
    day_timezone: str = Field(
        "Asia/Ho_Chi_Minh", description="Fixed. Where a day starts for daily rollups and the daily AQI."
    )
    typical_weeks: int = Field(4, ge=1, description="Weeks behind a traffic segment's typical speed per hour of week.")
    maintain_seconds: float = Field(
        300.0, gt=0, description="How often `urbanpulse db maintain --every` and `urbanpulse up` run the storage job."
    )


def _off_is_none(value: object) -> object:
    """``off`` (any case) for a setting that ``None`` turns off, as the metrics port."""
    return None if isinstance(value, str) and value.strip().lower() == "off" else value


class GatewaySettings(BaseModel):
    """MQTT -> database gateway. Env: ``URBANPULSE_GATEWAY__<NAME>``."""

    client_id: str = Field(
        "urbanpulse-gateway",
        description="MQTT client id; fixed, so the broker keeps the session (and its backlog) across restarts.",
    )
    share_group: str | None = Field(
        None,
        description="Shared-subscription group ($share/<group>/...) so several gateways split the load.",
    )
    batch_size: int = Field(10000, ge=1, description="Readings per database transaction at most.")
    batch_seconds: float = Field(0.25, gt=0, description="Longest a reading waits in a batch before a flush.")
    max_payload_bytes: int = Field(65536, ge=1, description="Larger MQTT payloads are dead-lettered unread.")
    max_readings_per_message: int = Field(1000, ge=1, description="Longer arrays are dead-lettered whole.")
    max_future_skew_seconds: float = Field(
        300.0, ge=0, le=366 * 86400, description="Readings stamped further in the future than this are rejected."
    )
    retry_seconds: float = Field(1.0, gt=0, description="First back-off after a failed write or connection.")
    receive_maximum: int = Field(
        10000, ge=1, le=65535, description="MQTT v5 Receive Maximum: unacknowledged messages the broker may send us."
    )
    max_late_seconds: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        le=100 * 366 * 86400,
        description="Readings older than this (against their arrival) are rejected (at most 100 years).",
    )
    spool_dir: Path = Field(
        Path(".urbanpulse/spool"),
        description="Where batches wait, fsynced, while the database is unreachable (one subfolder per client id); "
        "unset, the `spool` folder of `URBANPULSE_DATA_DIR`.",
    )
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Spool size limit; when full the gateway stops acknowledging instead."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics and /healthz endpoint.")
    metrics_port: Annotated[int | None, BeforeValidator(_off_is_none)] = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of the /metrics and /healthz endpoint; worker N of --workers uses port + N "
        "(`off`: no endpoint; 0: any free port).",
    )
    require_registration: bool = Field(
        True,
        description="Accept readings only from devices registered (and enabled) for that kind; "
        "`false` accepts any device id (demos, migrations from another platform).",
    )
    directory_refresh_seconds: float = Field(
        10.0, gt=0, description="How often the gateway reloads the device registry."
    )


class _ServiceAccount(BaseModel):
    """A service's own account on a secured broker: a user name and a password, both or neither, neither empty;
    broker files written with `--broker-dir` include it (gateway/README.md). Unset: `BROKER__USERNAME`'s."""

    broker_username: str | None = Field(None, description="This service's own account on a secured broker (both or "
                                        "neither); unset: `BROKER__USERNAME`'s account.")
    broker_password: str | None = Field(None, description="That account's password.")
    _section: ClassVar[str] = ""

    @model_validator(mode="after")
    def _account_whole(self) -> Self:
        section = self._section
        if self.broker_username == "" or self.broker_password == "":
            msg = (f"{section}.broker_username and {section}.broker_password must not be empty (unset them for no"
                   " account)")
            raise ValueError(msg)
        if (self.broker_username is None) != (self.broker_password is None):
            msg = f"{section}.broker_username and {section}.broker_password go together: set both or neither"
            raise ValueError(msg)
        return self


class AnalyticsSettings(_ServiceAccount):
    """Streaming detection. Env: ``URBANPULSE_ANALYTICS__<NAME>``."""

    alpha: float = Field(0.05, gt=0, le=1, description="EWMA smoothing factor of the baseline (0-1).")
    warmup: int = Field(30, ge=0, description="Readings a series must see before it can be scored.")
    open_score: float = Field(0.8, gt=0, le=1, description="An event opens when a score reaches this.")
    resolve_score: float = Field(0.4, ge=0, le=1, description="An open event resolves when the score falls below this.")
    poll_seconds: float = Field(1.0, gt=0, description="Longest wait between checks for committed batches.")
    checkpoint_name: str = Field("ewma", description="Name of this consumer's checkpoint row.")
    min_readings: int = Field(
        2, ge=1, description="Consecutive readings scoring >= open_score needed before an event opens (no blips); "
        "as many >= resolve_score end a calm."
    )
    resolve_hold_seconds: float = Field(
        300.0, ge=0, description="Reading time the score must stay below resolve_score (blips aside) before an event "
        "resolves."
    )
    flap_opens: int = Field(
        3, ge=0, description="Openings of one series within flap_window_seconds that make its event 'flapping'."
    )
    flap_window_seconds: float = Field(3600.0, gt=0, description="The flapping window.")
    incident_window_seconds: float = Field(
        900.0, ge=0, description="Events opening this close to an incident's members (same family and place) join it."
    )
    slow_province_hours: int = Field(
        24, ge=0, description="A province is slow while the median download of its speed tests of this many hours is "
        "under the line (STORAGE__ISPEED_SLOW_MBPS): one incident while it is; 0 turns the rule off."
    )
    slow_province_min_tests: int = Field(30, ge=1, description="Fewest tests in those hours to judge a province by.")
    slow_province_recovered_share: float = Field(
        0.45, ge=0, lt=0.5, description="A slow province recovers once at most this share of its tests is under the "
        "line (between it and half, it stays as it was)."
    )
    slow_province_networks: list[RadioNetwork] = Field(
        [LINE_NETWORK], min_length=1,
        description="The tests the rule counts (JSON list): 5G tests would lift a 4G median.",
    )
    slow_province_check_seconds: float = Field(
        60.0, gt=0, description="Reading time between two checks of the provinces' speed tests."
    )
    publish: bool = Field(True, description="Publish event and incident changes on MQTT (urbanpulse/v1/ops/...).")
    publish_update_seconds: float = Field(
        300.0, ge=0, description="Least reading time between two 'updated' messages of one event or incident."
    )
    # its account publishes events under urbanpulse/v1/ops/, which the gateway's may only read
    _section: ClassVar[str] = "analytics"


class SimSettings(_ServiceAccount):
    """Firmware simulator. Env: ``URBANPULSE_SIM__<NAME>``."""

    devices_per_kind: int = Field(20, ge=0, description="Simulated devices of each kind.")
    interval_seconds: float = Field(1.0, gt=0, description="Seconds between two readings of one device.")
    seed: int = Field(42, description="Random seed: the same seed gives the same readings.")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="Share of messages deliberately malformed (0-1).")
    _section: ClassVar[str] = "sim"  # its account publishes for every device over one connection


class GrafanaSettings(BaseModel):
    """Grafana, for ``dashboards build`` and ``dashboards push``. Env: ``URBANPULSE_GRAFANA__<NAME>``.

    The provisioned data source file reads ``URBANPULSE_GRAFANA__DB_HOST`` and
    ``URBANPULSE_GRAFANA__DB_PASSWORD`` in Grafana's own environment (Grafana expands them).
    """

    token: SecretStr | None = Field(None, description="Service-account token for `dashboards push`.")
    user: str = Field("admin", description="Grafana user for `dashboards push` when no token is given.")
    password: SecretStr = Field(SecretStr("admin"), description="That user's password.")
    db_password: SecretStr | None = Field(
        None, description="Password of the read-only role urbanpulse_grafana (`--grant-login`, `push`)."
    )
    db_host: str | None = Field(
        None, description="host:port of the database as Grafana's network sees it (the data source; `push`'s "
        "default for `--db-host`, else the host of `DATABASE__DSN`).",
    )
    db_sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = Field(
        "disable", description="The data source's TLS to the database (Grafana's sslmode): `disable` suits a "
        "database on Grafana's own private network (docker-compose's); `verify-full` for one across a network.",
    )


class Settings(BaseSettings):
    """All of urbanpulse's configuration."""

    model_config = SettingsConfigDict(env_prefix="URBANPULSE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(
        Path(".urbanpulse"),
        description="Where `urbanpulse up` keeps its own Mosquitto and PostgreSQL (kept between runs), and the "
        "gateway's spool unless `GATEWAY__SPOOL_DIR` is set.",
    )
    broker: BrokerSettings = BrokerSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    gateway: GatewaySettings = GatewaySettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    sim: SimSettings = SimSettings()
    grafana: GrafanaSettings = GrafanaSettings()

    def simulator_broker(self) -> BrokerSettings:
        """Where and as whom the simulator publishes: the broker, with the simulator's own account if it has one."""
        return self._broker_as(self.sim.broker_username, self.sim.broker_password)

    def analytics_broker(self) -> BrokerSettings:
        """Where and as whom analytics publishes events: the broker, with analytics' own account if it has one."""
        return self._broker_as(self.analytics.broker_username, self.analytics.broker_password)

    def _broker_as(self, username: str | None, password: str | None) -> BrokerSettings:
        if username is None:
            return self.broker
        return self.broker.model_copy(update={"username": username, "password": password})

    @model_validator(mode="after")
    def _spool_in_data_dir(self) -> Settings:
        """The spool follows ``data_dir`` unless it is set itself."""
        if "spool_dir" not in self.gateway.model_fields_set:
            self.gateway = self.gateway.model_copy(update={"spool_dir": self.data_dir / "spool"})
        return self

    @model_validator(mode="after")
    def _ordered_pairs(self) -> Settings:
        a, db = self.analytics, self.database
        if a.resolve_score > a.open_score:
            msg = f"analytics.resolve_score ({a.resolve_score}) must not be above open_score ({a.open_score})"
            raise ValueError(msg)
        if db.pool_min > db.pool_max:
            msg = f"database.pool_min ({db.pool_min}) must not be above pool_max ({db.pool_max})"
            raise ValueError(msg)
        late = timedelta(seconds=self.gateway.max_late_seconds)
        for kind in ("air", "traffic", "ispeed"):
            kept: timedelta = getattr(self.storage, f"{kind}_retention")
            if kept < late:
                msg = (f"{env_name('storage', f'{kind}_retention')} ({spoken(kept)}) is shorter than"
                       f" {env_name('gateway', 'max_late_seconds')} ({spoken(late)}): readings the gateway accepts"
                       " that late would be dropped by the next maintenance; lengthen the one or shorten the other")
                raise ValueError(msg)
        return self


def env_name(*path: str) -> str:
    """The environment variable of a setting: ``env_name("gateway", "batch_size")`` is
    ``URBANPULSE_GATEWAY__BATCH_SIZE``."""
    prefix, delimiter = Settings.model_config["env_prefix"], Settings.model_config["env_nested_delimiter"]
    return f"{prefix}{str(delimiter).join(path)}".upper()


COMPOSE_VARIABLES = frozenset({"URBANPULSE_DB_PASSWORD", "URBANPULSE_GRAFANA_DB_PASSWORD"})
"""docker-compose.yml's own ``${...}`` substitutions: ``URBANPULSE_`` variables that are not settings."""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``URBANPULSE_`` variables in ``environ`` that name no setting (a typo is otherwise silently
    ignored), each with the closest setting's name when there is one. Left out: the test fixtures'
    ``URBANPULSE_TEST_*`` and docker-compose's :data:`COMPOSE_VARIABLES`."""
    known = set()
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            known |= {env_name(name, sub) for sub in group.model_fields}
        else:
            known.add(env_name(name))
    out = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith("URBANPULSE_") or upper.startswith("URBANPULSE_TEST_"):
            continue
        if upper in known or upper in COMPOSE_VARIABLES:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
        out.append(f"{variable} names no setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return out
