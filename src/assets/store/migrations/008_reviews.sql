-- The review queue (issue #12): a drawing whose boundary follows no detected field is verified
-- as `review` and gets no limit until a credit officer decides. Each decision is kept (who, why,
-- when, and the reasons they saw); the newest decision per claim is the one verification applies.
CREATE TABLE claim_reviews (
    review_id       VARCHAR PRIMARY KEY,
    claim_id        VARCHAR NOT NULL,
    borrower_id     VARCHAR NOT NULL,
    verification_id VARCHAR NOT NULL,           -- the `review` verdict that was decided
    decision        VARCHAR NOT NULL,           -- approve | reject
    note            VARCHAR NOT NULL,           -- the officer's reason, shown to the borrower
    decided_by      VARCHAR NOT NULL,           -- user name (API) or operator (CLI)
    channel         VARCHAR NOT NULL,           -- api | cli
    decided_at      TIMESTAMP NOT NULL,
    reasons         JSON NOT NULL               -- the verdict's reasons as the officer saw them
);

-- How each drawing sits on the detected fields (boundary.py): shares, cut fields, seasons.
ALTER TABLE verifications ADD COLUMN boundary JSON;
