-- The SNOMED CT codes written back to the GP record, as referral.status.v1 tells them on
-- the closure step (code and display only, no value or free text): the completed Task's
-- outputs. Empty for every other step.
ALTER TABLE fhir_step ADD COLUMN codes jsonb NOT NULL DEFAULT '[]';
