-- The reporting model (schema <ns>_reporting, owned by outcomes): one row per referral,
-- refusal and link worker, projected from outcomes' own tables as each event is handled,
-- and rebuildable from them (`linkwell report rebuild`). No names, NHS numbers, dates of
-- birth or contact details: nothing here identifies a person.
CREATE TABLE referral_fact (
    referral_id         uuid PRIMARY KEY,
    person_id           uuid,
    sender              text NOT NULL,
    agency_type         text NOT NULL,
    registered_practice text NOT NULL,
    pcn                 text NOT NULL,
    needs               text[] NOT NULL,
    pathway             text NOT NULL,
    received_at         timestamptz NOT NULL,
    waitlisted_at       timestamptz,
    assigned_at         timestamptz,
    first_contact_at    timestamptz,
    declined_at         timestamptz,
    withdrawn_at        timestamptz,
    closed_at           timestamptz,
    close_reason        text,
    contacts            integer NOT NULL DEFAULT 0,
    coded_at            timestamptz,
    link_worker_id      text,
    joined              boolean NOT NULL DEFAULT false,
    swemwbs_baseline    numeric(5, 2),
    swemwbs_end         numeric(5, 2),
    ons4_baseline       integer[],
    ons4_end            integer[]
);
CREATE INDEX referral_fact_received ON referral_fact (received_at);
CREATE INDEX referral_fact_pcn ON referral_fact (pcn, received_at);

CREATE TABLE rejection_fact (
    submission_id       text PRIMARY KEY,
    sender              text NOT NULL,
    agency_type         text,
    registered_practice text,
    pcn                 text,
    reasons             text[] NOT NULL,
    rejected_at         timestamptz NOT NULL
);

CREATE TABLE roster_fact (
    pcn            text NOT NULL,
    link_worker_id text NOT NULL,
    capacity       integer NOT NULL,
    active         boolean NOT NULL,
    PRIMARY KEY (pcn, link_worker_id)
);

-- Dashboard access: a token per organisation, kept as a SHA-256 digest only.
CREATE TABLE dashboard_token (
    digest     text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('pcn', 'commissioner')),
    pcn        text,
    label      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (kind <> 'pcn' OR pcn IS NOT NULL)
);
