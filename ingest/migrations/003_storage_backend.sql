-- Storage backend: TimescaleDB when the extension is installed AND preloaded
-- (shared_preload_libraries), native PostgreSQL partitioning otherwise; storage_config.backend
-- ('auto' | 'timescaledb' | 'postgres', written by migrate() from the settings) may force one.
-- The choice is recorded as storage_config.backend_in_use and never changes afterwards: later
-- migrations come in one file per backend (NNN_name.timescaledb.sql / NNN_name.postgres.sql).

DO $$
DECLARE
    wanted    text    := coalesce((SELECT value FROM storage_config WHERE key = 'backend'), 'auto');
    installed boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
    preloaded boolean := current_setting('shared_preload_libraries') ~ '(^|[ ,])timescaledb($|[ ,])';
    chosen    text;
BEGIN
    IF wanted NOT IN ('auto', 'timescaledb', 'postgres') THEN
        RAISE EXCEPTION 'storage backend must be auto, timescaledb or postgres, not %', wanted;
    END IF;
    IF wanted = 'timescaledb' AND NOT (installed AND preloaded) THEN
        RAISE EXCEPTION 'storage backend timescaledb asked for, but the extension is %',
            CASE WHEN installed THEN 'not in shared_preload_libraries' ELSE 'not installed' END;
    END IF;
    chosen := CASE WHEN wanted <> 'auto' THEN wanted
                   WHEN installed AND preloaded THEN 'timescaledb'
                   ELSE 'postgres' END;
    IF wanted = 'auto' AND installed AND NOT preloaded THEN
        RAISE WARNING 'timescaledb is installed but not preloaded: using native partitioning';
    END IF;
    IF chosen = 'timescaledb' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
    INSERT INTO storage_config (key, value) VALUES ('backend_in_use', chosen);
END
$$;

-- Where each maintenance step stands: the ingest transactions it has rolled up (every batch whose
-- xid is below `horizon`) and, for rollup tables, the bucket below which the table is complete
-- (views read newer buckets straight from the readings).
CREATE TABLE rollup_state (
    name       text PRIMARY KEY,
    horizon    xid8,
    watermark  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- SECURITY DEFINER: the read-only role reads views that call these, without reading the tables.
CREATE FUNCTION rollup_watermark(rollup text) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce((SELECT watermark FROM rollup_state WHERE name = rollup), '-infinity')
$$;

CREATE FUNCTION storage_setting(setting text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT value FROM storage_config WHERE key = setting
$$;
