-- When each referral ended (closed, withdrawn), as outcomes told it (referral.updated.v1):
-- the clock of intake's retention of the referral and, once all of a person's referrals
-- have gone, of the person (docs/retention.md).
ALTER TABLE referral ADD COLUMN ended_at timestamptz;
CREATE INDEX referral_ended ON referral (ended_at) WHERE ended_at IS NOT NULL;
ALTER TABLE person ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
