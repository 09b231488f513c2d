-- API clients: an organisation's own system sending referrals over HTTP (the JSON API and
-- the FHIR endpoints). Each credential belongs to one organisation the gateway serves; the
-- secret is shown once and kept only as its HMAC-SHA256 digest under the server's pepper.
CREATE TABLE api_client (
    id             uuid PRIMARY KEY,
    organisation   text NOT NULL REFERENCES organisation (code),
    name           text NOT NULL,             -- the operator's label: "Riverside EMIS"
    secret_digest  bytea NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,               -- NULL: until revoked
    revoked_at     timestamptz
);
CREATE INDEX api_client_by_organisation ON api_client (organisation);
