//! Spans exported over OTLP/HTTP to a real receiver continue the sender's trace, and
//! JSON log lines written inside them carry its trace id.

use hookline_runtime::config::TraceArgs;
use hookline_runtime::telemetry::LogFormat;
use hookline_runtime::traces::{self, TraceHeaders};
use hookline_testkit::log_capture::CapturedLog;
use hookline_testkit::otlp::OtlpReceiver;

const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_continues_the_incoming_traceparent_and_log_lines_carry_its_trace_id() {
    let receiver = OtlpReceiver::start().await;
    let log = CapturedLog::default();
    let args = TraceArgs {
        otlp_endpoint: receiver.endpoint(),
        trace_sample_ratio: 1.0,
        service_name: None,
    };
    let writer = log.clone();
    let pipeline = traces::init_with_writer(LogFormat::Json, &args, "traces-test", move || {
        writer.clone()
    })
    .expect("the exporter is set up");
    assert!(traces::enabled());

    let span = tracing::info_span!(
        target: "hookline_test",
        "handler request",
        trace_id = tracing::field::Empty
    );
    traces::continue_trace(
        &span,
        &TraceHeaders {
            traceparent: Some(format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01")),
            tracestate: None,
        },
    );
    traces::record_trace_id(&span);
    span.in_scope(|| tracing::info!(target: "hookline_test", "inside the request"));
    drop(span);
    // Shutting down exports what is queued: no waiting on the batch interval.
    pipeline.shutdown().await;

    let exported = receiver.trace(SENDER_TRACE);
    assert_eq!(
        exported.len(),
        1,
        "one span of the sender's trace: {exported:?}"
    );
    let request = &exported[0];
    assert_eq!(request.name, "handler request");
    assert_eq!(request.parent_span_id, SENDER_SPAN);
    assert_eq!(request.service, "traces-test");

    let line = log
        .lines()
        .into_iter()
        .find(|line| line.contains("inside the request"))
        .expect("the log line was written");
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(line["span"]["trace_id"], SENDER_TRACE, "{line}");
}
