-- `field_valuations` (and every export built on it) carried the measured area of fields waiting for an
-- officer or rejected under `verified_area_ha`, and 0.0 as their value and limit: summing an export's
-- verified area overstated the land behind the limits by 44 % (data QA 2026-12-07). Verified area, value
-- and limit are now NULL unless the field is verified or partial, as in `claim_status`; what the imagery
-- measured stays readable as `measured_area_ha` (added last, so the other columns keep their places).
CREATE OR REPLACE VIEW field_valuations AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(d.status, c.status) AS status, coalesce(c.reason, reasons_text(d.reasons)) AS reason,
       d.crop,
       CASE WHEN d.status IN ('verified', 'partial') THEN d.area_ha END AS verified_area_ha,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_low_cny END AS value_low_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_cny END AS value_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.value_high_cny END AS value_high_cny,
       CASE WHEN d.valuation_id IS NOT NULL THEN d.limit_cny END AS limit_cny,
       d.valid_from AS as_of, d.params_version, d.crop_model_version, d.seg_model_version, d.decision_id,
       CASE WHEN c.min_lat IS NULL THEN NULL ELSE
           (CASE WHEN (c.min_lat + c.max_lat) / 2 >= 0 THEN 'N' ELSE 'S' END)
           || lpad(CAST(floor(abs((c.min_lat + c.max_lat) / 2)) AS INTEGER)::VARCHAR, 2, '0')
           || (CASE WHEN (c.min_lon + c.max_lon) / 2 >= 0 THEN 'E' ELSE 'W' END)
           || lpad(CAST(floor(abs((c.min_lon + c.max_lon) / 2)) AS INTEGER)::VARCHAR, 3, '0') END AS region,
       c.geojson, c.geom_wkb,
       d.area_ha AS measured_area_ha
FROM claims c LEFT JOIN current_decisions d USING (claim_id);
