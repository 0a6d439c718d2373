"""urbanpulse: the telemetry core of a city operations centre.

Devices publish over MQTT; :mod:`urbanpulse.gateway` validates and batches their readings;
:mod:`urbanpulse.ingest` stores them in PostgreSQL / TimescaleDB; :mod:`urbanpulse.analytics` turns
streaming anomaly scores into events; :mod:`urbanpulse.dashboards` provisions Grafana; and
:mod:`urbanpulse.sim` plays a city of devices. :mod:`urbanpulse.contract` defines the readings.
"""

__version__ = "0.1.0"
