-- A valuation row carries the model versions and the inputs it was computed from, so a credit
-- officer can reproduce it without joining back to the verification.
ALTER TABLE valuations ADD COLUMN seg_model_version VARCHAR;
ALTER TABLE valuations ADD COLUMN crop_model_version VARCHAR;
ALTER TABLE valuations ADD COLUMN inputs JSON;
