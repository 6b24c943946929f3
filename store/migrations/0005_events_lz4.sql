-- An event row is a little over 2 kB with a 1 KiB body (the body as received and the
-- same JSON as jsonb), past PostgreSQL's TOAST threshold, so every insert compressed
-- it with pglz. lz4 compresses several times faster (and decompresses faster for the
-- console); rows stored before keep pglz and stay readable.
-- The parent's setting does not reach existing partitions: each is set too.
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN
        SELECT 'events'::regclass
        UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN body SET COMPRESSION lz4, '
                       'ALTER COLUMN payload SET COMPRESSION lz4, '
                       'ALTER COLUMN request_headers SET COMPRESSION lz4', target);
    END LOOP;
END
$$;
ALTER TABLE dead_letters ALTER COLUMN payload SET COMPRESSION lz4;
ALTER TABLE dead_letters ALTER COLUMN headers SET COMPRESSION lz4;

-- New partitions take the columns' compression from the parent.
CREATE OR REPLACE FUNCTION events_ensure_partition(day date) RETURNS boolean
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
        'CREATE TABLE IF NOT EXISTS %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        'INCLUDING COMPRESSION)',
        partition_name);
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, day, day + 1);
    RETURN true;
END
$$;

-- Only the owner (the consumer's role) makes partitions; the console's login may list them.
REVOKE EXECUTE ON FUNCTION events_ensure_partition(date) FROM PUBLIC;
