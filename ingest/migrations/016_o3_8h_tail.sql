-- The daily AQI's largest 8-hour O3 mean also counts the windows that end after a station's last
-- reported hour: with 6 of 8 hours needed, a window ending up to 2 hours later is still valid (007
-- built the hour grid only up to the last reported hour and missed them, e.g. a station that stopped
-- at 17:00 had no 8-hour mean ending at 18:00). The grid now runs on to 7 hours past it, within the
-- requested range; days without a reading of their own still get no row.
CREATE OR REPLACE FUNCTION air_aqi_1d_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_aqi_1d_store LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT bucket, device_id, readings, pm25_mean, pm10_mean, o3_mean, no2_mean, so2_mean, co_mean
        FROM air_device_1h WHERE bucket >= t_from - interval '7 hours' AND bucket < t_to
    ), dense AS (
        SELECT g.device_id, g.bucket, b.readings, b.pm25_mean, b.pm10_mean, b.o3_mean,
               b.no2_mean, b.so2_mean, b.co_mean
        FROM (SELECT d.device_id, h.bucket
              FROM (SELECT DISTINCT device_id FROM b) AS d,
                   (SELECT min(bucket) AS lo, max(bucket) AS hi FROM b) AS span,
                   generate_series(span.lo, least(span.hi + interval '7 hours', t_to - interval '1 hour'),
                                   interval '1 hour') AS h(bucket)) AS g
        LEFT JOIN b ON b.device_id = g.device_id AND b.bucket = g.bucket
    ), win AS (
        SELECT *, CASE WHEN count(o3_mean) OVER w8 >= 6 THEN avg(o3_mean) OVER w8 END AS o3_8h
        FROM dense
        WINDOW w8 AS (PARTITION BY device_id ORDER BY bucket ROWS BETWEEN 7 PRECEDING AND CURRENT ROW)
    ), days AS (
        SELECT date_trunc('day', bucket, (SELECT storage_setting('day_timezone'))) AS bucket, device_id,
               sum(readings)::bigint AS readings,
               sum(pm25_mean * readings) / sum(readings)::float8 AS pm25_mean,
               sum(pm10_mean * readings) / sum(readings)::float8 AS pm10_mean,
               max(o3_mean) AS o3_max_1h, max(o3_8h) AS o3_max_8h, max(no2_mean) AS no2_max_1h,
               max(so2_mean) AS so2_max_1h, max(co_mean) AS co_max_1h,
               max(pm25_mean) AS pm25_max_1h, max(pm10_mean) AS pm10_max_1h
        FROM win WHERE bucket >= t_from
        GROUP BY 1, 2
        HAVING sum(readings) > 0
    )
    SELECT days.bucket, days.device_id, days.readings, days.pm25_mean, days.pm10_mean, days.o3_max_1h,
           days.o3_max_8h, days.no2_max_1h, days.so2_max_1h, days.co_max_1h, a.aqi, a.category, a.pollutant,
           days.pm25_max_1h, days.pm10_max_1h
    FROM days, vn_aqi_daily(pm25_mean, pm10_mean, o3_max_1h, o3_max_8h, no2_max_1h, so2_max_1h, co_max_1h) AS a
$$;
