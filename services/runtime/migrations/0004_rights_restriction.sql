-- Referrals whose processing is restricted (UK GDPR Art. 18): their data is stored only;
-- the service sends nothing about them (no messages, no GP writebacks, no reports) until
-- the restriction is lifted (services/runtime/subject.py). Holds ids only.
CREATE TABLE subject_restriction (
    referral_id uuid PRIMARY KEY,
    request_id  uuid NOT NULL,
    since       timestamptz NOT NULL DEFAULT now()
);
