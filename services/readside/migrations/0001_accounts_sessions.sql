-- The dashboard's own schema (<ns>_readside): one account per person and their sessions.
-- Nothing here is a figure; the figures stay in outcomes' reporting model, read-only.

CREATE TABLE account (
    id uuid PRIMARY KEY,
    -- the name a person signs in with (an operator gives it; no email, no NHS number)
    login text NOT NULL UNIQUE CHECK (login ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    kind text NOT NULL CHECK (kind IN ('pcn', 'commissioner')),
    pcn text CHECK (pcn IS NULL OR pcn ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
    -- argon2id (services/runtime/accounts.py); NULL: signs in by single sign-on only
    password_hash text,
    -- single sign-on: the provider's issuer and subject identify the person
    oidc_issuer text,
    oidc_subject text,
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CHECK ((kind = 'pcn') = (pcn IS NOT NULL)),
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    UNIQUE (oidc_issuer, oidc_subject)
);

-- A session: the browser holds a random token, this table its SHA-256 only.
CREATE TABLE session (
    digest bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES account (id),
    csrf text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz
);
CREATE INDEX session_created ON session (created_at);

-- A single sign-on under way: the state and nonce sent to the provider, kept (as the
-- state's digest) until the person comes back, for a few minutes at most.
CREATE TABLE sign_in_pending (
    state_digest bytea PRIMARY KEY,
    nonce text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
