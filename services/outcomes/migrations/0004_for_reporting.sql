-- What the reports need that outcomes did not keep: each referral's pathway, intake's
-- refusals (no person in them), and each PCN's roster as triage holds it.
ALTER TABLE referral ADD COLUMN pathway text;

CREATE TABLE rejection (
    source              text NOT NULL,
    submission_event_id text NOT NULL,
    sender              text NOT NULL,
    agency_type         text,
    registered_practice text,
    pcn                 text,
    reasons             text[] NOT NULL,
    rejected_at         timestamptz NOT NULL,
    PRIMARY KEY (source, submission_event_id)
);

CREATE TABLE roster (
    pcn            text NOT NULL,
    link_worker_id text NOT NULL,
    capacity       integer NOT NULL,
    active         boolean NOT NULL,
    changed_at     timestamptz NOT NULL,
    PRIMARY KEY (pcn, link_worker_id)
);
