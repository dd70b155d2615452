-- The sign-in link a token was bought with (`assets users link` -> POST /auth/exchange), so revoking
-- a link that went to the wrong phone also ends the session it opened, and `users list --tokens`
-- shows which token came from which link. NULL for tokens issued by `assets users token`.
ALTER TABLE api_tokens ADD COLUMN link_id VARCHAR;
