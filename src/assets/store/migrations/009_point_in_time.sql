-- Point in time and tamper evidence (issue #14). Valuations and limits are never overwritten:
-- every decision (a claim's verdict, value range and limit as of a date) is one row of
-- `decisions`, carrying what it was computed from (tiles with dates and checksums, model versions,
-- parameter version and sha256, sensor window, the valuation inputs) and the sha256 of the
-- previous decision row (`prev_hash`), so an edit made with plain SQL breaks the chain
-- (`assets audit verify`). valid_to is never stored: it is the next decision's valid_from.

ALTER TABLE valuations ADD COLUMN value_low_cny DOUBLE;
ALTER TABLE valuations ADD COLUMN value_high_cny DOUBLE;

-- Every parameter file a decision used, by content; a decision can be recomputed with it later.
CREATE TABLE valuation_params (
    params_sha256  VARCHAR PRIMARY KEY,
    params_version VARCHAR NOT NULL,
    params_toml    VARCHAR NOT NULL,
    first_used_at  TIMESTAMP NOT NULL
);

CREATE TABLE decisions (
    decision_seq      BIGINT PRIMARY KEY,        -- order of the hash chain, 1, 2, 3...
    decision_id       VARCHAR NOT NULL UNIQUE,   -- the limit_id, or dec-<verification> for a rejection
    claim_id          VARCHAR NOT NULL,
    borrower_id       VARCHAR NOT NULL,
    run_id            VARCHAR NOT NULL,          -- the per-borrower cap applies within one run
    verification_id   VARCHAR NOT NULL,
    valuation_id      VARCHAR,                   -- NULL for a rejected claim (limit 0)
    valid_from        DATE NOT NULL,             -- the as-of date of the evidence
    recorded_at       TIMESTAMP NOT NULL,        -- when the decision was made
    status            VARCHAR NOT NULL,          -- verified | partial | rejected
    crop              VARCHAR,
    area_ha           DOUBLE,
    value_low_cny     DOUBLE,
    value_cny         DOUBLE,
    value_high_cny    DOUBLE,
    limit_cny         DOUBLE NOT NULL,
    params_version    VARCHAR NOT NULL,
    params_sha256     VARCHAR NOT NULL,
    seg_model_version VARCHAR,
    crop_model_version VARCHAR,
    tiles             JSON NOT NULL,             -- [{tile_id, acquired_on, checksum}]
    sensor_window     JSON,                      -- {from, to, status, devices}
    inputs            JSON,                      -- valuation.ValuationInput: enough to recompute the value
    reasons           JSON NOT NULL,
    explanation       JSON NOT NULL,
    prev_hash         VARCHAR NOT NULL,
    row_hash          VARCHAR NOT NULL
);
CREATE INDEX decisions_borrower ON decisions (borrower_id);

-- Each decision with the period it was in force for its claim (valid_to exclusive, NULL = current).
CREATE VIEW decision_timeline AS
SELECT d.*, lead(valid_from) OVER (PARTITION BY claim_id ORDER BY valid_from, decision_seq) AS valid_to
FROM decisions d;

-- Credit team views for the plain `duckdb` CLI.
-- The newest decision per claim: what the bank lends against today.
CREATE VIEW current_limits AS
SELECT * FROM decision_timeline WHERE valid_to IS NULL;

-- Field valuations with geometry (GeoJSON text and WKB, EPSG:4326) and a region: the 1-degree
-- grid cell of the field's centre (no administrative boundaries are held offline), e.g. N56E009.
CREATE VIEW field_valuations AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(d.status, c.status) AS status, coalesce(c.reason, d.reasons::VARCHAR) AS reason,
       d.crop, d.area_ha AS verified_area_ha, d.value_low_cny, d.value_cny, d.value_high_cny, d.limit_cny,
       d.valid_from AS as_of, d.params_version, d.crop_model_version, d.seg_model_version, d.decision_id,
       CASE WHEN c.min_lat IS NULL THEN NULL ELSE
           (CASE WHEN (c.min_lat + c.max_lat) / 2 >= 0 THEN 'N' ELSE 'S' END)
           || lpad(CAST(floor(abs((c.min_lat + c.max_lat) / 2)) AS INTEGER)::VARCHAR, 2, '0')
           || (CASE WHEN (c.min_lon + c.max_lon) / 2 >= 0 THEN 'E' ELSE 'W' END)
           || lpad(CAST(floor(abs((c.min_lon + c.max_lon) / 2)) AS INTEGER)::VARCHAR, 3, '0') END AS region,
       c.geojson, c.geom_wkb
FROM claims c LEFT JOIN current_limits d USING (claim_id);

-- Open alerts, newest first, with the borrower's current limit.
CREATE VIEW alerts_open AS
SELECT a.as_of, a.kind, a.borrower_id, a.claim_id, a.device_id, a.message, a.raised_at,
       (SELECT sum(limit_cny) FROM current_limits l WHERE l.borrower_id = a.borrower_id) AS borrower_limit_cny
FROM alerts a ORDER BY a.as_of DESC, a.kind;
