-- Base rollups as tables refreshed by maintain() (ingest/refresh.py), behind views of the same names
-- and columns as the continuous aggregates of 006_rollups.timescaledb.sql. A view reads its table
-- below the rollup's watermark (rollup_state) and aggregates the readings at query time from there
-- on, like TimescaleDB's real-time aggregation. <name>_compute(from, to) is the one definition of
-- each rollup: maintain() refreshes the table with it, the view's live part calls it.

CREATE TABLE air_device_1h_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL,
    pm25_mean float8, pm25_max float8, pm10_mean float8, pm10_max float8,
    no2_mean float8, no2_max float8, no2_n bigint, o3_mean float8, o3_max float8, o3_n bigint,
    so2_mean float8, so2_max float8, so2_n bigint, co_mean float8, co_max float8, co_n bigint,
    temperature_mean float8, humidity_mean float8, noise_mean float8,
    PRIMARY KEY (bucket, device_id)
);
CREATE FUNCTION air_device_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_device_1h_store LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 hour', time, '2000-01-03 00:00+00') AS bucket, device_id,
           count(*), avg(pm25), max(pm25), avg(pm10), max(pm10),
           avg(no2), max(no2), count(no2), avg(o3), max(o3), count(o3),
           avg(so2), max(so2), count(so2), avg(co), max(co), count(co),
           avg(temperature), avg(humidity), avg(noise)
    FROM air_readings WHERE time >= t_from AND time < t_to
    GROUP BY 1, 2
$$;
CREATE VIEW air_device_1h AS
    SELECT * FROM air_device_1h_store WHERE bucket < (SELECT rollup_watermark('air_device_1h'))
    UNION ALL
    SELECT * FROM air_device_1h_compute(rollup_watermark('air_device_1h'), 'infinity');

CREATE TABLE traffic_device_15m_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL, vehicles bigint,
    speed_kmh float8, speed_x_vehicles float8, occupancy_pct float8,
    PRIMARY KEY (bucket, device_id)
);
CREATE FUNCTION traffic_device_15m_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF traffic_device_15m_store LANGUAGE sql STABLE AS $$
    SELECT date_bin('15 minutes', time, '2000-01-03 00:00+00') AS bucket, device_id,
           count(*), sum(vehicle_count)::bigint,
           sum(speed_kmh * vehicle_count) / nullif(sum(vehicle_count), 0),
           sum(speed_kmh * vehicle_count), avg(occupancy_pct)
    FROM traffic_readings WHERE time >= t_from AND time < t_to
    GROUP BY 1, 2
$$;
CREATE VIEW traffic_device_15m AS
    SELECT * FROM traffic_device_15m_store WHERE bucket < (SELECT rollup_watermark('traffic_device_15m'))
    UNION ALL
    SELECT * FROM traffic_device_15m_compute(rollup_watermark('traffic_device_15m'), 'infinity');

CREATE TABLE ispeed_1h_store (
    bucket timestamptz NOT NULL, province text NOT NULL, operator text NOT NULL, tests bigint NOT NULL,
    download_p10 float8, download_median float8, download_p90 float8, upload_median float8,
    latency_median float8, tests_below_line bigint, share_below_line float8, line_mbps float8,
    PRIMARY KEY (bucket, province, operator)
);
CREATE TABLE ispeed_1d_store (LIKE ispeed_1h_store INCLUDING ALL);

-- One definition for both ispeed rollups: `daily` picks the bucket.
CREATE FUNCTION ispeed_compute(daily boolean, t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1h_store LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN daily THEN date_trunc('day', time, (SELECT storage_setting('day_timezone')))
                ELSE date_bin('1 hour', time, '2000-01-03 00:00+00') END AS bucket,
           province, operator, count(*),
           percentile_cont(0.1) WITHIN GROUP (ORDER BY download_mbps),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY download_mbps),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY upload_mbps),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
           count(*) FILTER (WHERE download_mbps < line.mbps),
           (count(*) FILTER (WHERE download_mbps < line.mbps))::float8 / count(*),
           line.mbps
    FROM ispeed_readings, (SELECT storage_setting('ispeed_slow_mbps')::float8 AS mbps) AS line
    WHERE time >= t_from AND time < t_to
    GROUP BY 1, 2, 3, line.mbps
$$;
CREATE FUNCTION ispeed_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1h_store LANGUAGE sql STABLE AS $$ SELECT * FROM ispeed_compute(false, t_from, t_to) $$;
CREATE FUNCTION ispeed_1d_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1d_store LANGUAGE sql STABLE AS $$ SELECT * FROM ispeed_compute(true, t_from, t_to) $$;
CREATE VIEW ispeed_1h AS
    SELECT * FROM ispeed_1h_store WHERE bucket < (SELECT rollup_watermark('ispeed_1h'))
    UNION ALL
    SELECT * FROM ispeed_1h_compute(rollup_watermark('ispeed_1h'), 'infinity');
CREATE VIEW ispeed_1d AS
    SELECT * FROM ispeed_1d_store WHERE bucket < (SELECT rollup_watermark('ispeed_1d'))
    UNION ALL
    SELECT * FROM ispeed_1d_compute(rollup_watermark('ispeed_1d'), 'infinity');
