-- What the dashboards need beyond the readings and rollups (008), for the read-only role
-- urbanpulse_grafana, and nothing more: views without secrets or payloads, and one SECURITY DEFINER
-- function for storage figures. Written for dashboards/ (dashboards/README.md lists the panels).
--   grafana_devices       the registry without secret hashes
--   grafana_events        events (no outbox)
--   grafana_incidents     incidents
--   grafana_dead_letters  refused messages without topic and payload (a payload may carry anything)
--   grafana_ingest_batches committed batches: when, how many readings stored and refused
--   grafana_storage()     per readings table: total bytes, chunks or partitions, columnstore figures;
--                         and the database's size (relation '(database)')

CREATE VIEW grafana_devices AS
SELECT device_id, kind, province, district, lat, lon, firmware_version, enabled, created_at, last_seen, online
FROM devices;

CREATE VIEW grafana_events AS
SELECT id, device_id, kind, metric, detector, status, severity, flapping, province, district, incident_id,
       opened_at, last_seen_at, resolved_at, peak_score, last_score, peak_value, readings,
       raised_at, acknowledged_at, acknowledged_by, closed_at, resolved_by, time_to_acknowledge, time_to_resolve
FROM events;

CREATE VIEW grafana_incidents AS
SELECT id, scope, province, district, kind, status, severity, title, members, opened_at, last_opened_at,
       resolved_at, raised_at, acknowledged_at, acknowledged_by, closed_at, resolved_by,
       time_to_acknowledge, time_to_resolve
FROM incidents;

CREATE VIEW grafana_dead_letters AS
SELECT id, received_at, reason, field, device_id, kind, batch_id FROM dead_letters;

CREATE VIEW grafana_ingest_batches AS
SELECT id, created_at, readings, stored, dead_letters FROM ingest_batches;

CREATE FUNCTION grafana_storage()
RETURNS TABLE (relation text, total_bytes bigint, chunks bigint, compressed_chunks bigint,
               before_compression_bytes bigint, after_compression_bytes bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    t text;
    timescale boolean := storage_setting('backend_in_use') = 'timescaledb';
BEGIN
    FOREACH t IN ARRAY ARRAY['air_readings', 'traffic_readings', 'ispeed_readings'] LOOP
        relation := t;
        IF timescale THEN
            EXECUTE 'SELECT hypertable_size($1::regclass),'
                    ' (SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = $2),'
                    ' (SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = $2'
                    '  AND is_compressed),'
                    ' (SELECT sum(before_compression_total_bytes)::bigint FROM chunk_columnstore_stats($1::regclass)),'
                    ' (SELECT sum(after_compression_total_bytes)::bigint FROM chunk_columnstore_stats($1::regclass))'
                INTO total_bytes, chunks, compressed_chunks, before_compression_bytes, after_compression_bytes
                USING t, t;
        ELSE
            SELECT sum(pg_total_relation_size(relid))::bigint, count(*) FILTER (WHERE isleaf), 0, NULL, NULL
              INTO total_bytes, chunks, compressed_chunks, before_compression_bytes, after_compression_bytes
              FROM pg_partition_tree(t::regclass);
        END IF;
        RETURN NEXT;
    END LOOP;
    relation := '(database)';
    total_bytes := pg_database_size(current_database());
    chunks := NULL; compressed_chunks := NULL; before_compression_bytes := NULL; after_compression_bytes := NULL;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION grafana_storage() FROM PUBLIC;

GRANT SELECT ON grafana_devices, grafana_events, grafana_incidents, grafana_dead_letters, grafana_ingest_batches
TO urbanpulse_grafana;
GRANT EXECUTE ON FUNCTION grafana_storage() TO urbanpulse_grafana;
