-- Who may use the HTTP API (issue #13): users with one role each, their tokens (stored as sha256 of
-- the secret, never the secret), one-time sign-in codes for farmers, and the officers' audit trail.
CREATE TABLE users (
    user_name   VARCHAR PRIMARY KEY,
    role        VARCHAR NOT NULL CHECK (role IN ('farmer', 'officer', 'operations')),
    borrower_id VARCHAR,                           -- farmers only: the one borrower they act for
    created_at  TIMESTAMP NOT NULL,
    CHECK ((role = 'farmer') = (borrower_id IS NOT NULL))
);

-- kind 'token': a bearer token; kind 'link': a one-time sign-in code, exchanged once for a token.
CREATE TABLE api_tokens (
    token_id      VARCHAR PRIMARY KEY,             -- public half, printed by `assets users list`
    user_name     VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL CHECK (kind IN ('token', 'link')),
    secret_sha256 VARCHAR NOT NULL,                -- hex sha256 of the secret half
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT false,
    revoked_at    TIMESTAMP,
    used_at       TIMESTAMP                        -- links: when the code was exchanged
);

CREATE TABLE audit_log (
    audited_at  TIMESTAMP NOT NULL,
    user_name   VARCHAR NOT NULL,
    role        VARCHAR NOT NULL,
    token_id    VARCHAR,
    action      VARCHAR NOT NULL,                  -- e.g. 'GET /borrowers/{borrower_id}' or 'users revoke'
    target      VARCHAR,                           -- the borrower, user or token acted on
    status      INTEGER                            -- HTTP status of the answer (NULL for CLI actions)
);
