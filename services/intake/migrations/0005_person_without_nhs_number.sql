-- The NHS number became optional (referral.submitted.v1): a person referred without one
-- has a row of their own, never matched to anyone (NULLs never collide in the unique
-- index person_identity), until the team confirms who they are.
ALTER TABLE person ALTER COLUMN nhs_number DROP NOT NULL;
