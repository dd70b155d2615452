-- An alert about a silent sensor closes once the device reports again. Alerts are stored once
-- (their id is the device and its last reading), and `alerts_open` used to list every alert ever
-- raised: a probe silent before its first reading in February was still "open" in September
-- after reporting all summer. A `sensor_silent` alert is open while no reading of the device is
-- timed after its as-of day; the other kinds are facts of a season or a day and stay listed.
-- `store.queries.alerts` (CLI, API, report) reads this view.
CREATE OR REPLACE VIEW alerts_open AS
SELECT a.alert_id, a.as_of, a.kind, a.borrower_id, a.claim_id, a.device_id, a.message, a.raised_at,
       (SELECT sum(limit_cny) FROM current_limits l WHERE l.borrower_id = a.borrower_id) AS borrower_limit_cny
FROM alerts a
WHERE NOT (a.kind = 'sensor_silent' AND EXISTS (
    SELECT 1 FROM sensor_readings r
    WHERE r.device_id = a.device_id AND r.ts >= CAST(a.as_of AS TIMESTAMP) + INTERVAL 1 DAY))
ORDER BY a.as_of DESC, a.kind;
