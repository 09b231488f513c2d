-- The journey after assignment: who sent each referral and what the person agreed the GP
-- receives, the episode a referral joined (a person already supported), pauses, the
-- first take-up of support, withdrawals; measurements; one writeback per fact and key
-- (a plan, a note, a measurement), once per episode for accepted, declined and closed.
ALTER TABLE referral ADD COLUMN sender text;
ALTER TABLE referral ADD COLUMN gp_sharing text NOT NULL DEFAULT 'codes_and_summaries';
ALTER TABLE referral ADD COLUMN person_id uuid;
ALTER TABLE referral ADD COLUMN episode_referral_id uuid;
ALTER TABLE referral ADD COLUMN in_progress_at timestamptz;
ALTER TABLE referral ADD COLUMN held_at timestamptz;
ALTER TABLE referral ADD COLUMN withdrawn_by text;
ALTER TABLE referral ADD COLUMN end_note text;
CREATE INDEX referral_members ON referral (episode_referral_id)
    WHERE episode_referral_id IS NOT NULL;

CREATE TABLE measurement (
    referral_id uuid NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    instrument  text NOT NULL CHECK (instrument IN ('swemwbs', 'ons4')),
    point       text NOT NULL CHECK (point IN ('baseline', 'review', 'end')),
    items       integer[] NOT NULL,
    raw_total   integer NOT NULL,
    metric      numeric(5, 2),
    bands       jsonb NOT NULL DEFAULT '{}',
    taken_at    timestamptz NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX measurement_by_referral ON measurement (referral_id, taken_at);

ALTER TABLE writeback DROP CONSTRAINT writeback_fact_check;
ALTER TABLE writeback ADD CONSTRAINT writeback_fact_check
    CHECK (fact IN ('accepted', 'declined', 'closed', 'plan', 'note', 'wellbeing'));
ALTER TABLE writeback ADD COLUMN key text NOT NULL DEFAULT '';
ALTER TABLE writeback DROP CONSTRAINT writeback_pkey;
ALTER TABLE writeback ADD PRIMARY KEY (referral_id, fact, key);
