-- What notify keeps of each referral: who sent it and how to reach the person.
CREATE TABLE referral (
    referral_id      uuid PRIMARY KEY,
    sender           text NOT NULL,
    sender_reference text NOT NULL,
    pcn              text NOT NULL,
    contact          jsonb NOT NULL,
    -- how far the person and referrer have been told: accepted, waitlisted, assigned
    stage            text NOT NULL DEFAULT 'accepted'
);

-- Messages to people and teams, sent by the dispatcher after the transaction that
-- decided them commits. ``key`` makes each message unique per referral, step and audience.
CREATE TABLE notification (
    id              bigserial PRIMARY KEY,
    key             text NOT NULL UNIQUE,
    referral_id     uuid NOT NULL,
    audience        text NOT NULL,
    medium          text NOT NULL,
    address         text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX notification_pending ON notification (next_attempt_at) WHERE sent_at IS NULL;
