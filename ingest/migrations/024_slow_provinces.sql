-- Slow provinces (analytics/slow_provinces.py): a province whose 4G speed tests of the last day have a median
-- download under the line (ISPEED_SLOW_MBPS) is one incident while it stays so. Such an incident is raised by a
-- rule on the province's tests, not grouped from anomaly events: it has no members, no event joins it (an
-- acute congestion in a slow province is news of its own), and analytics resolves it when the province
-- recovers, not when a last member resolves.
ALTER TABLE incidents ADD COLUMN rule text;  -- NULL: grouped from events; 'slow_download': the rule above

-- The rule's memory per province (hysteresis: slow from a median under the line until under a lower share
-- of tests is; between the two nothing changes), and the last check's figures.
CREATE TABLE slow_provinces (
    province    text        PRIMARY KEY,
    slow        boolean     NOT NULL,
    changed_at  timestamptz NOT NULL,  -- reading time of the check that last turned `slow` (or first judged it)
    incident_id bigint      REFERENCES incidents (id) ON DELETE SET NULL,  -- of the latest slow spell
    tests       bigint      NOT NULL,  -- in the last check's window
    below_line  bigint      NOT NULL,
    checked_at  timestamptz NOT NULL   -- reading time of the last check
);

-- The dashboards tell rule incidents apart (their members are 0; a slow spell's time to resolve is not an
-- operator's): grafana_incidents as in 011, with `rule` at the end.
CREATE OR REPLACE VIEW grafana_incidents AS
SELECT id, scope, province, district, kind, status, severity, title, members, opened_at, last_opened_at,
       resolved_at, raised_at, acknowledged_at, acknowledged_by, closed_at, resolved_by,
       time_to_acknowledge, time_to_resolve, rule
FROM incidents;
