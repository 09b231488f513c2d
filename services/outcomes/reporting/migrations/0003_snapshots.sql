-- Figures for commissioners, published per calendar month once it has ended: the table
-- as shown (small numbers and the cells that would give them away suppressed), frozen.
-- A snapshot is written once and never changed: UPDATE and DELETE are refused, and so is
-- TRUNCATE outside a synthetic model (which `linkwell synthetic` refills).
-- It holds counts as shown only: nothing about a person.
CREATE TABLE figures_snapshot (
    period       text PRIMARY KEY CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    period_start date NOT NULL,
    period_end   date NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL,   -- 'schedule', or the operator's login name
    rule         text NOT NULL,   -- the suppression rule applied, in words
    synthetic    boolean NOT NULL DEFAULT false,
    figures      jsonb NOT NULL   -- [{group, received, accepted, ...}], the total last
);

CREATE FUNCTION figures_snapshot_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND TG_TABLE_SCHEMA LIKE '%\_synthetic' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'a published snapshot is frozen: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER figures_snapshot_frozen BEFORE UPDATE OR DELETE ON figures_snapshot
    FOR EACH ROW EXECUTE FUNCTION figures_snapshot_frozen();
CREATE TRIGGER figures_snapshot_not_truncated BEFORE TRUNCATE ON figures_snapshot
    FOR EACH STATEMENT EXECUTE FUNCTION figures_snapshot_frozen();
