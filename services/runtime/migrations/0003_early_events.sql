-- Events about a referral the service does not know yet, held with their sender until it
-- is known (services/runtime/early.py); then handled, or refused, and deleted.
CREATE TABLE early_event (
    source      text NOT NULL,
    event_id    text NOT NULL,
    referral_id uuid NOT NULL,
    event_type  text NOT NULL,
    sender      text,
    body        bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX early_event_by_referral ON early_event (referral_id);
