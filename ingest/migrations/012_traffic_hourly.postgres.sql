-- Hourly traffic per detector (traffic_device_1h): a table refreshed by maintain() (ingest/refresh.py)
-- from traffic_device_15m, behind a view of the same name and columns as the continuous aggregate of
-- 012_traffic_hourly.timescaledb.sql: the table below the rollup's watermark, newer hours computed from
-- traffic_device_15m at query time. Dashboards read it for ranges longer than a day.

CREATE TABLE traffic_device_1h_store (LIKE traffic_device_15m_store INCLUDING ALL);
CREATE FUNCTION traffic_device_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF traffic_device_1h_store LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 hour', bucket, '2000-01-03 00:00+00') AS bucket, device_id,
           sum(readings)::bigint, sum(vehicles)::bigint,
           sum(speed_x_vehicles) / nullif(sum(vehicles), 0), sum(speed_x_vehicles),
           sum(occupancy_pct * readings) / nullif(sum(readings) FILTER (WHERE occupancy_pct IS NOT NULL), 0)
    FROM traffic_device_15m WHERE bucket >= t_from AND bucket < t_to
    GROUP BY 1, 2
$$;
CREATE VIEW traffic_device_1h AS
    SELECT * FROM traffic_device_1h_store WHERE bucket < (SELECT rollup_watermark('traffic_device_1h'))
    UNION ALL
    SELECT * FROM traffic_device_1h_compute(rollup_watermark('traffic_device_1h'), 'infinity');

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
