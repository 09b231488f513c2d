-- A message that still cannot be delivered after LINKWELL_NOTIFY_MAX_ATTEMPTS is given
-- up: marked failed (and the team told, by notification.failed.v1), never retried again.
ALTER TABLE notification ADD COLUMN failed_at timestamptz;
DROP INDEX notification_pending;
CREATE INDEX notification_pending ON notification (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
