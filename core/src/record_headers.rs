//! Kafka header names carried with every event. Other crates name headers only through these.

pub const WEBHOOK_ID: &str = "hookline-webhook-id";
pub const MESSAGE_ID: &str = "hookline-message-id";
pub const RECEIVED_AT: &str = "hookline-received-at";
pub const SCHEME: &str = "hookline-scheme";
pub const CONTENT_TYPE: &str = "content-type";
/// The W3C trace context of the handler's produce span (or the sender's, passed on
/// when traces are off): the consumer's spans continue that trace.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The provider's event id, type and time (see `provider::identify`), when it says.
pub const EVENT_ID: &str = "hookline-event-id";
pub const EVENT_TYPE: &str = "hookline-event-type";
pub const OCCURRED_AT: &str = "hookline-occurred-at";
/// The request headers kept with the event (`provider::kept_headers`), as a JSON
/// object of lowercase name to value, so a stored event can be verified again.
pub const REQUEST_HEADERS: &str = "hookline-request-headers";
/// How many times processing was retried (the prototype's header name, kept).
pub const RETRY_COUNT: &str = "retry_count";
/// Earliest time (RFC 3339) a retry copy may be processed.
pub const NOT_BEFORE: &str = "hookline-not-before";
pub const ERROR: &str = "hookline-error";
pub const ORIGIN_TOPIC: &str = "hookline-origin-topic";
pub const ORIGIN_PARTITION: &str = "hookline-origin-partition";
pub const ORIGIN_OFFSET: &str = "hookline-origin-offset";
/// How many processing attempts a dead letter had (the first one plus its retries).
pub const ATTEMPTS: &str = "hookline-attempts";
