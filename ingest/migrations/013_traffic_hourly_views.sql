-- The views over traffic_device_1h (migration 012 makes it on either backend), the same on both.

-- Per detector with place and congestion, and per district: the hourly twins of traffic_15m and
-- traffic_15m_district. An hour's congestion index is that of its vehicle-weighted speed, 1 - speed /
-- typical speed for the hour of week, clamped to [0, 1].
CREATE VIEW traffic_1h AS
SELECT b.bucket, b.device_id, coalesce(d.province, 'unknown') AS province,
       coalesce(d.district, 'unknown') AS district, b.readings, b.vehicles, b.speed_kmh, b.occupancy_pct,
       t.speed_kmh AS typical_speed_kmh,
       CASE WHEN t.speed_kmh > 0 AND b.speed_kmh IS NOT NULL
            THEN greatest(0, least(1, 1 - b.speed_kmh / t.speed_kmh)) END AS congestion_index,
       b.speed_x_vehicles
FROM traffic_device_1h AS b
LEFT JOIN devices AS d ON d.device_id = b.device_id
LEFT JOIN traffic_typical_speed AS t ON t.device_id = b.device_id AND t.hour_of_week = hour_of_week(b.bucket, (SELECT storage_setting('day_timezone')));

CREATE VIEW traffic_1h_district AS
SELECT bucket, province, district, count(*) AS segments, sum(readings)::bigint AS readings,
       sum(vehicles)::bigint AS vehicles, sum(speed_x_vehicles) / nullif(sum(vehicles), 0)::float8 AS speed_kmh,
       sum(occupancy_pct * readings) / sum(readings)::float8 AS occupancy_pct,
       sum(congestion_index * vehicles) / nullif(sum(vehicles) FILTER (WHERE congestion_index IS NOT NULL), 0)::float8
           AS congestion_index
FROM traffic_1h GROUP BY bucket, province, district;

GRANT SELECT ON traffic_device_1h, traffic_1h, traffic_1h_district TO urbanpulse_grafana;

-- The per-station AQI panel reads only bucket, device_id and aqi of air_aqi_1h: an index-only scan
-- instead of the table's wide rows.
CREATE INDEX air_aqi_1h_store_aqi ON air_aqi_1h_store (bucket, device_id) INCLUDE (aqi) WHERE aqi IS NOT NULL;
