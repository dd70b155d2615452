-- Tiles that failed the quality gate (imagery/quality.py): never observed, never a segmentation
-- reference. Keyed like `tiles` (sha256 of the bytes), so a fixed file is judged afresh and a
-- tile catalogued before the gate existed is excluded once it is quarantined.
CREATE TABLE tile_quarantine (
    tile_id        VARCHAR PRIMARY KEY,         -- t-<sha256[:16]> of the bytes; p-<hash of path> if unreadable
    path           VARCHAR NOT NULL,
    code           VARCHAR NOT NULL,            -- unreadable | bad_tag | scale | range | valid_pixels | band_stats | cloud_tag | invalid
    reason         VARCHAR NOT NULL,            -- what is wrong and what to do, shown to operators
    quarantined_at TIMESTAMP NOT NULL
);
