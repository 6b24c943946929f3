//! The consumer's rows as the store's statements bind them: columns borrowed from a
//! batch's rows, without copying a value.

use hookline_store::dead_letters::DeadLetterColumns;
use hookline_store::events::EventColumns;

use crate::event::EventRow;
use crate::failure_routing::DeadLetterRow;

impl<'a> FromIterator<&'a EventRow> for EventColumns<'a> {
    fn from_iter<I: IntoIterator<Item = &'a EventRow>>(rows: I) -> Self {
        let rows = rows.into_iter();
        let mut columns = EventColumns::with_capacity(rows.size_hint().0);
        for row in rows {
            columns.webhook_id.push(&row.webhook_id);
            columns.message_id.push(&row.message_id);
            columns.event_id.push(row.event_id.as_deref());
            columns.event_type.push(row.event_type.as_deref());
            columns.source_timestamp.push(row.source_timestamp);
            columns.body.push(&row.body);
            columns.payload.push(row.payload.as_deref());
            columns.content_type.push(row.content_type.as_deref());
            columns.request_headers.push(row.request_headers.as_deref());
            columns.received_at.push(row.received_at);
            columns.attempts.push(row.attempts);
        }
        columns
    }
}

impl<'a> FromIterator<&'a DeadLetterRow> for DeadLetterColumns<'a> {
    fn from_iter<I: IntoIterator<Item = &'a DeadLetterRow>>(rows: I) -> Self {
        let mut columns = DeadLetterColumns::default();
        for row in rows {
            columns.webhook_id.push(&row.webhook_id);
            columns.message_id.push(&row.message_id);
            columns.reason.push(&row.reason);
            columns.attempts.push(row.attempts);
            columns.origin_topic.push(&row.origin.topic);
            columns.origin_partition.push(row.origin.partition);
            columns.origin_offset.push(row.origin.offset);
            columns.payload.push(&row.payload);
            columns.headers.push(&row.headers);
        }
        columns
    }
}
