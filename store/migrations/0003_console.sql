-- What the console reads and records.
--
-- Replays: every re-drive of dead letters, by the console or `hookline-consumer replay`,
-- is a row (who, when, what it selected, how many), and each dead letter it took
-- points at it.
CREATE TABLE replays (
    id           bigserial   PRIMARY KEY,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    selection    jsonb       NOT NULL,
    replayed     bigint      NOT NULL DEFAULT 0,
    finished_at  timestamptz
);
CREATE INDEX replays_newest_first ON replays (requested_at DESC, id DESC);
ALTER TABLE dead_letters ADD COLUMN replay_id bigint REFERENCES replays (id);

-- The console's event lists are newest first with keyset pagination on
-- (received_at, webhook_id, message_id): the key is in the index, so a page is an index
-- range whatever the table's size. The per-webhook index gains message_id for the same
-- reason, and the provider's event id is found without knowing the webhook.
DROP INDEX events_by_webhook_and_time;
CREATE INDEX events_by_webhook_and_time ON events (webhook_id, received_at, message_id);
CREATE INDEX events_newest_first ON events (received_at, webhook_id, message_id);
DROP INDEX events_by_event_id;
CREATE INDEX events_by_event_id ON events (event_id);
-- The live tail reads what was stored since its last look.
CREATE INDEX events_by_stored_at ON events (stored_at);
CREATE INDEX dead_letters_newest_first ON dead_letters (dead_at, id);
CREATE INDEX dead_letters_by_replay ON dead_letters (replay_id) WHERE replay_id IS NOT NULL;

-- The console's role: it reads the tables and records replays, nothing else. It is a
-- group role without login; a deployment grants it to the login the console uses
-- (the chart's built-in PostgreSQL and `make run` do). Creating it needs CREATEROLE:
-- where the migrating user lacks it, a database administrator creates the role and
-- these grants are applied by the next migration run that can see it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            BEGIN
                CREATE ROLE hookline_console NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database's migration created it at the same moment.
                NULL;
            END;
        ELSE
            RAISE NOTICE 'role hookline_console is missing and % cannot create it: '
                'the console cannot read this database until an administrator creates it '
                'and grants it USAGE on the schema and SELECT on the tables', current_user;
        END IF;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO hookline_console', current_schema());
        GRANT SELECT ON webhooks, events, dead_letters, replays TO hookline_console;
        GRANT INSERT, UPDATE (replayed, finished_at) ON replays TO hookline_console;
        GRANT USAGE ON SEQUENCE replays_id_seq TO hookline_console;
        GRANT UPDATE (replayed_at, replay_id) ON dead_letters TO hookline_console;
    END IF;
END
$$;
