-- Each station-hour of air_aqi_1h_store keeps the station's province and district as they were when
-- the hour was computed (as air_district_1h_store already does), so air_hourly reads one table: a
-- province or district filter reaches an index instead of a join with `devices` evaluated for every
-- station-hour of the range (bench/queries.py, one province hourly per station over 7 days: the join
-- was 250 of its 350 ms). Hours newer than the table (the current one) still join `devices`.

ALTER TABLE air_aqi_1h_store ADD COLUMN province text, ADD COLUMN district text;
UPDATE air_aqi_1h_store AS s
SET province = coalesce(d.province, 'unknown'), district = coalesce(d.district, 'unknown')
FROM air_aqi_1h_store AS k LEFT JOIN devices AS d ON d.device_id = k.device_id
WHERE k.bucket = s.bucket AND k.device_id = s.device_id;
ALTER TABLE air_aqi_1h_store ALTER COLUMN province SET NOT NULL, ALTER COLUMN district SET NOT NULL;

-- 007's definition with the place appended (the table's row type gained the two columns).
CREATE OR REPLACE FUNCTION air_aqi_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_aqi_1h_store LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT * FROM air_device_1h WHERE bucket >= t_from - interval '11 hours' AND bucket < t_to
    ), dense AS (
        SELECT g.device_id, g.bucket, b AS rec
        FROM (SELECT d.device_id, h.bucket
              FROM (SELECT DISTINCT device_id FROM b) AS d,
                   (SELECT min(bucket) AS lo, max(bucket) AS hi FROM b) AS span,
                   generate_series(span.lo, span.hi, interval '1 hour') AS h(bucket)) AS g
        LEFT JOIN b ON b.device_id = g.device_id AND b.bucket = g.bucket
    ), win AS (
        SELECT *, array_agg((rec).pm25_mean) OVER w AS pm25_hours, array_agg((rec).pm10_mean) OVER w AS pm10_hours
        FROM dense
        WINDOW w AS (PARTITION BY device_id ORDER BY bucket DESC ROWS BETWEEN CURRENT ROW AND 11 FOLLOWING)
    )
    SELECT (win.rec).*, vn_nowcast(pm25_hours), vn_nowcast(pm10_hours), a.aqi, a.category, a.pollutant,
           coalesce(dev.province, 'unknown'), coalesce(dev.district, 'unknown')
    FROM win
    CROSS JOIN LATERAL vn_aqi_hourly(pm25_hours, pm10_hours, (rec).o3_mean, (rec).no2_mean, (rec).so2_mean,
                                     (rec).co_mean) AS a
    LEFT JOIN devices AS dev ON dev.device_id = win.device_id
    WHERE win.rec IS DISTINCT FROM NULL AND win.bucket >= t_from
$$;

CREATE OR REPLACE VIEW air_aqi_1h AS
    SELECT bucket, device_id, readings, pm25_mean, pm25_max, pm10_mean, pm10_max, no2_mean, no2_max, no2_n,
           o3_mean, o3_max, o3_n, so2_mean, so2_max, so2_n, co_mean, co_max, co_n,
           temperature_mean, humidity_mean, noise_mean, pm25_nowcast, pm10_nowcast, aqi, aqi_category,
           aqi_pollutant, province, district
    FROM air_aqi_1h_store WHERE bucket < (SELECT rollup_watermark('air_aqi_1h'))
    UNION ALL
    SELECT b.*, NULL::float8, NULL::float8, NULL::integer, NULL::text, NULL::text,
           coalesce(d.province, 'unknown'), coalesce(d.district, 'unknown')
    FROM air_device_1h AS b LEFT JOIN devices AS d ON d.device_id = b.device_id
    WHERE b.bucket >= (SELECT rollup_watermark('air_aqi_1h'));

CREATE OR REPLACE VIEW air_hourly AS
SELECT bucket, device_id, province, district, readings,
       pm25_mean, pm25_max, pm10_mean, pm10_max, no2_mean, no2_max, o3_mean, o3_max,
       so2_mean, so2_max, co_mean, co_max, temperature_mean, humidity_mean, noise_mean,
       pm25_nowcast, pm10_nowcast, aqi, aqi_category, aqi_pollutant, no2_n, o3_n, so2_n, co_n
FROM air_aqi_1h;

-- The per-station AQI panels filter on the place too: keep their scan index-only.
DROP INDEX air_aqi_1h_store_aqi;
CREATE INDEX air_aqi_1h_store_aqi ON air_aqi_1h_store (bucket, device_id) INCLUDE (aqi, province, district)
    WHERE aqi IS NOT NULL;
CREATE INDEX air_aqi_1h_store_province ON air_aqi_1h_store (province, bucket);
