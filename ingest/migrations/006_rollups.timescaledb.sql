-- Base rollups as continuous aggregates, real-time aggregation on (materialized_only = false):
-- buckets below the refresh watermark come from the materialization, newer ones from the readings at
-- query time. Created WITH NO DATA (allowed in a transaction); the refresh policies (set by
-- migrate()) and maintain() fill them. Same names and columns as 006_rollups.postgres.sql.

CREATE MATERIALIZED VIEW air_device_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket, device_id,
       count(*) AS readings,
       avg(pm25) AS pm25_mean, max(pm25) AS pm25_max,
       avg(pm10) AS pm10_mean, max(pm10) AS pm10_max,
       avg(no2) AS no2_mean, max(no2) AS no2_max, count(no2) AS no2_n,
       avg(o3) AS o3_mean, max(o3) AS o3_max, count(o3) AS o3_n,
       avg(so2) AS so2_mean, max(so2) AS so2_max, count(so2) AS so2_n,
       avg(co) AS co_mean, max(co) AS co_max, count(co) AS co_n,
       avg(temperature) AS temperature_mean, avg(humidity) AS humidity_mean, avg(noise) AS noise_mean
FROM air_readings
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW traffic_device_15m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('15 minutes', time) AS bucket, device_id,
       count(*) AS readings,
       sum(vehicle_count)::bigint AS vehicles,
       sum(speed_kmh * vehicle_count) / nullif(sum(vehicle_count), 0) AS speed_kmh,
       sum(speed_kmh * vehicle_count) AS speed_x_vehicles,
       avg(occupancy_pct) AS occupancy_pct
FROM traffic_readings
GROUP BY 1, 2
WITH NO DATA;

DO $$
DECLARE
    line float8 := storage_setting('ispeed_slow_mbps')::float8;
    body text := $body$
SELECT %s AS bucket, province, operator,
       count(*) AS tests,
       percentile_cont(0.1) WITHIN GROUP (ORDER BY download_mbps) AS download_p10,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps) AS download_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY download_mbps) AS download_p90,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY upload_mbps) AS upload_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_median,
       count(*) FILTER (WHERE download_mbps < %2$s) AS tests_below_line,
       (count(*) FILTER (WHERE download_mbps < %2$s))::float8 / count(*) AS share_below_line,
       %2$s::float8 AS line_mbps
FROM ispeed_readings
GROUP BY 1, 2, 3
$body$;
BEGIN
    EXECUTE format('CREATE MATERIALIZED VIEW ispeed_1h WITH (timescaledb.continuous, '
                   'timescaledb.materialized_only = false) AS ' || body || ' WITH NO DATA',
                   $q$time_bucket('1 hour', time)$q$, line);
    EXECUTE format('CREATE MATERIALIZED VIEW ispeed_1d WITH (timescaledb.continuous, '
                   'timescaledb.materialized_only = false) AS ' || body || ' WITH NO DATA',
                   format('time_bucket(%L, time, %L)', '1 day', storage_setting('day_timezone')), line);
END
$$;
