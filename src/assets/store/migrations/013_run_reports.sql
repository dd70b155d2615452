-- One report per night (flows/nightly.py, assets/runs.py): what came in, what changed, how long each
-- stage took. Written as `running` when the night starts and completed when it ends, so a night
-- killed mid-way stays visible as `running` (never finished) until the next one.
CREATE TABLE run_reports (
    run_id             VARCHAR PRIMARY KEY,      -- n-<16 hex>
    kind               VARCHAR NOT NULL,         -- nightly | demo | backfill
    as_of              DATE NOT NULL,
    started_at         TIMESTAMP NOT NULL,
    finished_at        TIMESTAMP,
    status             VARCHAR NOT NULL,         -- running | ok | partial (a stage failed, the rest ran) | failed
    task_runner        VARCHAR NOT NULL,         -- prefect default | dask local:2 | dask tcp://...
    tiles_ingested     INTEGER NOT NULL DEFAULT 0,   -- new STAC items (COGs made) this night
    tiles_known        INTEGER NOT NULL DEFAULT 0,   -- delivered again, already catalogued
    tiles_duplicate    INTEGER NOT NULL DEFAULT 0,   -- catalogued bytes under another name
    tiles_quarantined  INTEGER NOT NULL DEFAULT 0,
    tiles_failed       INTEGER NOT NULL DEFAULT 0,   -- could not be fetched or written: tried again next night
    fields_refreshed   INTEGER NOT NULL DEFAULT 0,   -- claims verified, valued and limited again
    limits_changed     INTEGER NOT NULL DEFAULT 0,   -- claims whose limit in force differs from before the night
    alerts_raised      INTEGER NOT NULL DEFAULT 0,   -- new alert rows
    assessment_run_id  VARCHAR,                  -- verifications.run_id / ingest_runs.run_id of the night
    message            VARCHAR,
    details            JSON                      -- quarantined, duplicates, failed tiles, limit changes, workers
);

CREATE TABLE run_stages (
    run_id   VARCHAR NOT NULL,
    ordinal  INTEGER NOT NULL,
    stage    VARCHAR NOT NULL,                   -- sensors | ingest | segment | assess
    seconds  DOUBLE NOT NULL,
    status   VARCHAR NOT NULL,                   -- ok | failed | skipped
    message  VARCHAR,
    PRIMARY KEY (run_id, stage)
);

-- The nights, newest first, with the time of each stage as a column.
CREATE VIEW run_overview AS
SELECT r.run_id, r.kind, r.as_of, r.started_at, r.finished_at, r.status, r.task_runner,
       r.tiles_ingested, r.tiles_known, r.tiles_duplicate, r.tiles_quarantined, r.tiles_failed,
       r.fields_refreshed, r.limits_changed, r.alerts_raised, r.assessment_run_id, r.message,
       epoch(r.finished_at - r.started_at) AS wall_s,
       (SELECT sum(seconds) FROM run_stages s WHERE s.run_id = r.run_id) AS stages_s,
       (SELECT seconds FROM run_stages s WHERE s.run_id = r.run_id AND s.stage = 'sensors') AS sensors_s,
       (SELECT seconds FROM run_stages s WHERE s.run_id = r.run_id AND s.stage = 'ingest') AS ingest_s,
       (SELECT seconds FROM run_stages s WHERE s.run_id = r.run_id AND s.stage = 'segment') AS segment_s,
       (SELECT seconds FROM run_stages s WHERE s.run_id = r.run_id AND s.stage = 'assess') AS assess_s
FROM run_reports r
ORDER BY r.started_at DESC;
