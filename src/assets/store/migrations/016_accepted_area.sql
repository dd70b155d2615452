-- A borrower's verified area counts accepted fields only. A claim waiting for a credit officer
-- (`review`) carries the area the imagery measured, but nothing is lent on it until it is
-- approved, so summing it into `verified_area_ha` overstated the land behind a limit (a borrower
-- with 30.62 ha verified and three drawings under review read 45.90 ha). Same columns as before.
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
       max(as_of) AS as_of
FROM field_valuations
GROUP BY borrower_id;
