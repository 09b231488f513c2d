-- Event ids are unique per source (CloudEvents): two senders may both send an event
-- "1", and each is its own submission.
ALTER TABLE submission ADD COLUMN source text;
UPDATE submission SET source = 'urn:linkwell:org:' || sender;
ALTER TABLE submission ALTER COLUMN source SET NOT NULL;
ALTER TABLE submission DROP CONSTRAINT submission_pkey;
ALTER TABLE submission ADD PRIMARY KEY (source, event_id);
