-- Devices registered without a province or district show on the dashboards under 'unknown', as their
-- readings already do in every rollup view (007, 013, 015, 018). grafana_devices gave NULL, which the
-- dashboards' Province and District variables could not offer, so "All" left such devices out of every
-- panel filtered by place: the fleet table, the map, the device picker, the readings in the last hour.

CREATE OR REPLACE VIEW grafana_devices AS
SELECT device_id, kind, coalesce(province, 'unknown') AS province, coalesce(district, 'unknown') AS district,
       lat, lon, firmware_version, enabled, created_at, last_seen, online
FROM devices;
