-- One query layer (#14): the borrower totals every face reads (`assets query borrower`, the
-- `/portfolio` and `/borrowers/{id}` routes, the `duckdb` CLI) come from the point-in-time
-- decision log, like `current_limits` and `field_valuations`, instead of the newest rows of
-- `valuations` / `credit_limits` (which a revaluation after a price change does not touch).
-- Same columns as before, plus the low and high value.
CREATE OR REPLACE VIEW borrower_limits AS
SELECT borrower_id,
       count(*) AS claims,
       count(*) FILTER (WHERE status IN ('verified', 'partial')) AS claims_accepted,
       count(*) FILTER (WHERE status = 'rejected') AS claims_rejected,
       coalesce(sum(verified_area_ha), 0) AS verified_area_ha,
       coalesce(sum(verified_area_ha), 0) * 15 AS verified_area_mu,
       coalesce(sum(value_low_cny), 0) AS value_low_cny,
       coalesce(sum(value_cny), 0) AS value_cny,
       coalesce(sum(value_high_cny), 0) AS value_high_cny,
       coalesce(sum(limit_cny), 0) AS limit_cny,
       max(as_of) AS as_of
FROM field_valuations
GROUP BY borrower_id;
