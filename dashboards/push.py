"""``urbanpulse dashboards push --url URL``: the data source, folders and dashboards through Grafana's HTTP API
(grafana-client), idempotently -- what exists and is equal is left alone, so a second push only reads.

- data source ``urbanpulse-pg``: ``GET /api/datasources/uid/{uid}``, then ``POST /api/datasources`` or
  ``PUT /api/datasources/uid/{uid}``;
- folders: ``GET /api/folders/{uid}``, then ``POST /api/folders`` (never updated);
- dashboards: ``GET /api/dashboards/uid/{uid}``, then ``POST /api/dashboards/db`` with ``overwrite: true``.

The password of the read-only role is sent when the data source is created or changed (Grafana never
returns it, so it cannot be compared).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from urbanpulse.dashboards import panels
from urbanpulse.dashboards.build import FOLDERS, OPERATIONS, READ_ONLY_ROLE, datasource_config
from urbanpulse.dashboards.model import Dashboard
from urbanpulse.dashboards.render import dashboard_json
from urbanpulse.dashboards.sqlquery import DATASOURCE_UID
from urbanpulse.settings import Settings

FOLDER_UIDS = {OPERATIONS: "urbanpulse-folder-operations", "urbanpulse platform": "urbanpulse-folder-platform"}
_VOLATILE = ("id", "version")  # set by Grafana on save


class Api(Protocol):
    """The part of ``grafana_client.GrafanaApi`` used here."""

    datasource: Any
    folder: Any
    dashboard: Any


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # datasource, folder, dashboard
    uid: str
    done: str  # created, updated, unchanged


def datasource_payload(settings: Settings, *, timescaledb: bool, host: str, password: str) -> dict[str, Any]:
    """The data source as the API takes it: the provisioning document with real host and password."""
    ds = dict(datasource_config(settings, timescaledb=timescaledb)["datasources"][0])
    ds |= {"url": host, "user": READ_ONLY_ROLE, "secureJsonData": {"password": password}}
    return ds


def _missing(call: Callable[[], Any]) -> Any:
    """``call()``, or None when Grafana answers 404."""
    from grafana_client.client import GrafanaClientError  # noqa: PLC0415

    try:
        return call()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def _same_datasource(have: dict[str, Any], want: dict[str, Any]) -> bool:
    keys = ("name", "type", "url", "user", "access", "isDefault", "jsonData")
    return all(have.get(k) == want.get(k) for k in keys)


def _stable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in _VOLATILE}


def push(api: Api, datasource: dict[str, Any], boards: Iterable[Dashboard] = panels.DASHBOARDS) -> list[Action]:
    """Create or update the data source, folders and dashboards; returns what was done to each."""
    actions = []
    have = _missing(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID))
    if have is None:
        api.datasource.create_datasource(datasource)
        actions.append(Action("datasource", DATASOURCE_UID, "created"))
    elif not _same_datasource(have, datasource):
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, datasource)
        actions.append(Action("datasource", DATASOURCE_UID, "updated"))
    else:
        actions.append(Action("datasource", DATASOURCE_UID, "unchanged"))
    boards = tuple(boards)
    for title in dict.fromkeys(FOLDERS.get(b.uid, OPERATIONS) for b in boards):
        uid = FOLDER_UIDS[title]
        if _missing(lambda uid=uid: api.folder.get_folder(uid)) is None:  # type: ignore[misc]
            api.folder.create_folder(title, uid=uid)
            actions.append(Action("folder", uid, "created"))
        else:
            actions.append(Action("folder", uid, "unchanged"))
    for board in boards:
        folder = FOLDER_UIDS[FOLDERS.get(board.uid, OPERATIONS)]
        want = dashboard_json(board)
        have = _missing(lambda uid=board.uid: api.dashboard.get_dashboard(uid))  # type: ignore[misc]
        if have is not None and _stable(have.get("dashboard", {})) == _stable(want) \
                and have.get("meta", {}).get("folderUid") == folder:
            actions.append(Action("dashboard", board.uid, "unchanged"))
            continue
        api.dashboard.update_dashboard({"dashboard": want, "folderUid": folder, "overwrite": True,
                                        "message": "urbanpulse dashboards push"})
        actions.append(Action("dashboard", board.uid, "created" if have is None else "updated"))
    return actions
