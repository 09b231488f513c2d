-- The retention sweep finds ended placements (closed_at is when a referral closed or was
-- withdrawn, docs/retention.md) and the referrals joined to them by these.
CREATE INDEX referral_ended ON referral (closed_at) WHERE status IN ('closed', 'withdrawn');
CREATE INDEX referral_joined_to ON referral (episode_referral_id) WHERE status = 'joined';
