-- What dashboards read, the same on both backends: hourly and daily VN_AQI per device (tables
-- maintained by maintain(), read like the base rollups: table below the watermark, computed at query
-- time above it), air and traffic per device with province/district from `devices` ('unknown' when
-- a device is not registered), per district and per province, and traffic congestion against each
-- segment's typical speed for the hour of week.

-- A station-hour of air_device_1h with its NowCast and hourly AQI (NULL when it has none); holding the
-- means too lets air_hourly read one relation, so a time filter reaches the table's index.
CREATE TABLE air_aqi_1h_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL,
    pm25_mean float8, pm25_max float8, pm10_mean float8, pm10_max float8,
    no2_mean float8, no2_max float8, no2_n bigint, o3_mean float8, o3_max float8, o3_n bigint,
    so2_mean float8, so2_max float8, so2_n bigint, co_mean float8, co_max float8, co_n bigint,
    temperature_mean float8, humidity_mean float8, noise_mean float8,
    pm25_nowcast float8, pm10_nowcast float8, aqi integer, aqi_category text, aqi_pollutant text,
    PRIMARY KEY (bucket, device_id)
);

-- Hourly AQI of the station-hours in [t_from, t_to) that have readings: PM NowCast over the last 12
-- hours (a dense hour grid, so a missing hour is NULL in its place), gases from the hour's mean.
CREATE FUNCTION air_aqi_1h_compute(t_from timestamptz, t_to timestamptz)
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
    SELECT (win.rec).*, vn_nowcast(pm25_hours), vn_nowcast(pm10_hours), a.aqi, a.category, a.pollutant
    FROM win, vn_aqi_hourly(pm25_hours, pm10_hours, (rec).o3_mean, (rec).no2_mean, (rec).so2_mean,
                            (rec).co_mean) AS a
    WHERE win.rec IS DISTINCT FROM NULL AND win.bucket >= t_from
$$;

-- Hours completed before the last maintain() run from the table; newer hours (the current one) straight
-- from air_device_1h with their AQI still NULL: the hourly AQI is that of a completed hour.
CREATE VIEW air_aqi_1h AS
    SELECT * FROM air_aqi_1h_store WHERE bucket < (SELECT rollup_watermark('air_aqi_1h'))
    UNION ALL
    SELECT b.*, NULL::float8, NULL::float8, NULL::integer, NULL::text, NULL::text
    FROM air_device_1h AS b WHERE b.bucket >= (SELECT rollup_watermark('air_aqi_1h'));

CREATE TABLE air_aqi_1d_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL,
    pm25_mean float8, pm10_mean float8, o3_max_1h float8, o3_max_8h float8,
    no2_max_1h float8, so2_max_1h float8, co_max_1h float8,
    aqi integer, aqi_category text, aqi_pollutant text, pm25_max_1h float8, pm10_max_1h float8,
    PRIMARY KEY (bucket, device_id)
);

-- Daily AQI of the device-days (storage_config.day_timezone) starting in [t_from, t_to): PM 24-hour
-- means, the largest 1-hour gas means, the largest 8-hour O3 mean (8-hour windows ending in the day,
-- 6 of 8 hours needed; the first ones reach into the day before).
CREATE FUNCTION air_aqi_1d_compute(t_from timestamptz, t_to timestamptz)
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
                   generate_series(span.lo, span.hi, interval '1 hour') AS h(bucket)) AS g
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

-- The days up to that of the last maintain() run (that one so far, as it was then).
CREATE VIEW air_aqi_1d AS SELECT * FROM air_aqi_1d_store;

CREATE VIEW air_hourly AS
SELECT a.bucket, a.device_id, coalesce(d.province, 'unknown') AS province,
       coalesce(d.district, 'unknown') AS district, a.readings,
       a.pm25_mean, a.pm25_max, a.pm10_mean, a.pm10_max, a.no2_mean, a.no2_max, a.o3_mean, a.o3_max,
       a.so2_mean, a.so2_max, a.co_mean, a.co_max, a.temperature_mean, a.humidity_mean, a.noise_mean,
       a.pm25_nowcast, a.pm10_nowcast, a.aqi, a.aqi_category, a.aqi_pollutant,
       a.no2_n, a.o3_n, a.so2_n, a.co_n
FROM air_aqi_1h AS a
LEFT JOIN devices AS d ON d.device_id = a.device_id;

-- An area's hour: readings-weighted means, maxima, and the AQI of its worst station. Districts are
-- kept in air_district_1h_store by maintain() like the AQI (the district of a station as it was when
-- the hour was computed); provinces add up their districts.
CREATE VIEW air_hourly_district_calc AS
SELECT bucket, province, district, count(*) AS stations, sum(readings)::bigint AS readings,
       sum(pm25_mean * readings) / sum(readings)::float8 AS pm25_mean, max(pm25_max) AS pm25_max,
       sum(pm10_mean * readings) / sum(readings)::float8 AS pm10_mean, max(pm10_max) AS pm10_max,
       sum(no2_mean * no2_n) / nullif(sum(no2_n), 0)::float8 AS no2_mean, max(no2_max) AS no2_max,
       sum(o3_mean * o3_n) / nullif(sum(o3_n), 0)::float8 AS o3_mean, max(o3_max) AS o3_max,
       sum(so2_mean * so2_n) / nullif(sum(so2_n), 0)::float8 AS so2_mean, max(so2_max) AS so2_max,
       sum(co_mean * co_n) / nullif(sum(co_n), 0)::float8 AS co_mean, max(co_max) AS co_max,
       max(aqi) AS aqi, vn_aqi_category(max(aqi)) AS aqi_category,
       (array_agg(aqi_pollutant ORDER BY aqi DESC NULLS LAST))[1] AS aqi_pollutant,
       sum(no2_n)::bigint AS no2_n, sum(o3_n)::bigint AS o3_n, sum(so2_n)::bigint AS so2_n,
       sum(co_n)::bigint AS co_n
FROM air_hourly GROUP BY bucket, province, district;

CREATE TABLE air_district_1h_store AS SELECT * FROM air_hourly_district_calc WITH NO DATA;
ALTER TABLE air_district_1h_store ADD PRIMARY KEY (bucket, province, district);

CREATE FUNCTION air_district_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_district_1h_store LANGUAGE sql STABLE AS $$
    SELECT * FROM air_hourly_district_calc WHERE bucket >= t_from AND bucket < t_to
$$;

CREATE VIEW air_hourly_district AS
    SELECT * FROM air_district_1h_store WHERE bucket < (SELECT rollup_watermark('air_district_1h'))
    UNION ALL
    SELECT * FROM air_hourly_district_calc WHERE bucket >= (SELECT rollup_watermark('air_district_1h'));

CREATE VIEW air_hourly_province AS
SELECT bucket, province, sum(stations)::bigint AS stations, sum(readings)::bigint AS readings,
       sum(pm25_mean * readings) / sum(readings)::float8 AS pm25_mean, max(pm25_max) AS pm25_max,
       sum(pm10_mean * readings) / sum(readings)::float8 AS pm10_mean, max(pm10_max) AS pm10_max,
       sum(no2_mean * no2_n) / nullif(sum(no2_n), 0)::float8 AS no2_mean, max(no2_max) AS no2_max,
       sum(o3_mean * o3_n) / nullif(sum(o3_n), 0)::float8 AS o3_mean, max(o3_max) AS o3_max,
       sum(so2_mean * so2_n) / nullif(sum(so2_n), 0)::float8 AS so2_mean, max(so2_max) AS so2_max,
       sum(co_mean * co_n) / nullif(sum(co_n), 0)::float8 AS co_mean, max(co_max) AS co_max,
       max(aqi) AS aqi, vn_aqi_category(max(aqi)) AS aqi_category,
       (array_agg(aqi_pollutant ORDER BY aqi DESC NULLS LAST))[1] AS aqi_pollutant
FROM air_hourly_district GROUP BY bucket, province;

CREATE VIEW air_daily AS
SELECT a.bucket, a.device_id, coalesce(d.province, 'unknown') AS province,
       coalesce(d.district, 'unknown') AS district, a.readings, a.pm25_mean, a.pm10_mean,
       a.o3_max_1h, a.o3_max_8h, a.no2_max_1h, a.so2_max_1h, a.co_max_1h,
       a.aqi, a.aqi_category, a.aqi_pollutant, a.pm25_max_1h, a.pm10_max_1h
FROM air_aqi_1d AS a LEFT JOIN devices AS d ON d.device_id = a.device_id;

CREATE VIEW air_daily_district_calc AS
SELECT bucket, province, district, count(*) AS stations, sum(readings)::bigint AS readings,
       sum(pm25_mean * readings) / sum(readings)::float8 AS pm25_mean,
       sum(pm10_mean * readings) / sum(readings)::float8 AS pm10_mean,
       max(aqi) AS aqi, vn_aqi_category(max(aqi)) AS aqi_category,
       (array_agg(aqi_pollutant ORDER BY aqi DESC NULLS LAST))[1] AS aqi_pollutant,
       max(pm25_max_1h) AS pm25_max_1h, max(pm10_max_1h) AS pm10_max_1h
FROM air_daily GROUP BY bucket, province, district;

CREATE TABLE air_district_1d_store AS SELECT * FROM air_daily_district_calc WITH NO DATA;
ALTER TABLE air_district_1d_store ADD PRIMARY KEY (bucket, province, district);

CREATE FUNCTION air_district_1d_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_district_1d_store LANGUAGE sql STABLE AS $$
    SELECT * FROM air_daily_district_calc WHERE bucket >= t_from AND bucket < t_to
$$;

CREATE VIEW air_daily_district AS SELECT * FROM air_district_1d_store;

CREATE VIEW air_daily_province AS
SELECT bucket, province, sum(stations)::bigint AS stations, sum(readings)::bigint AS readings,
       sum(pm25_mean * readings) / sum(readings)::float8 AS pm25_mean,
       sum(pm10_mean * readings) / sum(readings)::float8 AS pm10_mean,
       max(aqi) AS aqi, vn_aqi_category(max(aqi)) AS aqi_category,
       (array_agg(aqi_pollutant ORDER BY aqi DESC NULLS LAST))[1] AS aqi_pollutant,
       max(pm25_max_1h) AS pm25_max_1h, max(pm10_max_1h) AS pm10_max_1h
FROM air_daily_district GROUP BY bucket, province;

-- A segment's typical speed per hour of week (0 = Monday 00:00-01:00 in day_timezone): the
-- vehicle-weighted mean speed over the last storage_config.typical_weeks weeks, recomputed by
-- maintain() (ingest/refresh.py) at most once an hour.
CREATE TABLE traffic_typical_speed (
    device_id text NOT NULL, hour_of_week smallint NOT NULL, speed_kmh float8, vehicles bigint NOT NULL,
    PRIMARY KEY (device_id, hour_of_week)
);

CREATE FUNCTION hour_of_week(t timestamptz, tz text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((extract(isodow FROM t AT TIME ZONE tz) - 1) * 24 + extract(hour FROM t AT TIME ZONE tz))::smallint
$$;

-- Congestion index: 1 - speed / typical speed, clamped to [0, 1] (0: as fast as usual or faster,
-- 1: standing still); NULL without a typical speed or without vehicles.
CREATE VIEW traffic_15m AS
SELECT b.bucket, b.device_id, coalesce(d.province, 'unknown') AS province,
       coalesce(d.district, 'unknown') AS district, b.readings, b.vehicles, b.speed_kmh, b.occupancy_pct,
       t.speed_kmh AS typical_speed_kmh,
       CASE WHEN t.speed_kmh > 0 AND b.speed_kmh IS NOT NULL
            THEN greatest(0, least(1, 1 - b.speed_kmh / t.speed_kmh)) END AS congestion_index,
       b.speed_x_vehicles
FROM traffic_device_15m AS b
LEFT JOIN devices AS d ON d.device_id = b.device_id
LEFT JOIN traffic_typical_speed AS t ON t.device_id = b.device_id AND t.hour_of_week = hour_of_week(b.bucket, (SELECT storage_setting('day_timezone')));

CREATE VIEW traffic_15m_district AS
SELECT bucket, province, district, count(*) AS segments, sum(readings)::bigint AS readings,
       sum(vehicles)::bigint AS vehicles, sum(speed_x_vehicles) / nullif(sum(vehicles), 0)::float8 AS speed_kmh,
       sum(occupancy_pct * readings) / sum(readings)::float8 AS occupancy_pct,
       sum(congestion_index * vehicles) / nullif(sum(vehicles) FILTER (WHERE congestion_index IS NOT NULL), 0)::float8
           AS congestion_index
FROM traffic_15m GROUP BY bucket, province, district;
