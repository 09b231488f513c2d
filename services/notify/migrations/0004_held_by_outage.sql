-- A message that met its channel's outage (the relay or spool could not be reached) is
-- held by it: tried again as soon as the channel is back, whatever its own backoff said.
ALTER TABLE notification ADD COLUMN held_by_outage boolean NOT NULL DEFAULT false;
CREATE INDEX notification_held ON notification (medium)
    WHERE held_by_outage AND sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL;
