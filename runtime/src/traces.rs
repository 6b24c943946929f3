//! Traces: OpenTelemetry spans exported over OTLP/HTTP when an endpoint is configured
//! (off otherwise), and the W3C trace context (`traceparent`, `tracestate`) read from
//! and written to the headers that carry it between processes.
//!
//! Spans are ordinary `tracing` spans of Hookline's crates (targets `hookline*`);
//! [`init`] installs the layer that turns them into OpenTelemetry spans next to the log
//! layer. Code that makes spans per request or per event asks [`enabled`] first, so
//! a process without an endpoint makes none. The spans that start a trace here record
//! its id as the field `trace_id` ([`record_trace_id`]), so JSON log lines written
//! inside them carry it (in `span` and `spans`) and logs and traces meet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use thiserror::Error;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TraceArgs;
use crate::telemetry::{self, LogFormat};
use hookline_core::record_headers;

/// The span field that holds the trace id, for log lines.
pub const TRACE_ID_FIELD: &str = "trace_id";

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether spans are exported: set once by [`init`].
static ENABLED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {source}")]
pub struct TracesError {
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The installed span pipeline; [`Traces::shutdown`] sends what is still queued.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

impl Traces {
    /// Exports the spans still queued and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The processor's shutdown blocks until its task on this runtime has exported.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "spans still queued at exit were not exported"),
            Err(err) => tracing::warn!(%err, "the span exporter's shutdown failed"),
        }
    }
}

/// Whether spans are exported in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Installs the global subscriber: log lines to stderr as `telemetry::init` writes them
/// and, when `args` names an endpoint, spans exported there. Call it inside the tokio
/// runtime (the exporter runs on it). `binary` is the service name unless
/// `OTEL_SERVICE_NAME` says otherwise.
pub fn init(format: LogFormat, args: &TraceArgs, binary: &str) -> Result<Traces, TracesError> {
    init_with_writer(format, args, binary, std::io::stderr)
}

/// [`init`] with log lines written to `writer`.
pub fn init_with_writer<W>(
    format: LogFormat,
    args: &TraceArgs,
    binary: &str,
    writer: W,
) -> Result<Traces, TracesError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = args
        .endpoint()
        .map(|endpoint| tracer_provider(endpoint, args, binary))
        .transpose()?;
    let span_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(binary.to_owned()))
            // Hookline's own spans and the events inside them; not those of libraries.
            .with_filter(filter_fn(|metadata| {
                metadata.target().starts_with("hookline")
                    && *metadata.level() <= tracing::Level::INFO
            }))
            .boxed()
    });
    let layers: Vec<_> = span_layer
        .into_iter()
        .chain([telemetry::log_layer(format, writer)])
        .collect();
    // A second init (tests) keeps the first subscriber; that is fine.
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    ENABLED.store(installed && provider.is_some(), Ordering::Relaxed);
    if let Some(endpoint) = args.endpoint() {
        tracing::info!(
            endpoint,
            ratio = args.trace_sample_ratio,
            "exporting spans over OTLP"
        );
    }
    Ok(Traces { provider })
}

fn tracer_provider(
    endpoint: &str,
    args: &TraceArgs,
    binary: &str,
) -> Result<SdkTracerProvider, TracesError> {
    let traces_url = format!("{endpoint}/v1/traces");
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|source| TracesError {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let service_name = args
        .service_name
        .clone()
        .unwrap_or_else(|| binary.to_owned());
    Ok(SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build(),
        )
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            args.trace_sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build())
}

/// `span` when spans are exported, else a disabled span that costs nothing.
pub fn span_if_enabled(make: impl FnOnce() -> Span) -> Span {
    if enabled() { make() } else { Span::none() }
}

/// The W3C trace context as carried in headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The remote span these headers name, if `traceparent` is valid.
    fn remote(&self) -> Option<opentelemetry::Context> {
        let context = TraceContextPropagator::new().extract(self);
        context.span().span_context().is_valid().then_some(context)
    }

    /// The remote span's context, for a link.
    pub fn span_context(&self) -> Option<SpanContext> {
        self.remote()
            .map(|context| context.span().span_context().clone())
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            record_headers::TRACEPARENT => self.traceparent.as_deref(),
            record_headers::TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![record_headers::TRACEPARENT, record_headers::TRACESTATE]
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            record_headers::TRACEPARENT => self.traceparent = Some(value),
            record_headers::TRACESTATE => self.tracestate = Some(value).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
}

/// Makes `span` continue the trace `headers` name (the sender's, or the handler's
/// across Kafka): its parent becomes that remote span. Absent or malformed headers
/// leave it the root of a new trace. Call it before the span is first entered.
pub fn continue_trace(span: &Span, headers: &TraceHeaders) {
    if let Some(remote) = headers.remote() {
        // Fails only without the span layer (traces off): nothing to continue then.
        let _ = span.set_parent(remote);
    }
}

/// Links `span` to the remote span `headers` name, if any (a batch to each of its
/// events' traces). Call it before the span is first entered.
pub fn link(span: &Span, headers: &TraceHeaders) {
    if let Some(context) = headers.span_context() {
        span.add_link(context);
    }
}

/// Records the trace id of `span` in its [`TRACE_ID_FIELD`] (declared
/// `trace_id = tracing::field::Empty`), for the log lines written inside it.
pub fn record_trace_id(span: &Span) {
    if span.is_disabled() {
        return;
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record(TRACE_ID_FIELD, tracing::field::display(trace_id));
}

/// The headers that carry `span`'s context to the next process, or `None` when
/// `span` is not exported.
pub fn headers_of(span: &Span) -> Option<TraceHeaders> {
    if span.is_disabled() {
        return None;
    }
    let mut headers = TraceHeaders::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers.traceparent.is_some().then_some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sender_headers() -> TraceHeaders {
        TraceHeaders {
            traceparent: Some(SENDER.into()),
            tracestate: Some("vendor=value".into()),
        }
    }

    #[test]
    fn a_continued_span_passes_the_senders_trace_and_state_on_under_its_own_id() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
            continue_trace(&span, &sender_headers());
            record_trace_id(&span);
            let passed_on = headers_of(&span).expect("an exported span has headers");
            let traceparent = passed_on.traceparent.as_deref().expect("a traceparent");
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{traceparent}"
            );
            assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
            assert!(traceparent.ends_with("-01"), "{traceparent}");
            assert_eq!(passed_on.tracestate.as_deref(), Some("vendor=value"));

            let fresh = tracing::info_span!("fresh");
            continue_trace(&fresh, &TraceHeaders::default());
            let fresh_parent = headers_of(&fresh).expect("headers").traceparent;
            assert!(
                !fresh_parent
                    .as_deref()
                    .is_some_and(|value| value.contains("4bf92f3577b34da6a3ce929d0e0e4736")),
                "a span without headers starts a trace of its own"
            );
        });
    }

    #[test]
    fn malformed_headers_name_no_remote_span_and_disabled_spans_have_no_headers() {
        let malformed = TraceHeaders {
            traceparent: Some("00-not-a-trace-01".into()),
            tracestate: None,
        };
        assert!(malformed.span_context().is_none());
        let context = sender_headers().span_context().expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_remote());
        assert_eq!(headers_of(&Span::none()), None);
    }
}
