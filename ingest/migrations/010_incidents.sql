-- Events an operator can trust (analytics/README.md, "Events"): severity, flapping, place, the
-- open -> acknowledged -> resolved lifecycle with its times, incidents grouping simultaneous events
-- of one district or province, and the outbox every change is published to MQTT from.
-- Touches only `events` and its own new tables, so it applies on top of 001 and 002 whatever the
-- storage migrations (003 ..) do.

CREATE TABLE incidents (
    id               bigserial PRIMARY KEY,
    scope            text        NOT NULL CHECK (scope IN ('district', 'province')),
    province         text        NOT NULL,
    district         text,  -- NULL at province scope
    -- metric family of its events (urbanpulse.analytics.severity.FAMILY): air_quality, traffic, network, ...
    kind             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity         text        NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'critical')),
    title            text        NOT NULL,
    members          integer     NOT NULL DEFAULT 0,  -- its events
    -- reading time of its first and of its latest member's opening (the grouping window slides with it)
    opened_at        timestamptz NOT NULL,
    last_opened_at   timestamptz NOT NULL,
    resolved_at      timestamptz,  -- reading time its last member resolved (wall-clock when resolved by hand)
    -- wall-clock: raised (row written), acknowledged and closed by an operator or by analytics
    raised_at        timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    closed_at        timestamptz,
    resolved_by      text,  -- NULL: resolved by analytics when its last member resolved
    time_to_acknowledge interval GENERATED ALWAYS AS (acknowledged_at - raised_at) STORED,
    time_to_resolve  interval GENERATED ALWAYS AS (closed_at - raised_at) STORED,
    -- what the last 'updated' message said (membership changes alone are published at most so often)
    notified_at      timestamptz,
    CHECK ((scope = 'district') = (district IS NOT NULL))
);
CREATE INDEX incidents_active ON incidents (kind, province) WHERE status <> 'resolved';
CREATE INDEX incidents_opened_at ON incidents (opened_at);

ALTER TABLE events
    ADD COLUMN flapping        boolean     NOT NULL DEFAULT false,
    ADD COLUMN province        text,
    ADD COLUMN district        text,
    ADD COLUMN incident_id     bigint REFERENCES incidents (id),
    ADD COLUMN raised_at       timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN closed_at       timestamptz,
    ADD COLUMN resolved_by     text,
    ADD COLUMN notified_at     timestamptz,  -- last_seen_at when the last opened/updated message was queued
    ADD COLUMN notified_severity text,
    ADD CONSTRAINT events_severity CHECK (severity IN ('info', 'warning', 'critical'));
ALTER TABLE events
    ADD COLUMN time_to_acknowledge interval GENERATED ALWAYS AS (acknowledged_at - raised_at) STORED,
    ADD COLUMN time_to_resolve     interval GENERATED ALWAYS AS (closed_at - raised_at) STORED;
CREATE INDEX events_incident_id ON events (incident_id);
CREATE INDEX events_active ON events (status) WHERE status <> 'resolved';

-- Every change of an event or incident, written in the transaction that made it; the publisher
-- sends the rows to MQTT in id order (QoS 1) and deletes them once the broker acknowledged them.
-- payload NULL: an empty retained message, which clears the topic's retained state.
CREATE TABLE event_outbox (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    topic      text        NOT NULL,
    retain     boolean     NOT NULL,
    payload    jsonb
);
