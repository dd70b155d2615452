-- Sensors: device registry, readings (one row per accepted message), quarantine of rejects,
-- and a log of ingest drains. Readings are keyed on (device_id, seq) so redelivered or
-- replayed messages are stored once; rejects keep their payload and the reason.

CREATE TABLE sensor_devices (
    device_id     VARCHAR PRIMARY KEY,          -- also the MQTT username and topic segment
    borrower_id   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,             -- soil_probe | weather_station | ...
    lon           DOUBLE NOT NULL,              -- EPSG:4326
    lat           DOUBLE NOT NULL,
    secret_hash   VARCHAR,                      -- pbkdf2_sha256$iterations$salt$hash; NULL if managed elsewhere
    installed_at  TIMESTAMP,                    -- NULL: unknown (treated as always installed)
    retired_at    TIMESTAMP,                    -- NULL: still in service
    registered_at TIMESTAMP NOT NULL
);

CREATE TABLE sensor_readings (
    device_id         VARCHAR NOT NULL,
    seq               BIGINT NOT NULL,          -- device's own message counter
    ts                TIMESTAMP NOT NULL,       -- measurement time, UTC
    received_at       TIMESTAMP NOT NULL,       -- ingester clock, UTC
    soil_moisture_pct DOUBLE,                   -- volumetric %
    soil_temp_c       DOUBLE,
    air_temp_c        DOUBLE,
    air_pressure_hpa  DOUBLE,
    battery_v         DOUBLE,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE sensor_quarantine (
    quarantine_id VARCHAR PRIMARY KEY,          -- hash of topic + payload: a redelivered reject is kept once
    received_at   TIMESTAMP NOT NULL,
    topic         VARCHAR NOT NULL,
    device_id     VARCHAR,                      -- from the topic, when it has one
    reason_code   VARCHAR NOT NULL,             -- not_json | missing_field | wrong_type | out_of_range | ...
    reason        VARCHAR NOT NULL,
    payload_size  INTEGER NOT NULL,
    payload       BLOB                          -- first 64 KiB of what arrived
);

CREATE TABLE sensor_drains (
    drain_id      VARCHAR PRIMARY KEY,
    broker        VARCHAR NOT NULL,             -- URL without credentials
    client_id     VARCHAR NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP NOT NULL,
    received      BIGINT NOT NULL,
    stored        BIGINT NOT NULL,
    duplicates    BIGINT NOT NULL,
    quarantined   BIGINT NOT NULL
);
