-- Native range partitioning of the readings tables by time (no TimescaleDB).
-- Each table becomes PARTITION BY RANGE (time) with partitions <table>_pYYYYMMDD of
-- storage_config.<kind>_chunk_interval (bins aligned on Monday 2000-01-03 UTC), plus <table>_default
-- for stragglers. ingest.maintain.maintain() creates partitions ahead, moves stragglers out of the
-- default partition and drops partitions past retention. Indexes: the primary key (device_id, time)
-- (it includes the partition key) and BRIN on time and on batch_id (the analytics consumer reads by
-- batch_id). Existing rows are moved into the new table, which takes the old name.

CREATE FUNCTION readings_partition_interval(tbl text) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT storage_setting(replace(tbl, '_readings', '') || '_chunk_interval')::interval
$$;

-- Create the partitions of `tbl` covering [t_from, t_to); rows of those ranges that wait in the
-- default partition are moved into the new partition before it is attached.
CREATE FUNCTION readings_ensure_partitions(tbl text, t_from timestamptz, t_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    width   interval := readings_partition_interval(tbl);
    lo      timestamptz := date_bin(width, t_from, '2000-01-03 00:00+00');
    part    text;
    created integer := 0;
BEGIN
    WHILE lo < t_to LOOP
        part := format('%s_p%s', tbl, to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, tbl);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE time >= %L AND time < %L RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', tbl || '_default', lo, lo + width, part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, lo, lo + width);
            created := created + 1;
        END IF;
        lo := lo + width;
    END LOOP;
    RETURN created;
END
$$;

-- Upper bound of each partition of `tbl` (the default partition excluded).
CREATE FUNCTION readings_partitions(tbl text)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = tbl::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
$$;

-- Drop the partitions of `tbl` wholly older than `older_than`, and such rows of the default partition.
CREATE FUNCTION readings_drop_partitions(tbl text, older_than timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p       record;
    dropped integer := 0;
BEGIN
    FOR p IN SELECT * FROM readings_partitions(tbl) WHERE upper_bound <= older_than LOOP
        EXECUTE format('DROP TABLE %s', p.partition);
        dropped := dropped + 1;
    END LOOP;
    EXECUTE format('DELETE FROM %I WHERE time < %L', tbl || '_default', older_than);
    RETURN dropped;
END
$$;

-- Turn a plain readings table into a partitioned one of the same name, columns and indexes.
CREATE FUNCTION readings_partition_table(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old     text := tbl || '_unpartitioned';
    t_first timestamptz;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, old);
    EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', old, tbl || '_pkey', old || '_pkey');
    EXECUTE format('ALTER INDEX %I RENAME TO %I', tbl || '_time_brin', old || '_time_brin');
    EXECUTE format('ALTER INDEX %I RENAME TO %I', tbl || '_batch_brin', old || '_batch_brin');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (time)',
                   tbl, old);
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (device_id, time)', tbl);
    EXECUTE format('CREATE INDEX %I ON %I USING brin (time)', tbl || '_time_brin', tbl);
    EXECUTE format('CREATE INDEX %I ON %I USING brin (batch_id)', tbl || '_batch_brin', tbl);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    EXECUTE format('SELECT min(time) FROM %I', old) INTO t_first;
    PERFORM readings_ensure_partitions(tbl, least(coalesce(t_first, now()), now()),
                                       now() + storage_setting('premake')::interval);
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', tbl, old);
    EXECUTE format('DROP TABLE %I', old);
END
$$;

SELECT readings_partition_table('air_readings');
SELECT readings_partition_table('traffic_readings');
SELECT readings_partition_table('ispeed_readings');
