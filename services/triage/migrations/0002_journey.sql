-- The journey after assignment: who sent each referral (an agency may withdraw its own),
-- the person (a person already supported joins their open episode), withdrawals, and
-- people whose worker left, who go to the head of the waitlist.
ALTER TABLE referral ADD COLUMN sender text;
ALTER TABLE referral ADD COLUMN person_id uuid;
ALTER TABLE referral ADD COLUMN episode_referral_id uuid;
ALTER TABLE referral ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE referral DROP CONSTRAINT referral_status_check;
ALTER TABLE referral ADD CONSTRAINT referral_status_check
    CHECK (status IN ('waiting', 'assigned', 'closed', 'withdrawn', 'joined'));
CREATE INDEX referral_open_by_person ON referral (pcn, person_id)
    WHERE status IN ('waiting', 'assigned');
DROP INDEX referral_waitlist;
CREATE INDEX referral_waitlist ON referral (pcn, priority DESC, accepted_at, referral_id)
    WHERE status = 'waiting';

-- A worker who leaves stays on the roster, inactive, with no capacity.
ALTER TABLE link_worker ADD COLUMN active boolean NOT NULL DEFAULT true;
