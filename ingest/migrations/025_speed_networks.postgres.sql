-- The speed-test rollups per network (4G, 5G, ...) as well as per province and operator. The 40 Mbit/s line is
-- a 4G line (slow provinces, analytics/slow_provinces.py, count 4G tests only), but the rollups pooled every
-- network: a province with many 5G tests showed a 4G-looking median well above its 4G tests' own, and the
-- dashboards could not tell 4G from 5G at all. Grouping by network costs a row per network a bucket.
-- Buckets wholly older than the oldest reading (past the readings' retention) cannot be split: they are kept
-- as they were in ispeed_1h_archive / ispeed_1d_archive with network NULL (all networks), which the
-- dashboards do not read; every other bucket is computed again from the readings.

CREATE TABLE ispeed_1h_archive AS SELECT *, NULL::text AS network FROM ispeed_1h_store
    WHERE bucket + interval '1 hour' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
CREATE TABLE ispeed_1d_archive AS SELECT *, NULL::text AS network FROM ispeed_1d_store
    WHERE bucket + interval '1 day' <= (SELECT coalesce(min(time), 'infinity') FROM ispeed_readings);
DROP VIEW ispeed_1h;
DROP VIEW ispeed_1d;
DROP FUNCTION ispeed_1h_compute(timestamptz, timestamptz);
DROP FUNCTION ispeed_1d_compute(timestamptz, timestamptz);
DROP FUNCTION ispeed_compute(boolean, timestamptz, timestamptz);
DROP TABLE ispeed_1h_store;
DROP TABLE ispeed_1d_store;

CREATE TABLE ispeed_1h_store (
    bucket timestamptz NOT NULL, province text NOT NULL, operator text NOT NULL, network text NOT NULL,
    tests bigint NOT NULL, download_p10 float8, download_median float8, download_p90 float8,
    upload_median float8, latency_median float8, tests_below_line bigint, share_below_line float8,
    line_mbps float8,
    below_5 bigint, below_10 bigint, below_15 bigint, below_20 bigint, below_25 bigint, below_30 bigint,
    below_35 bigint, below_40 bigint, below_45 bigint, below_50 bigint, below_55 bigint, below_60 bigint,
    below_65 bigint, below_70 bigint, below_75 bigint, below_80 bigint, below_85 bigint, below_90 bigint,
    below_95 bigint, below_100 bigint, below_120 bigint, below_150 bigint, below_200 bigint, below_300 bigint,
    PRIMARY KEY (bucket, province, operator, network)
);
CREATE TABLE ispeed_1d_store (LIKE ispeed_1h_store INCLUDING ALL);

CREATE FUNCTION ispeed_compute(daily boolean, t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1h_store LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN daily THEN date_trunc('day', time, (SELECT storage_setting('day_timezone')))
                ELSE date_bin('1 hour', time, '2000-01-03 00:00+00') END AS bucket,
           province, operator, network, count(*),
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
    GROUP BY 1, 2, 3, 4, line.mbps
$$;
CREATE FUNCTION ispeed_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1h_store LANGUAGE sql STABLE AS $$ SELECT * FROM ispeed_compute(false, t_from, t_to) $$;
CREATE FUNCTION ispeed_1d_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF ispeed_1d_store LANGUAGE sql STABLE AS $$ SELECT * FROM ispeed_compute(true, t_from, t_to) $$;
-- the stored buckets again, from the readings that are left (below the watermark; the views compute the rest)
INSERT INTO ispeed_1h_store SELECT * FROM ispeed_1h_compute('-infinity', rollup_watermark('ispeed_1h'));
INSERT INTO ispeed_1d_store SELECT * FROM ispeed_1d_compute('-infinity', rollup_watermark('ispeed_1d'));
CREATE VIEW ispeed_1h AS
    SELECT * FROM ispeed_1h_store WHERE bucket < (SELECT rollup_watermark('ispeed_1h'))
    UNION ALL
    SELECT * FROM ispeed_1h_compute(rollup_watermark('ispeed_1h'), 'infinity');
CREATE VIEW ispeed_1d AS
    SELECT * FROM ispeed_1d_store WHERE bucket < (SELECT rollup_watermark('ispeed_1d'))
    UNION ALL
    SELECT * FROM ispeed_1d_compute(rollup_watermark('ispeed_1d'), 'infinity');
GRANT SELECT ON ispeed_1h, ispeed_1d, ispeed_1h_archive, ispeed_1d_archive TO urbanpulse_grafana;
