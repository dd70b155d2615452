-- Reasons a person can read in the credit team's views. `field_valuations.reason` used to be the
-- decision's reasons as raw JSON text (`[{"blocking": false, "code": "ok", ...}]`), while
-- `claim_status.reason` joined the messages: both now use `reasons_text`, the messages of the
-- reasons that are not `ok` joined by "; ", else the `ok` message itself ("37.62 ha of maize
-- confirmed by 7 satellite dates"). The structured reasons stay in `decisions.reasons` and
-- `verifications.reasons`; a claim refused at submission keeps its own `claims.reason`.
CREATE OR REPLACE MACRO reasons_text(reasons) AS coalesce(
    (SELECT string_agg(r->>'message', '; ') FROM unnest(CAST(reasons AS JSON[])) AS t(r) WHERE r->>'code' <> 'ok'),
    (SELECT string_agg(r->>'message', '; ') FROM unnest(CAST(reasons AS JSON[])) AS t(r) WHERE r->>'code' = 'ok'));

CREATE OR REPLACE VIEW field_valuations AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(d.status, c.status) AS status, coalesce(c.reason, reasons_text(d.reasons)) AS reason,
       d.crop, d.area_ha AS verified_area_ha, d.value_low_cny, d.value_cny, d.value_high_cny, d.limit_cny,
       d.valid_from AS as_of, d.params_version, d.crop_model_version, d.seg_model_version, d.decision_id,
       CASE WHEN c.min_lat IS NULL THEN NULL ELSE
           (CASE WHEN (c.min_lat + c.max_lat) / 2 >= 0 THEN 'N' ELSE 'S' END)
           || lpad(CAST(floor(abs((c.min_lat + c.max_lat) / 2)) AS INTEGER)::VARCHAR, 2, '0')
           || (CASE WHEN (c.min_lon + c.max_lon) / 2 >= 0 THEN 'E' ELSE 'W' END)
           || lpad(CAST(floor(abs((c.min_lon + c.max_lon) / 2)) AS INTEGER)::VARCHAR, 3, '0') END AS region,
       c.geojson, c.geom_wkb
FROM claims c LEFT JOIN current_decisions d USING (claim_id);

CREATE OR REPLACE VIEW claim_status AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(d.status, c.status) AS status, coalesce(c.reason, reasons_text(d.reasons)) AS reason,
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
