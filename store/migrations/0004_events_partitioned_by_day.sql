-- Events partitioned by the UTC day they were received, so retention drops whole days
-- (a DROP of one partition, no row deletes, no vacuum debt) and the console's time
-- ranges read only the days they cover.
--
-- PostgreSQL puts the partition key in every unique index, so the key is the day
-- (received_day, the UTC date of received_at) and the primary key becomes
-- (webhook_id, message_id, received_day): a record read twice from Kafka, and a
-- sender's retry of a message received the same day, are refused by it at no extra
-- cost, in any session. A retry received on a later day is refused by the consumer's
-- insert, which looks for the key in the partitions of the days before, as far back as
-- its dedup window (store.rs); a Webhook's events share one Kafka partition and so
-- one writer at a time. Beyond that window (at most the retention) the message is
-- stored again, as a row of its own day.
--
-- Partitions are named events_pYYYYMMDD. The consumer creates them days ahead and
-- drops them after the retention (partitions.rs) with the functions below.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
DROP INDEX events_by_type_and_time;
DROP INDEX events_by_webhook_and_time;
DROP INDEX events_newest_first;
DROP INDEX events_by_event_id;
DROP INDEX events_by_stored_at;

CREATE TABLE events (
    webhook_id       text        NOT NULL,
    message_id       text        NOT NULL,
    event_id         text,
    event_type       text,
    source_timestamp timestamptz,
    payload          jsonb,
    received_at      timestamptz NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts         integer     NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    body             bytea       NOT NULL,
    content_type     text,
    request_headers  jsonb,
    received_day     date        NOT NULL,
    CHECK (received_day = (received_at AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (webhook_id, message_id, received_day)
) PARTITION BY RANGE (received_day);
CREATE INDEX events_by_type_and_time ON events (event_type, received_at);
CREATE INDEX events_by_webhook_and_time ON events (webhook_id, received_at, message_id);
CREATE INDEX events_newest_first ON events (received_at, webhook_id, message_id);
CREATE INDEX events_by_event_id ON events (event_id);
CREATE INDEX events_by_stored_at ON events (stored_at);

-- Creates the partition of one UTC day if it is missing; true when it created it.
-- The table is created on its own and then attached: ATTACH takes a lock that lets
-- inserts and queries go on, where CREATE TABLE ... PARTITION OF would queue every
-- insert behind the longest running query. Replicas serialize on an advisory lock.
CREATE FUNCTION events_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql
SET lock_timeout = '10s'
AS $$
DECLARE
    partition_name text := 'events_p' || to_char(day, 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hookline.events.partitions'));
    IF EXISTS (
        SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname = partition_name
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        partition_name);
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, day, day + 1);
    RETURN true;
END
$$;

-- The partitions, their day, and whether a detach was interrupted.
CREATE FUNCTION events_partitions()
RETURNS TABLE (partition_name text, day date, detach_pending boolean)
LANGUAGE sql STABLE
AS $$
    SELECT c.relname::text, to_date(substring(c.relname from 9), 'YYYYMMDD'), i.inhdetachpending
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
    ORDER BY 2
$$;

DO $$
DECLARE
    day date;
BEGIN
    FOR day IN
        SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM events_unpartitioned
        UNION SELECT (now() AT TIME ZONE 'UTC')::date
    LOOP
        PERFORM events_ensure_partition(day);
    END LOOP;
END
$$;
INSERT INTO events (webhook_id, message_id, event_id, event_type, source_timestamp, payload,
                    received_at, stored_at, attempts, body, content_type, request_headers,
                    received_day)
SELECT webhook_id, message_id, event_id, event_type, source_timestamp, payload,
       received_at, stored_at, attempts, body, content_type, request_headers,
       (received_at AT TIME ZONE 'UTC')::date
FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console') THEN
        GRANT SELECT ON events TO hookline_console;
    END IF;
END
$$;
