-- Every service's inbox (event ids it has handled) and transactional outbox.

CREATE TABLE inbox (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    event_type   text NOT NULL,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    correlation_id text,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay only ever reads unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
