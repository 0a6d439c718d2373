-- VN_AQI (Decision 1459/QĐ-TCMT) in SQL: the same rules as urbanpulse.ingest.aqi (see its docstring),
-- checked against the same examples by tests/test_storage_aqi.py.

-- Sub-index of concentration c (µg/m³) against breakpoint table tbl; NULL when c is NULL, negative,
-- or (8-hour O3 only) above the table. plpgsql on simple expressions only (no queries): it runs for
-- every station-hour the AQI views compute.
CREATE FUNCTION vn_aqi_sub(tbl text, c float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bp  float8[];
    lvl float8[] := '{0, 50, 100, 150, 200, 300, 400, 500}';
    n   integer;
BEGIN
    IF c IS NULL OR c < 0 THEN
        RETURN NULL;
    END IF;
    bp := CASE tbl
        WHEN 'o3_1h' THEN '{0, 160, 200, 300, 400, 800, 1000, 1200}'::float8[]
        WHEN 'o3_8h' THEN '{0, 100, 120, 170, 210, 400}'::float8[]
        WHEN 'co'    THEN '{0, 10000, 30000, 45000, 60000, 90000, 120000, 150000}'::float8[]
        WHEN 'so2'   THEN '{0, 125, 350, 550, 800, 1600, 2100, 2630}'::float8[]
        WHEN 'no2'   THEN '{0, 100, 200, 700, 1200, 2350, 3100, 3850}'::float8[]
        WHEN 'pm10'  THEN '{0, 50, 150, 250, 350, 420, 500, 600}'::float8[]
        WHEN 'pm25'  THEN '{0, 25, 50, 80, 150, 250, 350, 500}'::float8[]
    END;
    IF bp IS NULL THEN
        RAISE EXCEPTION 'no VN_AQI breakpoints for %', tbl;
    END IF;
    n := array_length(bp, 1);
    IF c >= bp[n] THEN
        RETURN CASE WHEN tbl = 'o3_8h' AND c > bp[n] THEN NULL ELSE lvl[n] END;
    END IF;
    FOR i IN 1 .. n - 1 LOOP
        IF c < bp[i + 1] THEN
            RETURN (lvl[i + 1] - lvl[i]) / (bp[i + 1] - bp[i]) * (c - bp[i]) + lvl[i];
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- NowCast of hourly means, newest first (c[1] the current hour, NULL when missing; 12 used).
CREATE FUNCTION vn_nowcast(c float8[]) RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    hi  float8;
    lo  float8;
    w   float8;
    num float8 := 0;
    den float8 := 0;
    n   integer := least(coalesce(array_length(c, 1), 0), 12);
BEGIN
    IF (c[1] IS NOT NULL)::int + (c[2] IS NOT NULL)::int + (c[3] IS NOT NULL)::int < 2 THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN c[i] IS NULL;
        hi := greatest(hi, c[i]);
        lo := least(lo, c[i]);
    END LOOP;
    IF hi = 0 THEN
        RETURN 0;
    END IF;
    w := lo / hi;
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN c[i] IS NULL;
        IF w <= 0.5 THEN
            num := num + 0.5 ^ i * c[i];
        ELSE
            num := num + w ^ (i - 1) * c[i];
            den := den + w ^ (i - 1);
        END IF;
    END LOOP;
    RETURN CASE WHEN w <= 0.5 THEN num ELSE num / den END;
END
$$;

CREATE FUNCTION vn_aqi_category(aqi integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN aqi IS NULL THEN NULL WHEN aqi <= 50 THEN 'good' WHEN aqi <= 100 THEN 'moderate'
                WHEN aqi <= 150 THEN 'poor' WHEN aqi <= 200 THEN 'bad' WHEN aqi <= 300 THEN 'very_bad'
                ELSE 'hazardous' END
$$;

-- The AQI of sub-indices (pm25, pm10, o3, no2, so2, co): the largest, rounded half up, with its
-- category and the pollutant driving it (first in that order among ties); NULL unless PM2.5 or PM10
-- has a sub-index.
CREATE FUNCTION vn_aqi_overall(pm25 float8, pm10 float8, o3 float8, no2 float8, so2 float8, co float8,
                               OUT aqi integer, OUT category text, OUT pollutant text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    subs  float8[] := ARRAY[pm25, pm10, o3, no2, so2, co];
    names text[]   := '{pm25, pm10, o3, no2, so2, co}';
    best  float8;
BEGIN
    IF pm25 IS NULL AND pm10 IS NULL THEN
        RETURN;
    END IF;
    FOR i IN 1 .. 6 LOOP
        IF subs[i] IS NOT NULL AND (best IS NULL OR subs[i] > best) THEN
            best := subs[i];
            pollutant := names[i];
        END IF;
    END LOOP;
    aqi := floor(best + 0.5)::integer;
    category := vn_aqi_category(aqi);
END
$$;

-- Hourly AQI: PM NowCast arrays (newest first) and this hour's gas means.
CREATE FUNCTION vn_aqi_hourly(pm25 float8[], pm10 float8[], o3 float8, no2 float8, so2 float8, co float8,
                              OUT aqi integer, OUT category text, OUT pollutant text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    SELECT * INTO aqi, category, pollutant
    FROM vn_aqi_overall(vn_aqi_sub('pm25', vn_nowcast(pm25)), vn_aqi_sub('pm10', vn_nowcast(pm10)),
                        vn_aqi_sub('o3_1h', o3), vn_aqi_sub('no2', no2), vn_aqi_sub('so2', so2),
                        vn_aqi_sub('co', co));
END
$$;

-- Daily AQI: 24-hour PM means, the day's largest 1-hour gas means and largest 8-hour O3 mean.
CREATE FUNCTION vn_aqi_daily(pm25_24h float8, pm10_24h float8, o3_max_1h float8, o3_max_8h float8,
                             no2_max_1h float8, so2_max_1h float8, co_max_1h float8,
                             OUT aqi integer, OUT category text, OUT pollutant text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    SELECT * INTO aqi, category, pollutant
    FROM vn_aqi_overall(vn_aqi_sub('pm25', pm25_24h), vn_aqi_sub('pm10', pm10_24h),
                        greatest(vn_aqi_sub('o3_1h', o3_max_1h), vn_aqi_sub('o3_8h', o3_max_8h)),
                        vn_aqi_sub('no2', no2_max_1h), vn_aqi_sub('so2', so2_max_1h),
                        vn_aqi_sub('co', co_max_1h));
END
$$;
