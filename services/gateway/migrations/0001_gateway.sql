-- The gateway's own tables (its inbox and outbox are the runtime's).

-- Half-filled forms, kept here and nowhere else (never in a cookie, a URL or a log): the
-- browser holds only a random token, stored here as its SHA-256. A draft expires a while
-- after its last answer (LINKWELL_GATEWAY_DRAFT_MINUTES) and is then deleted; once sent,
-- its answers are emptied at once and only the reference is kept, to show the
-- confirmation again.
CREATE TABLE draft (
    token_digest bytea PRIMARY KEY,
    form_key     text NOT NULL UNIQUE,    -- the form's idempotency key (in its page)
    answers      jsonb NOT NULL DEFAULT '{}',
    reference    text,                    -- once sent
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX draft_by_expiry ON draft (expires_at);

-- What was sent, once per form (a double click or a resubmission sends nothing more), and
-- where it stands from the answers to it. No personal data: the date of birth the status
-- check asks for is kept only as a digest with the reference.
CREATE TABLE submission (
    reference     text PRIMARY KEY,
    form_key      text NOT NULL UNIQUE,
    event_id      text NOT NULL UNIQUE,
    organisation  text NOT NULL,
    check_digest  bytea NOT NULL,
    submitted_at  timestamptz NOT NULL DEFAULT now(),
    referral_id   uuid,
    step          text NOT NULL DEFAULT 'received',
    step_at       timestamptz NOT NULL DEFAULT '-infinity'  -- of the answer that set it
);
CREATE INDEX submission_by_referral ON submission (referral_id);
