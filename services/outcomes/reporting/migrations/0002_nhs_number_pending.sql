-- Referrals that came without an NHS number: awaiting_nhs_number while the team has not
-- confirmed it (their GP writebacks wait), nhs_number_confirmed_at once it has. Neither
-- holds the number itself.
ALTER TABLE referral_fact ADD COLUMN awaiting_nhs_number boolean NOT NULL DEFAULT false;
ALTER TABLE referral_fact ADD COLUMN nhs_number_confirmed_at timestamptz;
