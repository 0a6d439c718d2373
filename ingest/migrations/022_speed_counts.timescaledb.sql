-- Medians from the speed-test rollups. A median does not add up: the dashboards' median over several
-- operators or hours was the tests-weighted mean of the hourly medians, which with a few tests an hour is
-- nearer the tests' mean and, speeds being right-skewed, above their median (a province whose tests' median
-- was 39.9 Mbit/s showed 41.2, green). Counts do add up: each bucket now keeps how many of its tests were
-- under each of these speeds (below_5 .. below_300, Mbit/s), and the dashboards read the median of any set
-- of buckets off their summed counts (dashboards/speeds.py).
-- A continuous aggregate cannot gain columns: both are made again and refreshed from the readings by
-- migrate(). Buckets wholly older than the oldest reading (past the readings' retention) cannot be
-- recomputed: they are kept in ispeed_1h_archive / ispeed_1d_archive first (as they were, without counts),
-- which the dashboards do not read.

CREATE TABLE ispeed_1h_archive AS SELECT * FROM ispeed_1h
    WHERE bucket + interval '1 hour' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
CREATE TABLE ispeed_1d_archive AS SELECT * FROM ispeed_1d
    WHERE bucket + interval '1 day' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
DROP MATERIALIZED VIEW ispeed_1h;
DROP MATERIALIZED VIEW ispeed_1d;
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
GRANT SELECT ON ispeed_1h, ispeed_1d, ispeed_1h_archive, ispeed_1d_archive TO urbanpulse_grafana;
DELETE FROM rollup_state WHERE name IN ('ispeed_1h', 'ispeed_1d');
