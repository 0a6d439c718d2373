-- Coarser rollups for the dashboards' long ranges, the same on both backends: tables that maintain()
-- keeps (ingest/refresh.py), each read through a view like the others -- the table below its watermark,
-- newer buckets computed at query time by <name>_compute(watermark, 'infinity'), the one definition that
-- also refreshes the table. The compute functions are SECURITY DEFINER (they read `devices` or tables the
-- read-only role cannot), so the views' live parts work for urbanpulse_grafana.
--
-- traffic_district_1h  hour x district: traffic_device_1h summed over the district's detectors (the
--                      district a detector had when its hour was computed), with the sums that give the
--                      congestion index and typical speed against traffic_typical_speed
-- traffic_device_1d    UTC day x detector: the same sums per detector (the hot-spot table's whole days)
-- traffic_device_3h    3 hours x detector: traffic_device_1h's columns (speed per segment at 3-hour and
--                      coarser intervals: 6 h, 12 h, days nest in 3-hour bins from the same origin)
-- air_aqi_3h           3 hours x station x place: the largest hourly VN_AQI (per-station AQI at 3-hour
--                      and coarser intervals) and the hours each pollutant drove it (long ranges)
--
-- The sums against typical speeds depend on traffic_typical_speed, which maintain() recomputes hourly:
-- traffic_district_1h and traffic_device_1d are then recomputed whole, so they always hold the figures
-- against the typical speeds in force, as the per-detector queries compute them.

-- A detector-hour of traffic_device_1h with its typical speed for the hour of week (NULL without one). The
-- hour of week once per hour, not per detector-hour: its time-zone conversion costs more than the rest.
CREATE FUNCTION traffic_device_1h_against_typical(t_from timestamptz, t_to timestamptz)
RETURNS TABLE (bucket timestamptz, device_id text, readings bigint, vehicles bigint, speed_kmh float8,
               speed_x_vehicles float8, occupancy_pct float8, typical_speed_kmh float8)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT bucket, device_id, readings, vehicles, speed_kmh, speed_x_vehicles, occupancy_pct
        FROM traffic_device_1h WHERE bucket >= t_from AND bucket < t_to
    ), h AS MATERIALIZED (  -- not pulled up into the join, where it would run per detector-hour again
        SELECT bucket, hour_of_week(bucket, (SELECT storage_setting('day_timezone'))) AS how
        FROM (SELECT DISTINCT bucket FROM b) AS hours
    )
    SELECT b.bucket, b.device_id, b.readings, b.vehicles, b.speed_kmh, b.speed_x_vehicles, b.occupancy_pct,
           t.speed_kmh
    FROM b JOIN h ON h.bucket = b.bucket
    LEFT JOIN traffic_typical_speed AS t ON t.device_id = b.device_id AND t.hour_of_week = h.how
$$;

CREATE TABLE traffic_district_1h_store (
    bucket timestamptz NOT NULL, province text NOT NULL, district text NOT NULL,
    segments bigint NOT NULL, readings bigint NOT NULL, vehicles bigint,
    speed_x_vehicles float8,       -- sum of speed x vehicles: / vehicles is the vehicle-weighted speed
    occupancy_x_readings float8,   -- sum of each detector-hour's occupancy x its readings
    typical_x_vehicles float8,     -- sum of typical speed x vehicles over detector-hours with a typical speed
    vehicles_typical bigint,       -- their vehicles
    congestion_x_vehicles float8,  -- sum of congestion index x vehicles (index: 1 - speed / typical, in [0, 1])
    vehicles_congestion bigint,    -- vehicles of the detector-hours with a typical speed above 0
    PRIMARY KEY (bucket, province, district)
);
CREATE FUNCTION traffic_district_1h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF traffic_district_1h_store LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT b.bucket, coalesce(d.province, 'unknown'), coalesce(d.district, 'unknown'), count(*),
           sum(b.readings)::bigint, sum(b.vehicles)::bigint, sum(b.speed_x_vehicles),
           sum(b.occupancy_pct * b.readings),
           sum(b.typical_speed_kmh * b.vehicles), sum(b.vehicles) FILTER (WHERE b.typical_speed_kmh IS NOT NULL),
           sum(CASE WHEN b.typical_speed_kmh > 0
                    THEN greatest(0, least(1, 1 - b.speed_kmh / b.typical_speed_kmh)) END * b.vehicles),
           sum(b.vehicles) FILTER (WHERE b.typical_speed_kmh > 0)
    FROM traffic_device_1h_against_typical(t_from, t_to) AS b
    LEFT JOIN devices AS d ON d.device_id = b.device_id
    GROUP BY 1, 2, 3
$$;
CREATE VIEW traffic_district_1h AS
    SELECT * FROM traffic_district_1h_store WHERE bucket < (SELECT rollup_watermark('traffic_district_1h'))
    UNION ALL
    SELECT * FROM traffic_district_1h_compute(rollup_watermark('traffic_district_1h'), 'infinity');

CREATE TABLE traffic_device_1d_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL, vehicles bigint,
    speed_x_vehicles float8, typical_x_vehicles float8, vehicles_typical bigint,
    congestion_x_vehicles float8, vehicles_congestion bigint,
    PRIMARY KEY (bucket, device_id)
);
CREATE FUNCTION traffic_device_1d_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF traffic_device_1d_store LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT date_bin('1 day', b.bucket, '2000-01-03 00:00+00'), b.device_id, sum(b.readings)::bigint,
           sum(b.vehicles)::bigint, sum(b.speed_x_vehicles),
           sum(b.typical_speed_kmh * b.vehicles), sum(b.vehicles) FILTER (WHERE b.typical_speed_kmh IS NOT NULL),
           sum(CASE WHEN b.typical_speed_kmh > 0
                    THEN greatest(0, least(1, 1 - b.speed_kmh / b.typical_speed_kmh)) END * b.vehicles),
           sum(b.vehicles) FILTER (WHERE b.typical_speed_kmh > 0)
    FROM traffic_device_1h_against_typical(t_from, t_to) AS b
    GROUP BY 1, 2
$$;
CREATE VIEW traffic_device_1d AS
    SELECT * FROM traffic_device_1d_store WHERE bucket < (SELECT rollup_watermark('traffic_device_1d'))
    UNION ALL
    SELECT * FROM traffic_device_1d_compute(rollup_watermark('traffic_device_1d'), 'infinity');

CREATE TABLE traffic_device_3h_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, readings bigint NOT NULL, vehicles bigint,
    speed_kmh float8, speed_x_vehicles float8, occupancy_pct float8,
    PRIMARY KEY (bucket, device_id)
);
CREATE FUNCTION traffic_device_3h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF traffic_device_3h_store LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT date_bin('3 hours', bucket, '2000-01-03 00:00+00') AS bucket, device_id,
           sum(readings)::bigint, sum(vehicles)::bigint,
           sum(speed_x_vehicles) / nullif(sum(vehicles), 0), sum(speed_x_vehicles),
           sum(occupancy_pct * readings) / nullif(sum(readings) FILTER (WHERE occupancy_pct IS NOT NULL), 0)
    FROM traffic_device_1h WHERE bucket >= t_from AND bucket < t_to
    GROUP BY 1, 2
$$;
CREATE VIEW traffic_device_3h AS
    SELECT * FROM traffic_device_3h_store WHERE bucket < (SELECT rollup_watermark('traffic_device_3h'))
    UNION ALL
    SELECT * FROM traffic_device_3h_compute(rollup_watermark('traffic_device_3h'), 'infinity');

-- Keyed by place too: a station's place is that of each hour (air_aqi_1h_store), so a place filter on
-- these rows keeps exactly the hours a filter on air_hourly keeps. <pollutant>_hours: the hours of the
-- bucket whose AQI that pollutant drives.
CREATE TABLE air_aqi_3h_store (
    bucket timestamptz NOT NULL, device_id text NOT NULL, province text NOT NULL, district text NOT NULL,
    aqi integer NOT NULL, pm25_hours integer NOT NULL, pm10_hours integer NOT NULL, o3_hours integer NOT NULL,
    no2_hours integer NOT NULL, so2_hours integer NOT NULL, co_hours integer NOT NULL,
    PRIMARY KEY (bucket, device_id, province, district) INCLUDE (aqi)
);
CREATE FUNCTION air_aqi_3h_compute(t_from timestamptz, t_to timestamptz)
RETURNS SETOF air_aqi_3h_store LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT date_bin('3 hours', bucket, '2000-01-03 00:00+00'), device_id, province, district, max(aqi),
           count(*) FILTER (WHERE aqi_pollutant = 'pm25'), count(*) FILTER (WHERE aqi_pollutant = 'pm10'),
           count(*) FILTER (WHERE aqi_pollutant = 'o3'), count(*) FILTER (WHERE aqi_pollutant = 'no2'),
           count(*) FILTER (WHERE aqi_pollutant = 'so2'), count(*) FILTER (WHERE aqi_pollutant = 'co')
    FROM air_hourly WHERE bucket >= t_from AND bucket < t_to AND aqi IS NOT NULL
    GROUP BY 1, 2, 3, 4
$$;
CREATE VIEW air_aqi_3h AS
    SELECT * FROM air_aqi_3h_store WHERE bucket < (SELECT rollup_watermark('air_aqi_3h'))
    UNION ALL
    SELECT * FROM air_aqi_3h_compute(rollup_watermark('air_aqi_3h'), 'infinity');

GRANT SELECT ON traffic_district_1h, traffic_device_1d, traffic_device_3h, air_aqi_3h TO urbanpulse_grafana;
