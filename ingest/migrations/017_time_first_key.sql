-- The readings' primary key leads with time: (time, device_id) instead of (device_id, time).
-- Readings arrive in time order, so each insertion lands on the rightmost leaf of the key's btree (the
-- cached fast path) instead of one of as many leaves as there are devices: bench/ingest.py, write path
-- against a bare COPY for batches of 1,000 / 10,000 air readings, PostgreSQL 0.46 / 0.32 -> 0.62 /
-- 0.69, TimescaleDB 0.45 / 0.32 -> 0.70 / 0.57 (ingest/README.md, Benchmarks). The key still makes the write path idempotent
-- (ON CONFLICT on (time, device_id)) and serves time ranges, so the BRIN on time goes.
-- Per-device reads of past days (a device's readings, the incident reports) use a (device_id, time)
-- index that readings_index_past() gives each partition or chunk once it is wholly in the past (the
-- maintenance job calls it); on TimescaleDB the columnstore, segmented by device, serves them too. A
-- partition or chunk being written keeps one index; reading a device there scans its time range.
-- On an existing database the key is rebuilt on every partition or chunk (compressed ones included).

CREATE FUNCTION readings_rekey(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', tbl, tbl || '_pkey');
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (time, device_id)', tbl);
    EXECUTE format('DROP INDEX IF EXISTS %I', tbl || '_time_brin');
END
$$;

SELECT readings_rekey('air_readings');
SELECT readings_rekey('traffic_readings');
SELECT readings_rekey('ispeed_readings');
DROP FUNCTION readings_rekey(text);
DROP FUNCTION IF EXISTS readings_partition_table(text);  -- native 004 only; it would make the old key

-- Give each partition (native) or chunk (TimescaleDB) of `tbl` wholly older than `before` its
-- (device_id, time) index, named after it with `_device`; returns how many were created.
CREATE FUNCTION readings_index_past(tbl text, before timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parts   regclass[];
    part    regclass;
    name    text;
    created integer := 0;
BEGIN
    -- each branch is planned only when it runs: show_chunks exists only with TimescaleDB
    IF storage_setting('backend_in_use') = 'timescaledb' THEN
        parts := ARRAY(SELECT show_chunks(tbl, older_than => before));
    ELSE
        parts := ARRAY(SELECT partition FROM readings_partitions(tbl) WHERE upper_bound <= before);
    END IF;
    FOREACH part IN ARRAY parts LOOP
        name := (SELECT relname FROM pg_class WHERE oid = part) || '_device';
        IF NOT EXISTS (SELECT FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
                       WHERE i.indrelid = part AND x.relname = name) THEN
            EXECUTE format('CREATE INDEX %I ON %s (device_id, time)', name, part);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
