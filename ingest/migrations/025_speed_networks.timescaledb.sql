-- The speed-test rollups per network (4G, 5G, ...) as well as per province and operator. The 40 Mbit/s line is
-- a 4G line (slow provinces, analytics/slow_provinces.py, count 4G tests only), but the rollups pooled every
-- network: a province with many 5G tests showed a 4G-looking median well above its 4G tests' own, and the
-- dashboards could not tell 4G from 5G at all. Grouping by network costs a row per network a bucket.
-- Buckets wholly older than the oldest reading (past the readings' retention) cannot be split: they are kept
-- as they were in ispeed_1h_archive / ispeed_1d_archive with network NULL (all networks), which the
-- dashboards do not read; every other bucket is computed again from the readings.
-- A continuous aggregate cannot gain a grouping column: both are made again and refreshed from the readings by
-- migrate(). The archive tables (from 022, without counts) gain the counts' columns and network first.

DO $$
DECLARE
    archive text;
BEGIN
    FOREACH archive IN ARRAY ARRAY['ispeed_1h_archive', 'ispeed_1d_archive'] LOOP
        EXECUTE format('ALTER TABLE %I '
                       'ADD COLUMN below_5 bigint, ADD COLUMN below_10 bigint, ADD COLUMN below_15 bigint, '
                       'ADD COLUMN below_20 bigint, ADD COLUMN below_25 bigint, ADD COLUMN below_30 bigint, '
                       'ADD COLUMN below_35 bigint, ADD COLUMN below_40 bigint, ADD COLUMN below_45 bigint, '
                       'ADD COLUMN below_50 bigint, ADD COLUMN below_55 bigint, ADD COLUMN below_60 bigint, '
                       'ADD COLUMN below_65 bigint, ADD COLUMN below_70 bigint, ADD COLUMN below_75 bigint, '
                       'ADD COLUMN below_80 bigint, ADD COLUMN below_85 bigint, ADD COLUMN below_90 bigint, '
                       'ADD COLUMN below_95 bigint, ADD COLUMN below_100 bigint, ADD COLUMN below_120 bigint, '
                       'ADD COLUMN below_150 bigint, ADD COLUMN below_200 bigint, ADD COLUMN below_300 bigint, '
                       'ADD COLUMN network text', archive);
    END LOOP;
END
$$;
INSERT INTO ispeed_1h_archive SELECT *, NULL::text FROM ispeed_1h
    WHERE bucket + interval '1 hour' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
INSERT INTO ispeed_1d_archive SELECT *, NULL::text FROM ispeed_1d
    WHERE bucket + interval '1 day' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
DROP MATERIALIZED VIEW ispeed_1h;
DROP MATERIALIZED VIEW ispeed_1d;
DO $$
DECLARE
    line float8 := storage_setting('ispeed_slow_mbps')::float8;
    body text := $body$
SELECT %s AS bucket, province, operator, network,
       count(*) AS tests,
       percentile_cont(0.1) WITHIN GROUP (ORDER BY download_mbps) AS download_p10,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY download_mbps) AS download_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY download_mbps) AS download_p90,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY upload_mbps) AS upload_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_median,
       count(*) FILTER (WHERE download_mbps < %2$s) AS tests_below_line,
       (count(*) FILTER (WHERE download_mbps < %2$s))::float8 / count(*) AS share_below_line,
       %2$s::float8 AS line_mbps,
       count(*) FILTER (WHERE download_mbps < 5) AS below_5,
       count(*) FILTER (WHERE download_mbps < 10) AS below_10,
       count(*) FILTER (WHERE download_mbps < 15) AS below_15,
       count(*) FILTER (WHERE download_mbps < 20) AS below_20,
       count(*) FILTER (WHERE download_mbps < 25) AS below_25,
       count(*) FILTER (WHERE download_mbps < 30) AS below_30,
       count(*) FILTER (WHERE download_mbps < 35) AS below_35,
       count(*) FILTER (WHERE download_mbps < 40) AS below_40,
       count(*) FILTER (WHERE download_mbps < 45) AS below_45,
       count(*) FILTER (WHERE download_mbps < 50) AS below_50,
       count(*) FILTER (WHERE download_mbps < 55) AS below_55,
       count(*) FILTER (WHERE download_mbps < 60) AS below_60,
       count(*) FILTER (WHERE download_mbps < 65) AS below_65,
       count(*) FILTER (WHERE download_mbps < 70) AS below_70,
       count(*) FILTER (WHERE download_mbps < 75) AS below_75,
       count(*) FILTER (WHERE download_mbps < 80) AS below_80,
       count(*) FILTER (WHERE download_mbps < 85) AS below_85,
       count(*) FILTER (WHERE download_mbps < 90) AS below_90,
       count(*) FILTER (WHERE download_mbps < 95) AS below_95,
       count(*) FILTER (WHERE download_mbps < 100) AS below_100,
       count(*) FILTER (WHERE download_mbps < 120) AS below_120,
       count(*) FILTER (WHERE download_mbps < 150) AS below_150,
       count(*) FILTER (WHERE download_mbps < 200) AS below_200,
       count(*) FILTER (WHERE download_mbps < 300) AS below_300
FROM ispeed_readings
GROUP BY 1, 2, 3, 4
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
GRANT SELECT ON ispeed_1h, ispeed_1d, ispeed_1h_archive, ispeed_1d_archive TO urbanpulse_grafana;
DELETE FROM rollup_state WHERE name IN ('ispeed_1h', 'ispeed_1d');
