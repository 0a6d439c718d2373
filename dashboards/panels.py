"""Every dashboard urbanpulse provisions, in folder order; each is declared as data in its own module.

| uid | module |
|---|---|
| ``urbanpulse-city`` | :mod:`~urbanpulse.dashboards.overview` (city overview) |
| ``urbanpulse-air`` | :mod:`~urbanpulse.dashboards.air` |
| ``urbanpulse-traffic`` | :mod:`~urbanpulse.dashboards.traffic` |
| ``urbanpulse-network`` | :mod:`~urbanpulse.dashboards.network` (iSpeed) |
| ``urbanpulse-events`` | :mod:`~urbanpulse.dashboards.events` |
| ``urbanpulse-platform`` | :mod:`~urbanpulse.dashboards.platform` |
| ``urbanpulse-device`` | :mod:`~urbanpulse.dashboards.overview` (the drill-down target) |
"""

from __future__ import annotations

from urbanpulse.dashboards.air import AIR
from urbanpulse.dashboards.events import EVENTS_BOARD
from urbanpulse.dashboards.model import Dashboard
from urbanpulse.dashboards.network import NETWORK
from urbanpulse.dashboards.overview import CITY, DEVICE
from urbanpulse.dashboards.platform import PLATFORM
from urbanpulse.dashboards.traffic import TRAFFIC

DASHBOARDS: tuple[Dashboard, ...] = (CITY, AIR, TRAFFIC, NETWORK, EVENTS_BOARD, PLATFORM, DEVICE)
BY_UID = {board.uid: board for board in DASHBOARDS}
