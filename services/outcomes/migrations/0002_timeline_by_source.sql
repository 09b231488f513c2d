-- Event ids are unique per source (CloudEvents): two teams may both send an event "1".
ALTER TABLE timeline ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE timeline DROP CONSTRAINT timeline_event_id_key;
ALTER TABLE timeline ADD CONSTRAINT timeline_source_event_id_key UNIQUE (source, event_id);
ALTER TABLE timeline ALTER COLUMN source DROP DEFAULT;
