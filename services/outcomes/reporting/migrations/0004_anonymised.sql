-- A fact whose record of care has passed its retention limit is kept as an anonymous one:
-- a random id, no person or link worker (docs/retention.md). A rebuild keeps these.
ALTER TABLE referral_fact ADD COLUMN anonymised boolean NOT NULL DEFAULT false;
