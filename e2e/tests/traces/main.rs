//! A trace across Kafka: the whole system as `make run` starts it, its handlers and
//! consumers exporting spans to an OTLP/HTTP receiver in this test. One signed event
//! sent with a W3C `traceparent` becomes one trace, the sender's, holding the handler's
//! request span, its Kafka produce and the consumer's storage of the event, each the
//! child of the one before (the consumer's through the record's traceparent header);
//! the consumer's batch span links to it.

use std::time::Duration;

use chrono::Utc;
use hookline_core::signature;
use hookline_e2e::system::{System, standard_signed_json_headers};
use hookline_testkit::eventually;
use hookline_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use serde_json::json;

const NAMESPACE: &str = "hookline-traces";
const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_with_a_traceparent_is_one_trace_from_request_to_stored_row() {
    let receiver = OtlpReceiver::start().await;
    let system = System::start_with_env(
        NAMESPACE,
        &[("HOOKLINE_OTLP_ENDPOINT", receiver.endpoint())],
    )
    .await;
    let secret = signature::generate_standard_secret();
    system.create_secret("traced-signing-input", &secret).await;
    let webhook_id = system
        .create_webhook(
            "traced",
            json!({
                "customerId": "acme",
                "scheme": "standard",
                "secretRef": {"name": "traced-signing-input", "key": "secret"},
                "emitter": {"enabled": false}
            }),
        )
        .await;

    let sender_trace = uuid::Uuid::new_v4().simple().to_string();
    let sender_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let body = json!({"type": "invoice.paid", "data": {"invoice": 1}}).to_string();
    let message_id = format!("msg_traced_{}", Utc::now().timestamp_millis());
    let mut headers = standard_signed_json_headers(&secret, &message_id, body.as_bytes());
    headers.push((
        "traceparent".into(),
        format!("00-{sender_trace}-{sender_span}-01"),
    ));
    system
        .post_until_accepted(&webhook_id, &headers, body.as_bytes())
        .await;
    eventually("the event stored", WAIT, || async {
        (system.stored(&webhook_id).await == 1).then_some(())
    })
    .await;

    // Spans are exported in batches (every 5 s by default): wait for the chain. A 5xx
    // answered before a handler was ready is a request span of this trace too, so the
    // request is the one answered 202.
    let (request, produce, store) = eventually("the trace's three spans", WAIT, || async {
        let trace = receiver.trace(&sender_trace);
        let request = find(&trace, "hookline-handler", "handler request", |span| {
            span.attributes
                .get("http.response.status_code")
                .map(String::as_str)
                == Some("202")
        })?;
        let produce = find(&trace, "hookline-handler", "kafka produce", |span| {
            span.parent_span_id == request.span_id
        })?;
        let store = find(&trace, "hookline-consumer", "store event", |span| {
            span.parent_span_id == produce.span_id
        })?;
        Some((request, produce, store))
    })
    .await;
    assert_eq!(request.parent_span_id, sender_span, "{request:?}");
    assert_eq!(request.kind, "SPAN_KIND_SERVER");
    assert_eq!(request.attributes["webhook_id"], webhook_id);
    assert_eq!(produce.kind, "SPAN_KIND_PRODUCER");
    assert_eq!(store.kind, "SPAN_KIND_CONSUMER");
    assert_eq!(store.attributes["webhook_id"], webhook_id);
    assert!(
        !store.attributes.contains_key("error.type"),
        "stored, not failed: {store:?}"
    );

    let batch = eventually("the batch span linked to the trace", WAIT, || async {
        receiver.spans().into_iter().find(|span| {
            span.name == "store batch"
                && span
                    .links
                    .contains(&(sender_trace.clone(), produce.span_id.clone()))
        })
    })
    .await;
    assert_eq!(batch.service, "hookline-consumer");
    assert_eq!(batch.parent_span_id, "", "a batch is a root of its own");

    system.stop();
}

fn find(
    trace: &[ReceivedSpan],
    service: &str,
    name: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
) -> Option<ReceivedSpan> {
    trace
        .iter()
        .find(|span| span.service == service && span.name == name && matches(span))
        .cloned()
}
