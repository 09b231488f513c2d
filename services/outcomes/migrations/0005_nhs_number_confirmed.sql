-- A referral may arrive without an NHS number (referral.submitted.v1 made it optional):
-- nothing is written to the GP record until the person's team confirms it
-- (referral.identity_confirmed.v1), and when it did.
ALTER TABLE referral ADD COLUMN nhs_number_confirmed_at timestamptz;
