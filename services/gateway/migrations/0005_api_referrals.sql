-- Referrals sent over the JSON API (POST /v1/referrals): the submission row as for the
-- pages, its form key derived from the client's organisation and Idempotency-Key, and the
-- request body's SHA-256, so a repeat with the same key and another body is refused.
-- The first answer (accepted, rejected, duplicate) and a rejection's reasons (codes,
-- messages that never quote a value, field paths) are kept for GET /v1/referrals/{id}.
ALTER TABLE submission ADD COLUMN api_client_id uuid REFERENCES api_client (id);
ALTER TABLE submission ADD COLUMN request_digest bytea;
ALTER TABLE submission ADD COLUMN answer text;
ALTER TABLE submission ADD COLUMN reasons jsonb;
