-- When each referral ended (closed or withdrawn, told by referral.updated.v1): the clock of
-- the retention of the person's contact details (docs/retention.md).
ALTER TABLE referral ADD COLUMN ended_at timestamptz;
CREATE INDEX referral_ended ON referral (ended_at) WHERE ended_at IS NOT NULL;
