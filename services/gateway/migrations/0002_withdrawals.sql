-- A person may withdraw their referral from its status page: once, through the outbox
-- (referral.withdrawn.v1), like a submission.
ALTER TABLE submission ADD COLUMN withdrawal_event_id text UNIQUE;
ALTER TABLE submission ADD COLUMN withdrawn_at timestamptz;
