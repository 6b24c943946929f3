//! Real providers' webhooks, signed by their official libraries (Standard Webhooks,
//! Svix, Stripe and Slack in Python; GitHub and Shopify in Node.js: see
//! `hookline_testkit::providers`), sent through the proxy of `make run` to three
//! handlers. For every provider: a good request is accepted; one changed byte and a
//! stale timestamp are refused; the provider's own retry (re-signed where the provider
//! re-signs) and repeats on every replica are acknowledged with the same message id;
//! and each event is one row carrying the provider's event id and type, its body byte
//! for byte, and headers that verify it again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use hookline_core::provider;
use hookline_core::signature::{self, Scheme};
use hookline_e2e::system::System;
use hookline_testkit::eventually;
use hookline_testkit::providers::{self, SignedHeaders};
use serde_json::{Value, json};

const NAMESPACE: &str = "hookline-providers";
const WAIT: Duration = Duration::from_secs(60);

/// One provider's Webhook and how it builds its requests.
struct Provider {
    /// The Webhook's name, and what `testkit/providers` calls the provider.
    name: &'static str,
    scheme: Scheme,
    secret: String,
    /// Whether the provider signs a timestamp (so a stale one is refused).
    timestamped: bool,
}

/// A stored row: event id, event type, body, payload, kept request headers.
type StoredEvent = (
    Option<String>,
    Option<String>,
    Vec<u8>,
    Option<Value>,
    Option<Value>,
);

/// One request to send: what the signer gets, and the body.
struct Request {
    signer: Value,
    body: String,
}

impl Provider {
    fn all() -> Vec<Provider> {
        let secret = signature::generate_standard_secret;
        vec![
            Provider {
                name: "standard",
                scheme: Scheme::Standard,
                secret: secret(),
                timestamped: true,
            },
            Provider {
                name: "svix",
                scheme: Scheme::Standard,
                secret: secret(),
                timestamped: true,
            },
            Provider {
                name: "stripe",
                scheme: Scheme::Stripe,
                secret: secret(),
                timestamped: true,
            },
            Provider {
                name: "slack",
                scheme: Scheme::Slack,
                secret: secret()[6..38].to_owned(),
                timestamped: true,
            },
            Provider {
                name: "github",
                scheme: Scheme::Github,
                secret: format!("It's a Secret to {}", secret()),
                timestamped: false,
            },
            Provider {
                name: "shopify",
                scheme: Scheme::Shopify,
                secret: secret()[6..].to_owned(),
                timestamped: false,
            },
        ]
    }

    /// The provider's id of event `n`, as the stored row must show it.
    fn event_id(&self, n: u32) -> String {
        match self.name {
            "standard" | "svix" => format!("msg_{}_{n}", self.name),
            "stripe" => format!("evt_1QeZ{n}"),
            "slack" => format!("Ev08MFMKH6{n}"),
            "github" => format!("72d3162e-cc78-11e3-81ab-4c9367dc095{n}"),
            _ => format!("98880550{n}"),
        }
    }

    /// The provider's type of its events, as the stored row must show it.
    fn event_type(&self) -> &'static str {
        match self.name {
            "standard" | "svix" | "stripe" => "invoice.paid",
            "slack" => "app_mention",
            "github" => "push",
            _ => "orders/create",
        }
    }

    /// Event `n` as the provider sends it at `timestamp`; `retry` is the provider's
    /// number for a retry (0 for the first delivery).
    fn request(&self, n: u32, timestamp: i64, retry: u32) -> Request {
        let id = self.event_id(n);
        let body = match self.name {
            "standard" | "svix" => json!({
                "type": "invoice.paid",
                "timestamp": "2026-11-30T10:00:00Z",
                "data": {"invoice": format!("in_{n}"), "amount": 1200 + n, "note": "café ✓"},
            }),
            "stripe" => json!({
                "id": id, "object": "event", "api_version": "2025-03-31.basil",
                "created": 1_764_496_800, "type": "invoice.paid", "livemode": false,
                "data": {"object": {"id": format!("in_{n}"), "object": "invoice", "type": "not this"}},
            }),
            "slack" => json!({
                "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": id, "event_time": 1_764_496_800,
                "event": {"type": "app_mention", "text": format!("<@U1> hello {n}"), "user": "U2"},
            }),
            "github" => json!({"ref": "refs/heads/main", "after": format!("{n:040}"), "repository": {"full_name": "o/r"}}),
            _ => json!({"id": 820_982_911_946_154_508_u64 + u64::from(n), "email": "jon@example.com", "total_price": "10.00"}),
        }
        .to_string();
        let signer = match self.name {
            "standard" | "svix" => {
                json!({"provider": self.name, "secret": self.secret, "id": id, "timestamp": timestamp, "body": body})
            }
            // While a secret is rolled Stripe signs with both; the Webhook knows the new one.
            "stripe" => {
                json!({"provider": "stripe", "secrets": [signature::generate_standard_secret(), self.secret], "timestamp": timestamp, "body": body})
            }
            "slack" => {
                json!({"provider": "slack", "secret": self.secret, "timestamp": timestamp, "body": body, "retry": retry})
            }
            // GitHub's redelivery and Shopify's retries resend the same request.
            "github" => {
                json!({"provider": "github", "secret": self.secret, "body": body, "delivery": id, "event": "push", "hookId": "4242"})
            }
            _ => json!({
                "provider": "shopify", "secret": self.secret, "body": body,
                "webhookId": format!("b54557e4-bdd9-4b37-8a5f-bf7d70bcd04{n}"), "eventId": id,
                "topic": "orders/create", "triggeredAt": "2026-11-30T10:00:00.000Z",
            }),
        };
        Request { signer, body }
    }
}

/// The handler's answer: status, `status` field (accepted, duplicate) or `error`, and
/// the message id when accepted.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    outcome: String,
    message_id: Option<String>,
}

fn send(port: u16, webhook_id: &str, headers: &SignedHeaders, body: &[u8]) -> Answer {
    let mut headers = headers.clone();
    headers.push(("Content-Type".into(), "application/json".into()));
    let (status, text) =
        hookline_testkit::http::post(port, &format!("/webhooks/{webhook_id}"), &headers, body)
            .unwrap_or_else(|| panic!("nothing answered on port {port}"));
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        outcome: answer["status"]
            .as_str()
            .or_else(|| answer["reason"].as_str())
            .or_else(|| answer["error"].as_str())
            .unwrap_or_default()
            .to_owned(),
        message_id: answer["messageId"].as_str().map(str::to_owned),
    }
}

/// Waits until every handler knows the Webhook: an unsigned request is refused for its
/// signature, no longer as an unknown id (entries reach the handlers a moment after
/// the operator publishes them).
async fn wait_known_everywhere(ports: &[u16], webhook_id: &str) {
    for port in ports {
        eventually("every handler knows the new Webhook", WAIT, || async {
            let answer = send(*port, webhook_id, &Vec::new(), b"{}");
            (answer.status == 401).then_some(())
        })
        .await;
    }
}

fn tampered(body: &str) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'x' { b'y' } else { b'x' };
    bytes
}

#[tokio::test]
async fn official_provider_libraries_are_accepted_and_each_event_is_one_row() {
    let system = System::start(NAMESPACE).await;
    let providers = Provider::all();
    let mut webhook_ids = BTreeMap::new();
    for provider in &providers {
        system
            .create_secret(&format!("{}-secret", provider.name), &provider.secret)
            .await;
        let spec = json!({
            "customerId": "providers",
            "scheme": provider.scheme,
            "secretRef": {"name": format!("{}-secret", provider.name), "key": "secret"},
            "emitter": {"enabled": false},
        });
        let id = system.create_webhook(provider.name, spec).await;
        webhook_ids.insert(provider.name, id);
    }
    let handlers = system.ports_of(|l| l["app.kubernetes.io/component"] == "handler", "8080");
    assert!(
        handlers.len() >= 2,
        "several handler replicas: {handlers:?}"
    );
    for id in webhook_ids.values() {
        wait_known_everywhere(&handlers, id).await;
    }

    // Every request of every provider, signed in two runs of the libraries.
    let now = Utc::now().timestamp();
    let mut requests = Vec::new();
    for provider in &providers {
        requests.push(provider.request(1, now, 0)); // first delivery
        requests.push(provider.request(1, now + 1, 1)); // the provider's retry
        requests.push(provider.request(1, now - 600, 0)); // stale
        requests.push(provider.request(2, now, 0)); // another event
    }
    let signed = providers::sign(
        &requests
            .iter()
            .map(|r| r.signer.clone())
            .collect::<Vec<_>>(),
    );

    let proxy = system.proxy_port;
    for (index, provider) in providers.iter().enumerate() {
        let id = &webhook_ids[provider.name];
        let at = |k: usize| (&requests[4 * index + k], &signed[4 * index + k]);
        let ((first, first_headers), (retry, retry_headers)) = (at(0), at(1));
        let ((stale, stale_headers), (second, second_headers)) = (at(2), at(3));
        let name = provider.name;

        let accepted = send(proxy, id, first_headers, first.body.as_bytes());
        assert_eq!(
            (accepted.status, accepted.outcome.as_str()),
            (202, "accepted"),
            "{name}"
        );
        let message_id = accepted.message_id.clone().expect("a message id");

        let forged = send(proxy, id, first_headers, &tampered(&first.body));
        assert_eq!(
            (forged.status, forged.outcome.as_str()),
            (401, "no_matching_signature"),
            "{name}"
        );
        if provider.timestamped {
            let late = send(proxy, id, stale_headers, stale.body.as_bytes());
            assert_eq!(
                (late.status, late.outcome.as_str()),
                (401, "timestamp_out_of_tolerance"),
                "{name}"
            );
        }

        // The provider's retry, through the proxy, then on every replica directly:
        // acknowledged with the same message id, whichever replica takes it.
        let again = send(proxy, id, retry_headers, retry.body.as_bytes());
        assert_eq!(again.status, 202, "{name} retry: {again:?}");
        assert_eq!(again.message_id.as_ref(), Some(&message_id), "{name} retry");
        for port in &handlers {
            let repeat = send(*port, id, retry_headers, retry.body.as_bytes());
            assert_eq!(repeat.status, 202, "{name} repeat on {port}: {repeat:?}");
            assert!(
                ["accepted", "duplicate"].contains(&repeat.outcome.as_str()),
                "{name}: {repeat:?}"
            );
            assert_eq!(
                repeat.message_id.as_ref(),
                Some(&message_id),
                "{name} repeat on {port}"
            );
            // A replica that acknowledged the message answers its repeats `duplicate`.
            let twice = send(*port, id, retry_headers, retry.body.as_bytes());
            assert_eq!(
                (twice.status, twice.outcome.as_str()),
                (202, "duplicate"),
                "{name} on {port}"
            );
        }

        let other = send(proxy, id, second_headers, second.body.as_bytes());
        assert_eq!(
            (other.status, other.outcome.as_str()),
            (202, "accepted"),
            "{name}"
        );
        assert_ne!(
            other.message_id.as_ref(),
            Some(&message_id),
            "{name}: two events, two ids"
        );
    }

    // Bodies that are not JSON, and Shopify's newer header names.
    let command = "token=x&team_id=T1&command=%2Fweather&text=94070&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let shopify = &providers[5];
    let extra = providers::sign(&[
        json!({"provider": "slack", "secret": providers[3].secret, "timestamp": now, "body": command}),
        json!({"provider": "shopify", "secret": shopify.secret, "body": "{\"topic\":\"Product\"}", "webhookId": "d-events-1", "topic": "Product", "triggeredAt": "2026-11-30T10:00:00Z", "events": true}),
    ]);
    let mut form_headers = extra[0].clone();
    form_headers.push((
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    let slash = send(
        proxy,
        &webhook_ids["slack"],
        &form_headers,
        command.as_bytes(),
    );
    assert_eq!(
        (slash.status, slash.outcome.as_str()),
        (202, "accepted"),
        "slash command"
    );
    let events_api = send(
        proxy,
        &webhook_ids["shopify"],
        &extra[1],
        b"{\"topic\":\"Product\"}",
    );
    assert_eq!(
        (events_api.status, events_api.outcome.as_str()),
        (202, "accepted"),
        "Shopify Events headers"
    );

    // One row per event, with the provider's id and type, the body as sent, and no
    // signature kept (with its body it would be a request that verifies again).
    for provider in &providers {
        let id = &webhook_ids[provider.name];
        let extra_rows = i64::from(matches!(provider.name, "slack" | "shopify"));
        let expected = 2 + extra_rows;
        eventually(
            &format!("{} events of {} stored", expected, provider.name),
            WAIT,
            || async { (system.stored(id).await >= expected).then_some(()) },
        )
        .await;
        let rows: Vec<StoredEvent> = sqlx::query_as(
            "select event_id, event_type, body, payload, request_headers \
                 from events where webhook_id = $1 order by event_id nulls last",
        )
        .bind(id)
        .fetch_all(&system.db)
        .await
        .expect("read the provider's events");
        assert_eq!(
            i64::try_from(rows.len()).expect("count"),
            expected,
            "{}: the retry and the repeats added no row",
            provider.name
        );
        for (n, row) in [1, 2].into_iter().zip(&rows) {
            let (event_id, event_type, body, payload, kept) = row;
            assert_eq!(
                event_id.as_deref(),
                Some(provider.event_id(n).as_str()),
                "{}",
                provider.name
            );
            assert_eq!(
                event_type.as_deref(),
                Some(provider.event_type()),
                "{}",
                provider.name
            );
            let sent = provider.request(n, now, 0).body;
            assert_eq!(
                body.as_slice(),
                sent.as_bytes(),
                "{}: the body as sent",
                provider.name
            );
            assert_eq!(
                payload.as_ref(),
                serde_json::from_str::<Value>(&sent).ok().as_ref()
            );
            let kept_names: Vec<&String> = kept
                .as_ref()
                .and_then(Value::as_object)
                .map(|kept| kept.keys().collect())
                .unwrap_or_default();
            assert!(
                !kept_names
                    .iter()
                    .any(|name| provider::is_signature_header(name)),
                "{}: a signature was stored with the event: {kept_names:?}",
                provider.name
            );
        }
    }
    let form: (Vec<u8>, Option<Value>) = sqlx::query_as(
        "select body, payload from events where webhook_id = $1 and event_id is null",
    )
    .bind(&webhook_ids["slack"])
    .fetch_one(&system.db)
    .await
    .expect("the slash command");
    assert_eq!((form.0.as_slice(), form.1), (command.as_bytes(), None));
    let product: Option<String> = sqlx::query_scalar(
        "select event_type from events where webhook_id = $1 and event_id = 'd-events-1'",
    )
    .bind(&webhook_ids["shopify"])
    .fetch_one(&system.db)
    .await
    .expect("the Shopify Events delivery");
    assert_eq!(product.as_deref(), Some("Product"));
    system.stop();
}
