-- The device registry: which devices may publish, as what kind, and where they stand.
-- The broker's password_file and acl_file are generated from this table (gateway/broker_files.py);
-- the gateway refuses readings from devices that are unknown, disabled or of another kind.

CREATE TABLE devices (
    -- Same pattern as urbanpulse.contract.DEVICE_ID_PATTERN (it is also the MQTT user name, and the
    -- ACL substitutes it into a topic, so it never holds '/', '+' or '#'). The 'urbanpulse-' prefix is
    -- kept for service accounts (the gateway's user must never be a device).
    device_id        text             PRIMARY KEY
                     CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
                     CHECK (device_id NOT LIKE 'urbanpulse-%'),
    kind             text             NOT NULL CHECK (kind IN ('air', 'traffic', 'ispeed')),
    -- Where the device stands; empty for roaming devices (crowd-sourced speed tests).
    province         text,
    district         text,
    lat              double precision CHECK (lat BETWEEN -90 AND 90),
    lon              double precision CHECK (lon BETWEEN -180 AND 180),
    firmware_version text,
    enabled          boolean          NOT NULL DEFAULT true,
    -- Mosquitto's own hash format ($7$ = PBKDF2-SHA512: $7$<iterations>$<b64 salt>$<b64 hash>), so the
    -- password_file is rebuilt from this column alone; the secret itself is never stored.
    secret_hash      text             NOT NULL
                     CHECK (secret_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$'),
    created_at       timestamptz      NOT NULL DEFAULT now(),
    last_seen        timestamptz,
    online           boolean          NOT NULL DEFAULT false
);
CREATE INDEX devices_kind ON devices (kind);
CREATE INDEX devices_province ON devices (province);
