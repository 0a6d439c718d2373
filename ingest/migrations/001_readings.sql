-- Readings of the three kinds, the batches that brought them, rejected messages, detector events.
-- Column names and types follow urbanpulse.contract; tests/test_schema.py checks they agree.

CREATE TABLE ingest_batches (
    id           bigserial PRIMARY KEY,
    -- The writing transaction: consumers read every batch whose transaction has ended
    -- (xid below the oldest running one), so a batch committed late is never skipped.
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    readings     integer     NOT NULL,
    stored       integer     NOT NULL,
    dead_letters integer     NOT NULL
);
CREATE INDEX ingest_batches_xid ON ingest_batches (xid);

CREATE TABLE air_readings (
    device_id   text             NOT NULL,
    time        timestamptz      NOT NULL,
    seq         bigint           NOT NULL,
    pm25        double precision NOT NULL,
    pm10        double precision NOT NULL,
    temperature double precision NOT NULL,
    humidity    double precision NOT NULL,
    no2         double precision,
    o3          double precision,
    so2         double precision,
    co          double precision,
    noise       double precision,
    received_at timestamptz      NOT NULL,
    batch_id    bigint           NOT NULL,
    PRIMARY KEY (device_id, time)
);

CREATE TABLE traffic_readings (
    device_id     text             NOT NULL,
    time          timestamptz      NOT NULL,
    seq           bigint           NOT NULL,
    vehicle_count bigint           NOT NULL,
    interval_s    bigint           NOT NULL,
    speed_kmh     double precision NOT NULL,
    occupancy_pct double precision NOT NULL,
    received_at   timestamptz      NOT NULL,
    batch_id      bigint           NOT NULL,
    PRIMARY KEY (device_id, time)
);

CREATE TABLE ispeed_readings (
    device_id       text             NOT NULL,
    time            timestamptz      NOT NULL,
    seq             bigint           NOT NULL,
    download_mbps   double precision NOT NULL,
    upload_mbps     double precision NOT NULL,
    latency_ms      double precision NOT NULL,
    jitter_ms       double precision NOT NULL,
    packet_loss_pct double precision NOT NULL,
    operator        text             NOT NULL,
    network         text             NOT NULL,
    rsrp_dbm        double precision NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    province        text             NOT NULL,
    received_at     timestamptz      NOT NULL,
    batch_id        bigint           NOT NULL,
    PRIMARY KEY (device_id, time)
);

-- BRIN: tiny, and readings arrive roughly in time and batch order.
CREATE INDEX air_readings_time_brin ON air_readings USING brin (time);
CREATE INDEX air_readings_batch_brin ON air_readings USING brin (batch_id);
CREATE INDEX traffic_readings_time_brin ON traffic_readings USING brin (time);
CREATE INDEX traffic_readings_batch_brin ON traffic_readings USING brin (batch_id);
CREATE INDEX ispeed_readings_time_brin ON ispeed_readings USING brin (time);
CREATE INDEX ispeed_readings_batch_brin ON ispeed_readings USING brin (batch_id);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic       text        NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL,
    field       text,
    device_id   text,
    kind        text,
    batch_id    bigint      NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);

CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    device_id    text             NOT NULL,
    kind         text             NOT NULL,
    metric       text             NOT NULL,
    detector     text             NOT NULL,
    status       text             NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity     text             NOT NULL DEFAULT 'warning',
    opened_at    timestamptz      NOT NULL,
    last_seen_at timestamptz      NOT NULL,
    resolved_at  timestamptz,
    peak_score   double precision NOT NULL,
    last_score   double precision NOT NULL,
    peak_value   double precision,
    readings     integer          NOT NULL DEFAULT 1
);
-- One open (or acknowledged) event per device x metric x detector: repeats update it.
CREATE UNIQUE INDEX events_one_open ON events (device_id, metric, detector) WHERE status <> 'resolved';
CREATE INDEX events_opened_at ON events (opened_at);

-- Where each analytics consumer stands: every batch with xid below `horizon` has been scored,
-- and `state` is its detector state at that point (written in the same transaction as its events).
CREATE TABLE analytics_checkpoints (
    name       text PRIMARY KEY,
    horizon    xid8        NOT NULL,
    state      bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);
