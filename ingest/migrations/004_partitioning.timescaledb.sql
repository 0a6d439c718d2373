-- TimescaleDB: the readings tables become hypertables (by_range on time, chunk interval per kind from
-- storage_config), existing rows moved into chunks. Columnstore: segment by device_id, order by time
-- DESC, min/max sparse index on batch_id (the analytics consumer reads by batch_id, also from
-- compressed chunks). The retention and columnstore policies are set by migrate() after the
-- migrations, from the configuration (ingest/timescale.py: sync_policies), so a changed setting
-- takes effect on the next `urbanpulse db migrate`.
-- The primary key (device_id, time) and the BRIN indexes of 001 stay; no default time index.

SELECT create_hypertable('air_readings', by_range('time', storage_setting('air_chunk_interval')::interval),
                         create_default_indexes => false, migrate_data => true);
SELECT create_hypertable('traffic_readings', by_range('time', storage_setting('traffic_chunk_interval')::interval),
                         create_default_indexes => false, migrate_data => true);
SELECT create_hypertable('ispeed_readings', by_range('time', storage_setting('ispeed_chunk_interval')::interval),
                         create_default_indexes => false, migrate_data => true);

ALTER TABLE air_readings SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = 'device_id',
                              timescaledb.orderby = 'time DESC', timescaledb.compress_index = 'minmax(batch_id)');
ALTER TABLE traffic_readings SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = 'device_id',
                                  timescaledb.orderby = 'time DESC', timescaledb.compress_index = 'minmax(batch_id)');
ALTER TABLE ispeed_readings SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = 'device_id',
                                 timescaledb.orderby = 'time DESC', timescaledb.compress_index = 'minmax(batch_id)');
