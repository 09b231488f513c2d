-- Referrals sent through the FHIR door (BaRS $process-message, Gravity POST /Task): the
-- receiver's id for its ServiceRequest and Task, the sender's reference, and, for a search
-- by NHS number, only a digest of the number with the sender's code (never the number).
ALTER TABLE submission ADD COLUMN fhir_id uuid UNIQUE;
ALTER TABLE submission ADD COLUMN sender_reference text;
ALTER TABLE submission ADD COLUMN patient_digest bytea;
CREATE INDEX submission_by_patient ON submission (organisation, patient_digest)
    WHERE patient_digest IS NOT NULL;

-- What the FHIR door has told its sender, step by step (the Task's history): each Gravity
-- task status a referral.status.v1 gave, once per step, in the order told.
CREATE TABLE fhir_step (
    seq        bigserial PRIMARY KEY,
    reference  text NOT NULL REFERENCES submission (reference),
    status     text NOT NULL,
    reason     text,
    message    text,
    at         timestamptz NOT NULL,      -- when the step happened
    told_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reference, status, at)
);
CREATE INDEX fhir_step_by_told ON fhir_step (told_at);
