-- When a submission's referral ended (rejected, closed, withdrawn), as its answers told:
-- the clock of the retention of the submission row (docs/retention.md).
ALTER TABLE submission ADD COLUMN ended_at timestamptz;
CREATE INDEX submission_ended ON submission (ended_at) WHERE ended_at IS NOT NULL;
