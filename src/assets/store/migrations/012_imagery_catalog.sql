-- Imagery catalogue (imagery/catalog.py): every usable tile is a Cloud-Optimised GeoTIFF with a
-- STAC Item (also written as JSON next to the COG); one STAC Collection holds them. `tiles.path`
-- points at the COG. Deliveries record every file seen under every name, so the same bytes
-- delivered twice are one item and one tile with two deliveries.
CREATE TABLE stac_items (
    tile_id        VARCHAR PRIMARY KEY,         -- = tiles.tile_id (t-<sha256[:16]> of the delivered bytes)
    collection_id  VARCHAR NOT NULL,
    acquired_on    DATE NOT NULL,
    cog_path       VARCHAR NOT NULL,
    item_path      VARCHAR NOT NULL,            -- the same item as JSON beside the COG
    source         VARCHAR NOT NULL,            -- where it was first delivered (path or fsspec URL)
    item           JSON NOT NULL,               -- the STAC Item
    created_at     TIMESTAMP NOT NULL
);

CREATE TABLE stac_collections (
    collection_id  VARCHAR PRIMARY KEY,
    collection     JSON NOT NULL,               -- the STAC Collection (extent over every item)
    updated_at     TIMESTAMP NOT NULL
);

CREATE TABLE tile_deliveries (
    delivery_id    VARCHAR PRIMARY KEY,         -- hash of (source, checksum): a file seen again adds nothing
    source         VARCHAR NOT NULL,
    checksum       VARCHAR,                     -- sha256 of the delivered bytes (NULL: unreadable)
    tile_id        VARCHAR NOT NULL,
    outcome        VARCHAR NOT NULL,            -- ingested | duplicate (bytes already catalogued) | quarantined
    duplicate_of   VARCHAR,                     -- the first source of the same bytes, for duplicates
    reason         VARCHAR,
    delivered_at   TIMESTAMP NOT NULL
);

-- One row per catalogued or quarantined tile: what `assets tiles list` shows.
CREATE VIEW tile_catalog AS
SELECT t.tile_id, t.scene_id, t.acquired_on, t.cloud_fraction, t.crs, t.width, t.height, t.bands, t.checksum,
       t.path AS cog_path, s.item_path, s.source, s.collection_id,
       (SELECT count(*) FROM tile_deliveries d WHERE d.tile_id = t.tile_id) AS deliveries,
       CASE WHEN q.tile_id IS NULL THEN 'usable' ELSE 'quarantined' END AS status,
       q.code AS quarantine_code, q.reason AS quarantine_reason, t.ingested_at
FROM tiles t LEFT JOIN stac_items s USING (tile_id) LEFT JOIN tile_quarantine q USING (tile_id)
UNION ALL
SELECT q.tile_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, q.path, NULL,
       (SELECT count(*) FROM tile_deliveries d WHERE d.tile_id = q.tile_id), 'quarantined', q.code, q.reason,
       q.quarantined_at
FROM tile_quarantine q WHERE q.tile_id NOT IN (SELECT tile_id FROM tiles);
