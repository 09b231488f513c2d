-- A person is an NHS number and a date of birth together: two referrals are the same
-- person only when both agree (one wrong digit in an NHS number must not merge two
-- people into one episode). People already known take the date of birth of their first
-- referral.
ALTER TABLE person ADD COLUMN date_of_birth date;
UPDATE person p SET date_of_birth = (
    SELECT (r.submission -> 'person' ->> 'date_of_birth')::date FROM referral r
    WHERE r.person_id = p.person_id ORDER BY r.accepted_at LIMIT 1
);
ALTER TABLE person DROP CONSTRAINT person_nhs_number_key;
CREATE UNIQUE INDEX person_identity ON person (nhs_number, date_of_birth);
