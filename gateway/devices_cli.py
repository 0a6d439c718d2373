"""``urbanpulse devices ...`` (the registry) and ``urbanpulse broker config`` (Mosquitto's config).

Every command that changes who may connect takes ``--broker-dir DIR`` to rewrite the broker's
password and ACL files from the registry right after the change, and ``--reload PID|PIDFILE`` to
SIGHUP the broker so they take effect. Messages go to stderr; a secret alone goes to stdout.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from psycopg.rows import TupleRow
from rich.table import Table

from urbanpulse.contract import Kind
from urbanpulse.gateway.broker_files import (
    ServiceAccount,
    TlsFiles,
    broker_config,
    password_file_text,
    reload_broker,
    service_account,
    write_atomic,
    write_broker_files,
)
from urbanpulse.gateway.registry import (
    RegistryError,
    add_device,
    import_devices,
    list_devices,
    parse_devices_csv,
    rotate_secret,
    set_enabled,
    spec,
)
from urbanpulse.settings import Settings, env_name
from urbanpulse.tables import show
from urbanpulse.terminal import err

devices_app = typer.Typer(
    help="Device registry: add, import, list, disable, enable, rotate secrets.", no_args_is_help=True
)
broker_app = typer.Typer(help="Mosquitto configuration for an authenticated broker.", no_args_is_help=True)

BrokerDir = Annotated[
    Path | None,
    typer.Option(
        help="Rewrite the broker's passwd and acl files in this folder after the change (the gateway's "
        "account comes from URBANPULSE_BROKER__USERNAME / URBANPULSE_BROKER__PASSWORD)."
    ),
]
Reload = Annotated[
    str | None,
    typer.Option(help="Then send SIGHUP to this broker (a pid, or Mosquitto's pid_file) so it re-reads them."),
]


@contextmanager
def _registry() -> Iterator[psycopg.Connection[TupleRow]]:
    """A connection to the configured database; a ``RegistryError`` (bad input: an id, a coordinate, a CSV line, a
    device that is not there, broker settings that would lock the gateway out) ends the command with its message
    and exit status 2, as every command's bad input does (README "The CLI")."""
    try:
        with psycopg.connect(Settings().database.dsn) as conn:
            yield conn
    except RegistryError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _services(broker_dir: Path | None, reload: str | None) -> list[ServiceAccount]:
    """The service accounts to write with the devices; checked before anything changes."""
    if broker_dir is None:
        if reload:
            msg = "--reload needs --broker-dir (the files to reload)"
            raise RegistryError(msg)
        return []
    settings = Settings()
    broker, sim = settings.broker, settings.sim
    if not broker.username or not broker.password:
        msg = (
            f"set {env_name('broker', 'username')} and {env_name('broker', 'password')} (the gateway's broker "
            "account) before writing broker files, or the gateway would be locked out"
        )
        raise RegistryError(msg)
    services = [service_account("gateway", broker.username, broker.password)]
    taken = {broker.username: env_name("broker", "username")}
    for kind, section, username, password in (
        ("simulator", "sim", sim.broker_username, sim.broker_password),
        ("analytics", "analytics", settings.analytics.broker_username, settings.analytics.broker_password),
    ):
        if username is None or password is None:
            continue
        if username in taken:
            msg = (f"{env_name(section, 'broker_username')} must differ from {taken[username]} (each service's"
                   " account may do only its own part: the gateway reads, the simulator writes readings, analytics"
                   " writes events)")
            raise RegistryError(msg)
        taken[username] = env_name(section, "broker_username")
        services.append(service_account(kind, username, password))
    try:
        password_file_text([], services)  # a name Mosquitto's files cannot hold: refused before anything changes
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    return services


def _sync_broker(
    conn: psycopg.Connection[TupleRow], broker_dir: Path | None, reload: str | None, services: list[ServiceAccount]
) -> None:
    """Rewrite the broker's files from the (committed) registry and reload the broker, if asked."""
    if broker_dir is None:
        return
    password_file, acl_file = write_broker_files(conn, broker_dir, services)
    err.print(f"wrote {password_file} and {acl_file}", highlight=False)
    if reload:
        try:
            pid = reload_broker(reload)
        except (ValueError, ProcessLookupError) as exc:
            err.print(f"[red]the broker was not reloaded: {exc}[/red] (its files are written; reload it by hand)",
                      highlight=False)
            raise typer.Exit(1) from exc
        err.print(f"reloaded the broker (pid {pid})", highlight=False)


@devices_app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(help="Device id (also its MQTT user name).")],
    kind: Annotated[Kind, typer.Option(help="Kind of readings it sends.")],
    province: Annotated[str | None, typer.Option(help="Province it stands in.")] = None,
    district: Annotated[str | None, typer.Option(help="District it stands in.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (WGS84).")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude (WGS84).")] = None,
    firmware: Annotated[str | None, typer.Option(help="Firmware version.")] = None,
    broker_dir: BrokerDir = None,
    reload: Reload = None,
) -> None:
    """Register a device and print its secret (once: only its hash is kept)."""
    with _registry() as conn:
        services = _services(broker_dir, reload)
        device = spec(
            device_id=device_id,
            kind=kind,
            province=province,
            district=district,
            lat=lat,
            lon=lon,
            firmware_version=firmware,
        )
        secret = add_device(conn, device)
        err.print(f"registered {device_id}; its secret follows, shown this once:", highlight=False)
        typer.echo(secret)
        _sync_broker(conn, broker_dir, reload, services)


def _secrets_csv(pairs: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device_id", "secret"])
    writer.writerows(pairs)
    return out.getvalue()


@devices_app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: device_id,kind,province,district,lat,lon,firmware_version.", exists=True, dir_okay=False
        ),
    ],
    secrets_out: Annotated[
        Path | None, typer.Option(help="Write device_id,secret here (a new file, mode 0600) instead of to stdout.")
    ] = None,
    broker_dir: BrokerDir = None,
    reload: Reload = None,
) -> None:
    """Register every device of a CSV file, or none (one transaction); the secrets are shown once."""
    with _registry() as conn:
        services = _services(broker_dir, reload)
        numbered = parse_devices_csv(file.read_text(encoding="utf-8-sig"))
        specs, lines = [d for _, d in numbered], {d.device_id: line for line, d in numbered}
        if secrets_out and secrets_out.exists():
            msg = f"{secrets_out} exists; secrets are never overwritten"
            raise RegistryError(msg)
        try:
            with conn.transaction():
                pairs = import_devices(conn, specs, lines)
                if secrets_out:  # saved before the commit: no committed device without its secret on disk
                    fd = os.open(secrets_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        out.write(_secrets_csv(pairs))
                        out.flush()
                        os.fsync(out.fileno())
        except BaseException:
            if secrets_out and secrets_out.exists():
                secrets_out.unlink()
            raise
        if not secrets_out:
            typer.echo(_secrets_csv(pairs), nl=False)
        err.print(
            f"imported {len(pairs)} devices" + (f"; secrets in {secrets_out}" if secrets_out else ""), highlight=False
        )
        _sync_broker(conn, broker_dir, reload, services)


@devices_app.command("list")
def list_(
    kind: Annotated[Kind | None, typer.Option(help="Only devices of this kind.")] = None,
    province: Annotated[str | None, typer.Option(help="Only devices in this province.")] = None,
) -> None:
    """Show registered devices (never their secrets)."""
    with _registry() as conn:
        devices = list_devices(conn, kind, province)
    table = Table(
        "device",
        "kind",
        "province",
        "district",
        "lat",
        "lon",
        "firmware",
        "enabled",
        "online",
        "last seen",
        title=f"{len(devices)} devices",
    )
    for d in devices:
        table.add_row(
            d.device_id,
            d.kind.value,
            d.province or "",
            d.district or "",
            "" if d.lat is None else f"{d.lat:.5f}",
            "" if d.lon is None else f"{d.lon:.5f}",
            d.firmware_version or "",
            "yes" if d.enabled else "[red]no[/red]",
            "yes" if d.online else "no",
            d.last_seen.isoformat(timespec="seconds") if d.last_seen else "never",
        )
    show(table)


@devices_app.command("disable")
def disable(device_id: str, broker_dir: BrokerDir = None, reload: Reload = None) -> None:
    """Refuse a device: the gateway at its next directory refresh, the broker once its files are reloaded."""
    with _registry() as conn:
        services = _services(broker_dir, reload)
        set_enabled(conn, device_id, False)
        err.print(f"disabled {device_id}", highlight=False)
        _sync_broker(conn, broker_dir, reload, services)


@devices_app.command("enable")
def enable(device_id: str, broker_dir: BrokerDir = None, reload: Reload = None) -> None:
    """Accept a disabled device again (with the secret it had)."""
    with _registry() as conn:
        services = _services(broker_dir, reload)
        set_enabled(conn, device_id, True)
        err.print(f"enabled {device_id}", highlight=False)
        _sync_broker(conn, broker_dir, reload, services)


@devices_app.command("rotate-secret")
def rotate(device_id: str, broker_dir: BrokerDir = None, reload: Reload = None) -> None:
    """Give a device a new secret and print it (once); the old one stops working when the broker reloads."""
    with _registry() as conn:
        services = _services(broker_dir, reload)
        secret = rotate_secret(conn, device_id)
        err.print(f"new secret of {device_id} follows, shown this once:", highlight=False)
        typer.echo(secret)
        _sync_broker(conn, broker_dir, reload, services)


@broker_app.command("files")
def files(
    broker_dir: Annotated[
        Path,
        typer.Option(
            help="Folder of the passwd and acl files (the gateway's account "
            "comes from URBANPULSE_BROKER__USERNAME / __PASSWORD)."
        ),
    ],
    reload: Reload = None,
) -> None:
    """Rewrite the broker's passwd and acl files from the registry (e.g. after restoring the database)."""
    with _registry() as conn:
        _sync_broker(conn, broker_dir, reload, _services(broker_dir, reload))


@broker_app.command("config")
def config(
    out: Annotated[Path, typer.Option(help="Where to write mosquitto.conf.")],
    port: Annotated[int, typer.Option(help="Plain MQTT port.", min=1, max=65535)] = 1883,
    bind: Annotated[str | None, typer.Option(help="Address to listen on (default: all).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Persistence folder.")] = Path("/var/lib/mosquitto"),
    password_file: Annotated[Path | None, typer.Option(help="Default: passwd next to --out.")] = None,
    acl_file: Annotated[Path | None, typer.Option(help="Default: acl next to --out.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM): adds a TLS listener.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Its private key (PEM).")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM).")] = None,
    tls_port: Annotated[int, typer.Option(help="TLS listener port.", min=1, max=65535)] = 8883,
    user: Annotated[str | None, typer.Option(help="System user the broker runs as.")] = None,
    pid_file: Annotated[Path | None, typer.Option(help="Mosquitto writes its pid here (for --reload).")] = None,
    service_port: Annotated[int | None, typer.Option(
        help="A listener for the services (gateway, analytics, simulator; URBANPULSE_BROKER__PORT); devices' client"
        " ids are then their user names, so none can take the gateway's session.", min=1, max=65535)] = None,
    service_bind: Annotated[str, typer.Option(help="Address of the services' listener (one devices cannot reach).")
                            ] = "127.0.0.1",
) -> None:
    """Write a complete mosquitto.conf: no anonymous clients, the registry's files, a durable queue."""
    tls_given = [tls_cert, tls_key, tls_ca]
    if any(tls_given) and not all(tls_given):
        err.print("[red]error:[/red] --tls-cert, --tls-key and --tls-ca go together")
        raise typer.Exit(2)
    folder = out.absolute().parent
    text = broker_config(
        password_file=(password_file or folder / "passwd").absolute(),
        acl_file=(acl_file or folder / "acl").absolute(),
        data_dir=data_dir.absolute(),
        port=port,
        bind=bind,
        tls=TlsFiles(tls_cert.absolute(), tls_key.absolute(), tls_ca.absolute())
        if tls_cert and tls_key and tls_ca
        else None,
        tls_port=tls_port,
        user=user,
        pid_file=pid_file.absolute() if pid_file else None,
        service_port=service_port,
        service_bind=service_bind,
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text, mode=0o644)
    err.print(f"wrote {out}", highlight=False)
