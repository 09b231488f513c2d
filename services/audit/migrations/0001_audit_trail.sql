-- The trail of disclosures: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)
-- and hash-chained (hash = sha256(prev_hash || canonical JSON), services/audit/domain.py).
-- Ids and codes only: no name, date of birth, NHS number or free text is ever stored.
CREATE TABLE audit_record (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    source text NOT NULL,
    action text NOT NULL,
    recipient_kind text NOT NULL,
    recipient_org text,
    referral_id uuid,
    person_id uuid,
    by_service text NOT NULL,
    by_kind text NOT NULL,
    by_whom text,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    prev_hash text NOT NULL,
    hash text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_record_referral ON audit_record (referral_id, at);
CREATE INDEX audit_record_person ON audit_record (person_id, at);
CREATE INDEX audit_record_org ON audit_record (recipient_org, at);
CREATE INDEX audit_record_at ON audit_record (at);

CREATE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_record_no_update BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION audit_record_append_only();
CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_append_only();
