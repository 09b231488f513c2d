-- Every service's inbox (event ids it has handled) and transactional outbox.

CREATE TABLE inbox (
    source      text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
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
    published_at timestamptz,
    -- a row the broker refuses waits, backing off, without holding up the others
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);

-- The relay only ever reads unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
