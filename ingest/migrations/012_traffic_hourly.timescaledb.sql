-- Hourly traffic per detector (traffic_device_1h): a hierarchical continuous aggregate on
-- traffic_device_15m, real-time like it (buckets below the refresh watermark from the materialization,
-- newer ones from traffic_device_15m at query time). Same name and columns as
-- 012_traffic_hourly.postgres.sql. Dashboards read it for ranges longer than a day.

CREATE MATERIALIZED VIEW traffic_device_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', bucket) AS bucket, device_id,
       sum(readings)::bigint AS readings,
       sum(vehicles)::bigint AS vehicles,
       sum(speed_x_vehicles) / nullif(sum(vehicles), 0) AS speed_kmh,
       sum(speed_x_vehicles) AS speed_x_vehicles,
       sum(occupancy_pct * readings) / nullif(sum(readings) FILTER (WHERE occupancy_pct IS NOT NULL), 0)
           AS occupancy_pct
FROM traffic_device_15m
GROUP BY 1, 2
WITH NO DATA;
