-- The current state of the decision log (#14): one row per claim, its decision in force now (the
-- newest evidence date, then the newest recorded), kept in the same transaction as every append to
-- `decisions` (`store.history.append_decisions`, `append_staged`). The portfolio summary, the
-- per-claim status and the per-borrower totals aggregate these rows (one per field) instead of
-- ranking the whole timeline on every read. It is a derived index, never a source: `assets audit
-- verify` checks that every row equals the decision it names and that no claim has a newer one.
CREATE TABLE current_decisions (
    claim_id           VARCHAR NOT NULL,
    decision_seq       BIGINT NOT NULL,
    decision_id        VARCHAR NOT NULL,
    borrower_id        VARCHAR NOT NULL,
    verification_id    VARCHAR NOT NULL,
    valuation_id       VARCHAR,
    valid_from         DATE NOT NULL,
    recorded_at        TIMESTAMP NOT NULL,
    status             VARCHAR NOT NULL,
    crop               VARCHAR,
    area_ha            DOUBLE,
    value_low_cny      DOUBLE,
    value_cny          DOUBLE,
    value_high_cny     DOUBLE,
    limit_cny          DOUBLE NOT NULL,
    params_version     VARCHAR NOT NULL,
    seg_model_version  VARCHAR,
    crop_model_version VARCHAR,
    reasons            JSON NOT NULL
);

INSERT INTO current_decisions
SELECT claim_id, decision_seq, decision_id, borrower_id, verification_id, valuation_id, valid_from, recorded_at,
       status, crop, area_ha, value_low_cny, value_cny, value_high_cny, limit_cny, params_version,
       seg_model_version, crop_model_version, reasons
FROM decisions
QUALIFY row_number() OVER (PARTITION BY claim_id ORDER BY valid_from DESC, decision_seq DESC) = 1;

-- The newest decision per claim, every column of the log (valid_to is NULL: still in force).
CREATE OR REPLACE VIEW current_limits AS
SELECT d.*, CAST(NULL AS DATE) AS valid_to
FROM current_decisions c JOIN decisions d ON d.decision_seq = c.decision_seq;

-- Field valuations with geometry (GeoJSON text and WKB, EPSG:4326) and a region: the 1-degree
-- grid cell of the field's centre (no administrative boundaries are held offline), e.g. N56E009.
-- Same columns as migration 009, now over the current-state rows.
CREATE OR REPLACE VIEW field_valuations AS
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
FROM claims c LEFT JOIN current_decisions d USING (claim_id);

-- One row per claim: the drawing and its decision in force now (verdict, value range, limit), from
-- the decision log like every other face, so a revaluation or a review decision shows here at once.
-- A claim with no decision yet (rejected at submission, or not yet assessed) shows its own status.
-- Value and limit are NULL when the claim was not valued (rejected, or waiting for review).
-- Columns of migration 005, plus the low / high value, the decision id and when it was recorded.
CREATE OR REPLACE VIEW claim_status AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(d.status, c.status) AS status,
       coalesce(c.reason, (SELECT string_agg(r->>'message', '; ') FROM unnest(CAST(d.reasons AS JSON[])) AS t(r)
                           WHERE r->>'code' <> 'ok')) AS reason,
       d.verification_id, d.valid_from AS as_of, d.area_ha AS verified_area_ha, d.area_ha * 15 AS verified_area_mu,
       d.crop, v.crop_probability, v.tile_ids, d.seg_model_version, d.crop_model_version,
       d.valuation_id,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_low_cny END AS value_low_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_cny END AS value_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_high_cny END AS value_high_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.decision_id END AS limit_id,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.limit_cny END AS limit_cny,
       d.params_version, d.decision_id, d.recorded_at
FROM claims c
LEFT JOIN current_decisions d USING (claim_id)
LEFT JOIN verifications v ON v.verification_id = d.verification_id;
