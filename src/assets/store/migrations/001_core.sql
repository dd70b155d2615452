-- Core schema: borrowers, claims, tiles, observations, verification, valuation, limits, runs.
-- Geometry is stored as WKB (EPSG:4326) plus GeoJSON text and a bounding box, so plain SQL
-- can filter by area without the spatial extension (which cannot be installed offline).

CREATE TABLE borrowers (
    borrower_id   VARCHAR PRIMARY KEY,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE claims (
    claim_id      VARCHAR PRIMARY KEY,          -- hash of borrower + normalised geometry
    borrower_id   VARCHAR NOT NULL REFERENCES borrowers (borrower_id),
    name          VARCHAR,
    submitted_at  TIMESTAMP NOT NULL,
    source        VARCHAR NOT NULL,             -- file or channel the claim came from
    geom_wkb      BLOB,                         -- EPSG:4326; NULL when the drawing was unusable
    geojson       VARCHAR NOT NULL,             -- as submitted (repaired geometry in geom_wkb)
    min_lon DOUBLE, min_lat DOUBLE, max_lon DOUBLE, max_lat DOUBLE,
    claimed_area_ha DOUBLE,                     -- computed in the local UTM zone
    status        VARCHAR NOT NULL,             -- submitted | verified | partial | rejected
    reason_code   VARCHAR,
    reason        VARCHAR
);

CREATE TABLE tiles (
    tile_id        VARCHAR PRIMARY KEY,         -- sha256 of the file contents (first 16 hex)
    scene_id       VARCHAR NOT NULL,
    acquired_on    DATE NOT NULL,
    path           VARCHAR NOT NULL,
    crs            VARCHAR NOT NULL,            -- e.g. EPSG:32632
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    res_m          DOUBLE NOT NULL,
    minx DOUBLE, miny DOUBLE, maxx DOUBLE, maxy DOUBLE,           -- native CRS
    min_lon DOUBLE, min_lat DOUBLE, max_lon DOUBLE, max_lat DOUBLE, -- EPSG:4326
    bands          VARCHAR[] NOT NULL,
    cloud_fraction DOUBLE NOT NULL,
    nodata_fraction DOUBLE NOT NULL,
    checksum       VARCHAR NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);

CREATE TABLE ingest_runs (
    run_id        VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,             -- demo | nightly | claims
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL,             -- running | ok | failed
    as_of         DATE,
    tiles_seen    INTEGER,
    claims_processed INTEGER,
    message       VARCHAR
);

-- One row per (claim, tile): what the imagery says inside the claimed polygon on that date.
CREATE TABLE observations (
    claim_id          VARCHAR NOT NULL,
    tile_id           VARCHAR NOT NULL,
    observed_on       DATE NOT NULL,
    valid_fraction    DOUBLE NOT NULL,          -- share of claim pixels not cloud / nodata
    ndvi_mean         DOUBLE,
    ndvi_p10          DOUBLE,
    ndvi_p90          DOUBLE,
    PRIMARY KEY (claim_id, tile_id)
);

CREATE TABLE verifications (
    verification_id   VARCHAR PRIMARY KEY,      -- hash of claim, tiles, models, as_of
    claim_id          VARCHAR NOT NULL,
    run_id            VARCHAR NOT NULL,
    as_of             DATE NOT NULL,
    verified_at       TIMESTAMP NOT NULL,
    status            VARCHAR NOT NULL,         -- verified | partial | rejected
    reasons           JSON NOT NULL,            -- [{code, message}]
    claimed_area_ha   DOUBLE,
    farmland_area_ha  DOUBLE,                   -- segmentation: field pixels inside the claim
    planted_area_ha   DOUBLE,                   -- farmland pixels with crop vigour (NDVI)
    overlap_area_ha   DOUBLE,                   -- overlap with other borrowers' claims
    verified_area_ha  DOUBLE,
    crop              VARCHAR,
    crop_probability  DOUBLE,
    crop_probs        JSON,
    cropland_probability DOUBLE,
    tile_ids          VARCHAR[] NOT NULL,
    seg_model_version VARCHAR,
    crop_model_version VARCHAR,
    sensor_evidence   JSON
);

CREATE TABLE valuations (
    valuation_id      VARCHAR PRIMARY KEY,
    verification_id   VARCHAR NOT NULL,
    claim_id          VARCHAR NOT NULL,
    borrower_id       VARCHAR NOT NULL,
    as_of             DATE NOT NULL,
    valued_at         TIMESTAMP NOT NULL,
    crop              VARCHAR,
    area_ha           DOUBLE NOT NULL,
    area_mu           DOUBLE NOT NULL,
    yield_kg_per_mu   DOUBLE,
    price_cny_per_kg  DOUBLE,
    crop_probability  DOUBLE,
    value_cny         DOUBLE NOT NULL,
    params_version    VARCHAR NOT NULL,
    explanation       JSON NOT NULL
);

CREATE TABLE credit_limits (
    limit_id          VARCHAR PRIMARY KEY,
    valuation_id      VARCHAR NOT NULL,
    claim_id          VARCHAR NOT NULL,
    borrower_id       VARCHAR NOT NULL,
    as_of             DATE NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    limit_cny         DOUBLE NOT NULL,
    advance_rate      DOUBLE NOT NULL,
    params_version    VARCHAR NOT NULL,
    explanation       JSON NOT NULL
);

CREATE TABLE alerts (
    alert_id     VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,              -- crop_failure | sensor_silent | ...
    borrower_id  VARCHAR,
    claim_id     VARCHAR,
    device_id    VARCHAR,
    raised_at    TIMESTAMP NOT NULL,
    as_of        DATE NOT NULL,
    message      VARCHAR NOT NULL,
    details      JSON
);
