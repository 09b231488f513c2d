-- Outbox rows may carry AMQP headers: a dead letter decided in a transaction (an early
-- event refused once its referral is known) is published like any event, with its reason.
ALTER TABLE outbox ADD COLUMN headers jsonb;
