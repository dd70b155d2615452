-- Views the credit team queries with plain SQL (the CLI and the HTTP API read the same views).

-- The newest verification of each claim.
CREATE VIEW latest_verifications AS
SELECT * EXCLUDE (rn) FROM (
    SELECT v.*, row_number() OVER (PARTITION BY claim_id ORDER BY as_of DESC, verified_at DESC) AS rn
    FROM verifications v
) WHERE rn = 1;

-- One row per claim: the drawing, its newest verdict, value and limit.
CREATE VIEW claim_status AS
SELECT c.claim_id, c.borrower_id, c.name, c.submitted_at, c.claimed_area_ha,
       coalesce(v.status, c.status) AS status,
       coalesce(c.reason, (SELECT string_agg(r->>'message', '; ') FROM unnest(CAST(v.reasons AS JSON[])) AS t(r)
                           WHERE CAST(r->>'blocking' AS BOOLEAN) OR v.status <> 'verified')) AS reason,
       v.verification_id, v.as_of, v.verified_area_ha, v.verified_area_ha * 15 AS verified_area_mu,
       v.crop, v.crop_probability, v.tile_ids, v.seg_model_version, v.crop_model_version,
       a.valuation_id, a.value_cny, l.limit_id, l.limit_cny, a.params_version
FROM claims c
LEFT JOIN latest_verifications v USING (claim_id)
LEFT JOIN valuations a ON a.verification_id = v.verification_id
LEFT JOIN credit_limits l ON l.valuation_id = a.valuation_id;

-- One row per borrower: what the bank can lend today.
CREATE VIEW borrower_limits AS
SELECT borrower_id,
       count(*) AS claims,
       count(*) FILTER (WHERE status IN ('verified', 'partial')) AS claims_accepted,
       count(*) FILTER (WHERE status = 'rejected') AS claims_rejected,
       coalesce(sum(verified_area_ha), 0) AS verified_area_ha,
       coalesce(sum(verified_area_mu), 0) AS verified_area_mu,
       coalesce(sum(value_cny), 0) AS value_cny,
       coalesce(sum(limit_cny), 0) AS limit_cny,
       max(as_of) AS as_of
FROM claim_status
GROUP BY borrower_id;
