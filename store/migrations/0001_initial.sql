-- Hookline's storage. The consumer applies this at start (sqlx takes an advisory
-- lock, so several replicas may start at once).

-- A mirror of the registry without secrets: what the prototype's table answered.
CREATE TABLE webhooks (
    webhook_id   text        PRIMARY KEY,
    namespace    text        NOT NULL,
    name         text        NOT NULL,
    customer_id  text        NOT NULL,
    url          text        NOT NULL,
    scheme       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    delivery     jsonb       NOT NULL,
    generation   bigint      NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz
);

-- Every stored event, once: (webhook_id, message_id) is the idempotency key.
-- stored_at is the time of the insert itself (clock_timestamp, not the transaction's
-- start), so stored_at - received_at is the delay through Kafka and the consumer.
CREATE TABLE events (
    webhook_id       text        NOT NULL,
    message_id       text        NOT NULL,
    event_id         text,
    event_type       text,
    source_timestamp timestamptz,
    invoice_id       text,
    payload          jsonb       NOT NULL,
    received_at      timestamptz NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts         integer     NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    PRIMARY KEY (webhook_id, message_id)
);
CREATE INDEX events_by_webhook_and_time ON events (webhook_id, received_at);
CREATE INDEX events_by_type_and_time ON events (event_type, received_at);

-- What went to hookline.events.dlq. The origin is where the event first entered the
-- events topic (carried through every retry tier), so a dead letter written twice
-- (a crash between the write and the offset commit, or a retry copy sent twice) is
-- one row. A replayed event re-enters the events topic at a new offset: if it dies
-- again, that is a new row.
CREATE TABLE dead_letters (
    id               bigserial   PRIMARY KEY,
    webhook_id       text        NOT NULL,
    message_id       text        NOT NULL,
    reason           text        NOT NULL,
    attempts         integer     NOT NULL CHECK (attempts >= 1),
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    -- The event's body and its handler headers exactly as received, for replay.
    payload          bytea       NOT NULL,
    headers          jsonb       NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    UNIQUE (origin_topic, origin_partition, origin_offset)
);
CREATE INDEX dead_letters_by_webhook_and_time ON dead_letters (webhook_id, dead_at);
CREATE INDEX dead_letters_not_replayed ON dead_letters (dead_at) WHERE replayed_at IS NULL;
