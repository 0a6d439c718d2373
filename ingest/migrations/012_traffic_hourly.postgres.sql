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
