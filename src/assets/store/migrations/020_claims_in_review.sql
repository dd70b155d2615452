-- How many of a borrower's fields wait for a credit officer: a borrower with one field in review read
-- "claims 1, accepted 0, rejected 0" (QA 2026-12-07). Same columns as 016, `claims_in_review` added last.
CREATE OR REPLACE VIEW borrower_limits AS
SELECT borrower_id,
       count(*) AS claims,
       count(*) FILTER (WHERE status IN ('verified', 'partial')) AS claims_accepted,
       count(*) FILTER (WHERE status = 'rejected') AS claims_rejected,
       coalesce(sum(verified_area_ha) FILTER (WHERE status IN ('verified', 'partial')), 0) AS verified_area_ha,
       coalesce(sum(verified_area_ha) FILTER (WHERE status IN ('verified', 'partial')), 0) * 15 AS verified_area_mu,
       coalesce(sum(value_low_cny), 0) AS value_low_cny,
       coalesce(sum(value_cny), 0) AS value_cny,
       coalesce(sum(value_high_cny), 0) AS value_high_cny,
       coalesce(sum(limit_cny), 0) AS limit_cny,
       max(as_of) AS as_of,
       count(*) FILTER (WHERE status = 'review') AS claims_in_review
FROM field_valuations
GROUP BY borrower_id;
