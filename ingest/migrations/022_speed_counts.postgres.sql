-- Medians from the speed-test rollups. A median does not add up: the dashboards' median over several
-- operators or hours was the tests-weighted mean of the hourly medians, which with a few tests an hour is
-- nearer the tests' mean and, speeds being right-skewed, above their median (a province whose tests' median
-- was 39.9 Mbit/s showed 41.2, green). Counts do add up: each bucket now keeps how many of its tests were
-- under each of these speeds (below_5 .. below_300, Mbit/s), and the dashboards read the median of any set
-- of buckets off their summed counts (dashboards/speeds.py).
-- Nothing is lost: the stored buckets stay, their counts NULL until the next maintenance recomputes every
-- bucket that still has readings (its horizon is reset below). Buckets older than the readings' retention
-- keep NULL counts, and the dashboards fall back to the weighted mean of medians for them.

DROP VIEW ispeed_1h;
DROP VIEW ispeed_1d;
DROP FUNCTION ispeed_1h_compute(timestamptz, timestamptz);
DROP FUNCTION ispeed_1d_compute(timestamptz, timestamptz);
DROP FUNCTION ispeed_compute(boolean, timestamptz, timestamptz);
DO $$
DECLARE
    store text;
BEGIN
    FOREACH store IN ARRAY ARRAY['ispeed_1h_store', 'ispeed_1d_store'] LOOP
        EXECUTE format('ALTER TABLE %I '
                   'ADD COLUMN below_5 bigint, ADD COLUMN below_10 bigint, ADD COLUMN below_15 bigint,
                   ADD COLUMN below_20 bigint, ADD COLUMN below_25 bigint, ADD COLUMN below_30 bigint,
                   ADD COLUMN below_35 bigint, ADD COLUMN below_40 bigint, ADD COLUMN below_45 bigint,
                   ADD COLUMN below_50 bigint, ADD COLUMN below_55 bigint, ADD COLUMN below_60 bigint,
                   ADD COLUMN below_65 bigint, ADD COLUMN below_70 bigint, ADD COLUMN below_75 bigint,
                   ADD COLUMN below_80 bigint, ADD COLUMN below_85 bigint, ADD COLUMN below_90 bigint,
                   ADD COLUMN below_95 bigint, ADD COLUMN below_100 bigint, ADD COLUMN below_120 bigint,
                   ADD COLUMN below_150 bigint, ADD COLUMN below_200 bigint, ADD COLUMN below_300 bigint', store);
    END LOOP;
END
$$;

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
           line.mbps,
           count(*) FILTER (WHERE download_mbps < 5),
           count(*) FILTER (WHERE download_mbps < 10),
           count(*) FILTER (WHERE download_mbps < 15),
           count(*) FILTER (WHERE download_mbps < 20),
           count(*) FILTER (WHERE download_mbps < 25),
           count(*) FILTER (WHERE download_mbps < 30),
           count(*) FILTER (WHERE download_mbps < 35),
           count(*) FILTER (WHERE download_mbps < 40),
           count(*) FILTER (WHERE download_mbps < 45),
           count(*) FILTER (WHERE download_mbps < 50),
           count(*) FILTER (WHERE download_mbps < 55),
           count(*) FILTER (WHERE download_mbps < 60),
           count(*) FILTER (WHERE download_mbps < 65),
           count(*) FILTER (WHERE download_mbps < 70),
           count(*) FILTER (WHERE download_mbps < 75),
           count(*) FILTER (WHERE download_mbps < 80),
           count(*) FILTER (WHERE download_mbps < 85),
           count(*) FILTER (WHERE download_mbps < 90),
           count(*) FILTER (WHERE download_mbps < 95),
           count(*) FILTER (WHERE download_mbps < 100),
           count(*) FILTER (WHERE download_mbps < 120),
           count(*) FILTER (WHERE download_mbps < 150),
           count(*) FILTER (WHERE download_mbps < 200),
           count(*) FILTER (WHERE download_mbps < 300)
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
GRANT SELECT ON ispeed_1h, ispeed_1d TO urbanpulse_grafana;
UPDATE rollup_state SET horizon = NULL WHERE name IN ('ispeed_1h', 'ispeed_1d');  -- every bucket with readings
