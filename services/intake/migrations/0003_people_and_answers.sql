-- People: every referral with the same NHS number is the same person, so that a person
-- already supported is not given a second place (triage decides, by person_id).
CREATE TABLE person (
    person_id  uuid PRIMARY KEY,
    nhs_number text NOT NULL UNIQUE
);
ALTER TABLE referral ADD COLUMN person_id uuid REFERENCES person (person_id);

-- The reasons a submission was refused with, to answer a resend the same way.
ALTER TABLE submission ADD COLUMN reasons jsonb NOT NULL DEFAULT '[]';
