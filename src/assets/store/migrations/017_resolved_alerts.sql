-- An alert about a silent sensor closes once the device reports again. Alerts are stored once
-- (their id is the device and its last reading), and `alerts_open` used to list every alert ever
-- raised: a probe silent before its first reading in February was still "open" in September
-- after reporting all summer. A `sensor_silent` alert says "no reading since <last_seen>": it is
-- open while no reading of the device is timed after that (any reading, for a device that never
-- reported; after the as-of day for alerts whose details were stored as text before this
-- migration), so readings that arrive late close it too. The other kinds are facts of a season or
-- a day and stay listed. `store.queries.alerts` (CLI, API, report, borrower view) reads this view.
CREATE OR REPLACE VIEW alerts_open AS
SELECT a.alert_id, a.as_of, a.kind, a.borrower_id, a.claim_id, a.device_id, a.message, a.raised_at,
       (SELECT sum(limit_cny) FROM current_limits l WHERE l.borrower_id = a.borrower_id) AS borrower_limit_cny
FROM alerts a
WHERE NOT (a.kind = 'sensor_silent' AND EXISTS (
    SELECT 1 FROM sensor_readings r
    WHERE r.device_id = a.device_id
      AND r.ts > CASE WHEN json_type(a.details) = 'OBJECT'
                      THEN coalesce(TRY_CAST(a.details->>'last_seen' AS TIMESTAMP), TIMESTAMP '0001-01-01')
                      ELSE CAST(a.as_of AS TIMESTAMP) + INTERVAL 1 DAY END))
ORDER BY a.as_of DESC, a.kind;
