-- Events from any provider, not only the prototype's invoices.
--
-- body is the request body exactly as received: what the sender signed, so a stored
-- event can be verified again with request_headers (the signature, id and timestamp
-- headers the handler kept). payload stays the body as jsonb for queries, now only
-- when the body is JSON (Slack's slash commands are form-encoded, some senders send
-- XML). event_id, event_type and source_timestamp are the provider's (Stripe's id and
-- type, GitHub's delivery and event, ...), read by the handler.
--
-- Rows stored before this migration get their jsonb text as body: the original bytes
-- were not kept, so those rows cannot be verified again.
ALTER TABLE events ADD COLUMN body bytea;
ALTER TABLE events ADD COLUMN content_type text;
ALTER TABLE events ADD COLUMN request_headers jsonb;
UPDATE events SET body = convert_to(payload::text, 'UTF8');
ALTER TABLE events ALTER COLUMN body SET NOT NULL;
ALTER TABLE events ALTER COLUMN payload DROP NOT NULL;

-- The prototype's invoice id was one field of one payload; it stays readable as
-- payload->'data'->>'invoice_id' for the rows that had it.
ALTER TABLE events DROP COLUMN invoice_id;

-- Finding an event by the provider's id (a Stripe evt_..., a GitHub delivery).
CREATE INDEX events_by_event_id ON events (webhook_id, event_id);
