-- BaRS servicerequest-response messages pushed to a sender's registered endpoint
-- (docs/architecture/fhir.md, "Pushing each step back"). An API client may register the
-- https address its system takes messages at; the request message's id is kept so each
-- response names it (MessageHeader.response.identifier).
ALTER TABLE api_client ADD COLUMN endpoint_url text;
ALTER TABLE submission ADD COLUMN request_message_id text;

-- One row per step per endpoint: queued in the transaction that records the step, sent
-- by the gateway's push dispatcher, retried with backoff, given up after a limit. Ids,
-- the Gravity status and its reason only; removed after LINKWELL_GATEWAY_RETAIN_PUSHES_DAYS.
CREATE TABLE fhir_delivery (
    id           bigserial PRIMARY KEY,
    reference    text NOT NULL REFERENCES submission (reference),
    client_id    uuid NOT NULL REFERENCES api_client (id),
    endpoint     text NOT NULL,
    status       text NOT NULL,
    reason       text,
    at           timestamptz NOT NULL,      -- when the step happened
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'given_up')),
    attempts     integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (reference, client_id, status, at)
);
CREATE INDEX fhir_delivery_due ON fhir_delivery (due_at) WHERE state = 'pending';
CREATE INDEX fhir_delivery_by_created ON fhir_delivery (created_at);
