-- Ingest transactions mark themselves, so that analytics waits only for them (analytics/store.py).
--
-- Analytics reads the batches whose transaction has ended. Until now "ended" meant "below the oldest
-- transaction still running on the server", so any write transaction anywhere -- a TimescaleDB policy
-- job, a report, another application in another database -- held events back for as long as it ran.
-- Now every transaction that writes an ingest_batches row holds the shared advisory lock
-- (1970496112, 1) of this database ('urbp', 1), taken before it had a transaction id: a running
-- transaction that has an id and does not hold that lock never writes a batch, so analytics may read
-- past it. The trigger below takes the lock on the transaction's first ingest_batches insert and
-- refuses one in a transaction that already has an id without it -- it wrote something else first,
-- or rolled back the savepoint that took the lock (the lock would come too late: analytics may have
-- seen the transaction unmarked and read past it).

CREATE FUNCTION ingest_batches_mark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        PERFORM pg_advisory_xact_lock_shared(1970496112, 1);
    ELSIF NOT EXISTS (SELECT FROM pg_locks
                      WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted
                        AND classid = 1970496112 AND objid = 1 AND objsubid = 2
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) THEN
        RAISE EXCEPTION 'an ingest batch must be the first write of its transaction'
            USING HINT = 'write batches with urbanpulse.ingest.writer.write_batch, each in a transaction of its own',
                  ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ingest_batches_mark BEFORE INSERT ON ingest_batches
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_batches_mark();
