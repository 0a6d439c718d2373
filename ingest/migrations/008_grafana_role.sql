-- urbanpulse_grafana: read-only access for dashboards. SELECT on the readings and on the rollup
-- views, nothing else: no INSERT/UPDATE/DELETE/TRUNCATE, no DDL (no CREATE on the schema), no other
-- table (devices with its secret hashes, dead letters, events, configuration). NOLOGIN until an
-- administrator gives it a password:
--     ALTER ROLE urbanpulse_grafana LOGIN PASSWORD '...';
-- Roles belong to the cluster, so a second database of the same cluster reuses it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'urbanpulse_grafana') THEN
        CREATE ROLE urbanpulse_grafana NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO urbanpulse_grafana;
REVOKE CREATE ON SCHEMA public FROM urbanpulse_grafana;
GRANT SELECT ON air_readings, traffic_readings, ispeed_readings,
    air_device_1h, air_aqi_1h, air_aqi_1d, air_hourly, air_hourly_district, air_hourly_province,
    air_daily, air_daily_district, air_daily_province,
    traffic_device_15m, traffic_15m, traffic_15m_district, traffic_typical_speed,
    ispeed_1h, ispeed_1d
TO urbanpulse_grafana;
