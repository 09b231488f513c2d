-- Where each referral stands for its referrer (the last step told, its task status and
-- when it happened: an older event arriving late tells nobody anything), which submission
-- it answers, and whether the person may still be contacted.
ALTER TABLE referral ADD COLUMN submission_event_id text;
ALTER TABLE referral ADD COLUMN step text NOT NULL DEFAULT 'accepted';
ALTER TABLE referral ADD COLUMN task_status text NOT NULL DEFAULT 'received';
ALTER TABLE referral ADD COLUMN status_at timestamptz;
ALTER TABLE referral ADD COLUMN placed_at timestamptz;
ALTER TABLE referral ADD COLUMN contact_allowed boolean NOT NULL DEFAULT true;

-- A message to the person is cancelled, unsent, once the referral is withdrawn.
ALTER TABLE notification ADD COLUMN cancelled_at timestamptz;
DROP INDEX notification_pending;
CREATE INDEX notification_pending ON notification (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL;
