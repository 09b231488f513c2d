-- One row per PCN: locked FOR UPDATE by every decision in that PCN, so that concurrent
-- triage processes place its referrals one at a time and never exceed capacity.
CREATE TABLE pcn (
    pcn text PRIMARY KEY
);

-- A worker belongs to one PCN's roster: the same id in two PCNs is two roster places,
-- and every change to a roster happens under its own PCN's lock.
CREATE TABLE link_worker (
    pcn            text NOT NULL REFERENCES pcn (pcn),
    link_worker_id text NOT NULL,
    capacity       integer NOT NULL CHECK (capacity >= 0),
    registered_at  timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pcn, link_worker_id)
);

-- A referral's place. A closure that arrives before the referral leaves a row with
-- status 'closed' and no PCN, so the late referral is never placed.
CREATE TABLE referral (
    referral_id         uuid PRIMARY KEY,
    pcn                 text REFERENCES pcn (pcn),
    registered_practice text,
    needs               text[],
    pathway             text,
    status              text NOT NULL CHECK (status IN ('waiting', 'assigned', 'closed')),
    link_worker_id      text,
    accepted_at         timestamptz,
    assigned_at         timestamptz,
    closed_at           timestamptz,
    close_reason        text,
    FOREIGN KEY (pcn, link_worker_id) REFERENCES link_worker (pcn, link_worker_id),
    CHECK (status <> 'assigned' OR link_worker_id IS NOT NULL),
    CHECK (status = 'closed' OR pcn IS NOT NULL)
);
CREATE INDEX referral_waitlist ON referral (pcn, accepted_at, referral_id) WHERE status = 'waiting';
CREATE INDEX referral_caseload ON referral (pcn, link_worker_id) WHERE status = 'assigned';
