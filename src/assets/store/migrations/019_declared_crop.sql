-- The crop a farmer says the field carries (GeoJSON `properties.crop`, free text in any language the
-- legend knows: "Mais", "blé", "玉米"), kept as written. Valuation goes by the imagery; the verdict
-- says when the two disagree (`declared_crop_differs`) or the imagery cannot confirm it.
ALTER TABLE claims ADD COLUMN declared_crop VARCHAR;
