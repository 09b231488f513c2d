-- What outcomes knows of each referral. A row may be created by whichever event comes
-- first; the intake fields are filled when referral.accepted.v1 arrives.
CREATE TABLE referral (
    referral_id         uuid PRIMARY KEY,
    registered_practice text,
    nhs_number          text,
    agency_type         text,
    pcn                 text,
    needs               text[],
    accepted_at         timestamptz,
    waitlisted_at       timestamptz,
    assigned_at         timestamptz,
    link_worker_id      text,
    closed_at           timestamptz,
    close_reason        text
);

-- Every event in a referral's life, in the order it happened.
CREATE TABLE timeline (
    id          bigserial PRIMARY KEY,
    referral_id uuid NOT NULL,
    event_id    text NOT NULL UNIQUE,
    event_type  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_by_referral ON timeline (referral_id, occurred_at);

-- One GP writeback per fact and referral: the primary key makes a second impossible.
CREATE TABLE writeback (
    referral_id uuid NOT NULL,
    fact        text NOT NULL CHECK (fact IN ('accepted', 'declined', 'closed')),
    event_id    text NOT NULL UNIQUE,
    codes       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (referral_id, fact)
);
