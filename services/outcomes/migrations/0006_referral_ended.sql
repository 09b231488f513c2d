-- When each referral's episode ended: its own closure or withdrawal, or that of the
-- episode it joined (a joined referral's closed_at stays empty when the episode closes).
-- The clock of the record of care's retention (docs/retention.md).
ALTER TABLE referral ADD COLUMN ended_at timestamptz;
UPDATE referral SET ended_at = closed_at WHERE closed_at IS NOT NULL;
UPDATE referral m SET ended_at = e.closed_at FROM referral e
 WHERE m.episode_referral_id = e.referral_id AND m.ended_at IS NULL AND e.closed_at IS NOT NULL;
CREATE INDEX referral_ended ON referral (ended_at) WHERE ended_at IS NOT NULL;
