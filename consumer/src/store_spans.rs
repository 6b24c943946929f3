//! The spans of a batch's storage, made only when spans are exported: one `store event`
//! per record, continuing the trace its headers carry (the handler's produce span), and
//! one `store batch`, a root of its own linked to each of those traces.

use hookline_core::record_headers;
use hookline_runtime::traces::{self, TraceHeaders};
use tracing::Span;

use crate::event::Consumed;
use crate::failure_routing::Failure;

/// Open while the batch is processed; the spans end when this is dropped.
pub struct StoreSpans<'a> {
    batch: Span,
    events: Vec<(&'a Consumed, Span)>,
}

impl<'a> StoreSpans<'a> {
    /// The spans of `batch` read by the `source` pipeline; none when traces are off.
    pub fn open(source: &'static str, batch: &'a [Consumed]) -> Self {
        if !traces::enabled() {
            return Self {
                batch: Span::none(),
                events: Vec::new(),
            };
        }
        let batch_span = tracing::info_span!(
            parent: None,
            "store batch",
            messaging.system = "kafka",
            messaging.batch.message_count = batch.len(),
            hookline.pipeline = source,
            trace_id = tracing::field::Empty,
        );
        let events = batch
            .iter()
            .map(|consumed| {
                let headers = trace_headers(consumed);
                let span = tracing::info_span!(
                    parent: None,
                    "store event",
                    otel.kind = "consumer",
                    otel.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    messaging.system = "kafka",
                    messaging.operation.type = "process",
                    messaging.destination.name = %consumed.topic,
                    messaging.destination.partition.id = consumed.partition,
                    messaging.kafka.offset = consumed.offset,
                    webhook_id = consumed.record.webhook_id(),
                );
                traces::continue_trace(&span, &headers);
                traces::link(&batch_span, &headers);
                (consumed, span)
            })
            .collect();
        traces::record_trace_id(&batch_span);
        Self {
            batch: batch_span,
            events,
        }
    }

    /// The batch's span, for the work done for all its events at once.
    pub fn batch(&self) -> &Span {
        &self.batch
    }

    /// Marks the spans of events that were not stored with why.
    pub fn record_failures(&self, failures: &[Failure<'_>]) {
        for failure in failures {
            let span = self
                .events
                .iter()
                .find(|(consumed, _)| std::ptr::eq(*consumed, failure.consumed));
            if let Some((_, span)) = span {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", failure.error.reason());
            }
        }
    }
}

fn trace_headers(consumed: &Consumed) -> TraceHeaders {
    TraceHeaders {
        traceparent: consumed
            .record
            .header(record_headers::TRACEPARENT)
            .map(str::to_owned),
        tracestate: consumed
            .record
            .header(record_headers::TRACESTATE)
            .map(str::to_owned),
    }
}
