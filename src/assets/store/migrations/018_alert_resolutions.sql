-- Alerts someone has dealt with, and alerts that repeat (operations, 2026-12-07).
-- Drift, drought and crop-failure alerts are raised again on every night their condition holds,
-- each night a row of its own, and none of them ever closed: a probe recalibrated in March still
-- listed thirty "drifted" alerts in December. Now:
--   * one line per subject: only the newest alert of a kind for one field, device (and variable)
--     is listed; the older rows stay in `alerts` as the record;
--   * drift and drought stay open until someone resolves them: a later night that raises none
--     may only lack the readings to judge (a broker outage, a claim assessed a day past the last
--     reading), which is not the soil getting wetter;
--   * any alert can be resolved by a person, with a note (`assets alerts resolve`, POST
--     /alerts/{id}/resolve); who, when and why are kept here. A condition that holds on a later
--     night raises a new alert (a new id) and is listed again.
--   * an alert about a field whose current verdict is `rejected` (by an officer, or a later night) is
--     not listed: nothing is lent on that field.
-- The silent-sensor rule of migration 017 is unchanged.
CREATE TABLE alert_resolutions (
    alert_id     VARCHAR PRIMARY KEY,
    resolved_by  VARCHAR NOT NULL,              -- user name (API) or operator (CLI)
    channel      VARCHAR NOT NULL,              -- api | cli
    resolved_at  TIMESTAMP NOT NULL,
    note         VARCHAR NOT NULL               -- what was done about it
);

CREATE OR REPLACE VIEW alerts_open AS
WITH newest AS (
    SELECT a.*, row_number() OVER (
        PARTITION BY a.kind, coalesce(a.claim_id, ''), coalesce(a.device_id, ''),
                     coalesce(CASE WHEN json_type(a.details) = 'OBJECT' THEN a.details->>'variable' END, '')
        ORDER BY a.as_of DESC, a.raised_at DESC, a.alert_id) AS nth
    FROM alerts a
)
SELECT a.alert_id, a.as_of, a.kind, a.borrower_id, a.claim_id, a.device_id, a.message, a.raised_at,
       (SELECT sum(limit_cny) FROM current_limits l WHERE l.borrower_id = a.borrower_id) AS borrower_limit_cny
FROM newest a
WHERE a.nth = 1
  AND NOT EXISTS (SELECT 1 FROM alert_resolutions x WHERE x.alert_id = a.alert_id)
  AND NOT (a.claim_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM current_decisions d WHERE d.claim_id = a.claim_id AND d.status = 'rejected'))
  AND NOT (a.kind = 'sensor_silent' AND EXISTS (
      SELECT 1 FROM sensor_readings r
      WHERE r.device_id = a.device_id
        AND r.ts > CASE WHEN json_type(a.details) = 'OBJECT'
                        THEN coalesce(TRY_CAST(a.details->>'last_seen' AS TIMESTAMP), TIMESTAMP '0001-01-01')
                        ELSE CAST(a.as_of AS TIMESTAMP) + INTERVAL 1 DAY END))
ORDER BY a.as_of DESC, a.kind;
