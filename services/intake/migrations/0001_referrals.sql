-- Accepted referrals, held whole (this is the only service that keeps the full
-- submission), and an audit of every submission's outcome without personal data.

CREATE TABLE referral (
    referral_id         uuid PRIMARY KEY,
    sender              text NOT NULL,
    sender_reference    text NOT NULL,
    submission_event_id text NOT NULL,
    agency_type         text NOT NULL,
    registered_practice text NOT NULL,
    pcn                 text NOT NULL,
    pathway             text NOT NULL,
    needs               text[] NOT NULL,
    submission          jsonb NOT NULL,
    accepted_at         timestamptz NOT NULL,
    -- one referral per sender reference: a resend is a duplicate, not a second referral
    UNIQUE (sender, sender_reference)
);

CREATE TABLE submission (
    event_id         text PRIMARY KEY,
    sender           text NOT NULL,
    sender_reference text,
    outcome          text NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'duplicate')),
    referral_id      uuid,
    reason_codes     text[] NOT NULL DEFAULT '{}',
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX submission_by_sender ON submission (sender, received_at);
