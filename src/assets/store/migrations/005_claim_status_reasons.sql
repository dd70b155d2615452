-- claim_status.reason also shows warnings on verified claims (crop failure, silent sensors),
-- not only the reasons that rejected a claim.
CREATE OR REPLACE VIEW claim_status AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(v.status, c.status) AS status,
       coalesce(c.reason, (SELECT string_agg(r->>'message', '; ') FROM unnest(CAST(v.reasons AS JSON[])) AS t(r)
                           WHERE r->>'code' <> 'ok')) AS reason,
       v.verification_id, v.as_of, v.verified_area_ha, v.verified_area_ha * 15 AS verified_area_mu,
       v.crop, v.crop_probability, v.tile_ids, v.seg_model_version, v.crop_model_version,
       a.valuation_id, a.value_cny, l.limit_id, l.limit_cny, a.params_version
FROM claims c
LEFT JOIN latest_verifications v USING (claim_id)
LEFT JOIN valuations a ON a.verification_id = v.verification_id
LEFT JOIN credit_limits l ON l.valuation_id = a.valuation_id;
