-- "Make a referral": professionals at organisations the gateway serves sign in as
-- themselves. Secrets are kept as digests only: passwords as argon2id hashes, invitation
-- and session tokens as their SHA-256 (the browser or the invitation link holds the token).

-- An organisation the professional pages send for: its name and kind, as its referrals
-- name them (referrer.organisation_name, referrer.agency_type).
CREATE TABLE organisation (
    code         text PRIMARY KEY,
    name         text NOT NULL,
    agency_type  text NOT NULL
);

-- One account per person, within one organisation; no password until the invitation is used.
CREATE TABLE account (
    id             uuid PRIMARY KEY,
    organisation   text NOT NULL REFERENCES organisation (code),
    email          text NOT NULL UNIQUE,     -- lower case; how the person signs in
    role           text,                     -- referrer.professional_role, never a name
    password_hash  text,                     -- argon2id (PHC string)
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);

-- One-time invitations: the link carries the token; used once, or expired.
CREATE TABLE invitation (
    token_digest  bytea PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES account (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

-- Sessions, server side: ended by signing out, or idle too long, or too old.
CREATE TABLE session (
    token_digest  bytea PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES account (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE INDEX session_by_account ON session (account_id);

-- Every sign-in, by account id only (no address, no email).
CREATE TABLE sign_in (
    id          bigserial PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES account (id),
    at          timestamptz NOT NULL DEFAULT now()
);

-- A professional's half-filled referral is a draft of theirs; what they sent, theirs.
ALTER TABLE draft ADD COLUMN account_id uuid REFERENCES account (id);
ALTER TABLE submission ADD COLUMN account_id uuid REFERENCES account (id);
-- The HL7 Gravity task status the answers give, and when the step that set it happened.
ALTER TABLE submission ADD COLUMN task_status text;
ALTER TABLE submission ADD COLUMN task_status_at timestamptz NOT NULL DEFAULT '-infinity';
CREATE INDEX submission_by_organisation ON submission (organisation, submitted_at);
