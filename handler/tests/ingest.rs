//! The webhook endpoint against the real Kafka of the local stack: what it stores,
//! what it refuses, and that refusals store nothing.

mod support;

use hookline_runtime::kafka::KafkaConnection;

use std::time::Duration;

use chrono::Utc;
use hookline_core::record_headers;
use hookline_core::registry::{RateLimit, RegistrySecret};
use hookline_core::signature::{Scheme, generate_standard_secret};
use hookline_handler::metrics::{
    PRODUCE_LATENCY, REGISTRY_CATCH_UPS, REPEATED_MESSAGES, REQUESTS, REQUESTS_IN_FLIGHT,
    SEEN_BODIES_ENTRIES, VERIFICATION_FAILURES,
};
use hookline_testkit::fixtures;
use support::{Handler, entry, message_id, signed, signed_now};

fn bootstrap() -> KafkaConnection {
    support::stack_kafka()
}

/// Bytes a text-processing server would be tempted to normalise.
const AWKWARD_BODY: &[u8] =
    b"{\"event_id\": \"e1\",  \"data\":\t{\"note\": \"caf\xc3\xa9 \\u00e9\"}}\r\n \xff\x00";

#[tokio::test]
async fn a_valid_request_of_each_scheme_lands_with_its_exact_bytes_and_headers() {
    let webhooks: Vec<_> = Scheme::ALL.into_iter().map(entry).collect();
    let entries: Vec<_> = webhooks.iter().map(|(e, _)| e.clone()).collect();
    let handler = Handler::start(&bootstrap(), &entries, &[]).await;

    for (entry, secret) in &webhooks {
        let msg_id = message_id();
        let mut request = signed(entry.scheme, secret, &msg_id, Utc::now(), AWKWARD_BODY);
        request.push(("content-type", "application/json; charset=utf-8".into()));
        request.push((
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        ));
        let response = handler
            .post(&entry.webhook_id, &request, AWKWARD_BODY)
            .await;
        assert_eq!(
            response.status,
            202,
            "{}: {}",
            entry.scheme,
            response.text()
        );
        let answered_id = response.json()["messageId"].as_str().unwrap().to_owned();

        let events = handler.events(&entry.webhook_id).await;
        assert_eq!(events.len(), 1, "{}", entry.scheme);
        let event = &events[0];
        assert_eq!(event.key, entry.webhook_id.as_bytes());
        assert_eq!(
            event.payload, AWKWARD_BODY,
            "{}: body changed",
            entry.scheme
        );
        let h = &event.headers;
        assert_eq!(h[record_headers::WEBHOOK_ID], entry.webhook_id);
        assert_eq!(h[record_headers::SCHEME], entry.scheme.as_str());
        assert_eq!(
            h[record_headers::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        assert_eq!(
            h[record_headers::TRACEPARENT],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(h[record_headers::MESSAGE_ID], answered_id);
        match entry.scheme {
            // The schemes that carry a message id keep the sender's.
            Scheme::Standard | Scheme::Github | Scheme::Shopify => {
                assert_eq!(answered_id, msg_id, "{}", entry.scheme)
            }
            _ => assert_eq!(answered_id.len(), 32, "{}: derived id", entry.scheme),
        }
        let received_at = chrono::DateTime::parse_from_rfc3339(&h[record_headers::RECEIVED_AT])
            .expect("received-at is RFC 3339");
        assert!((Utc::now() - received_at.to_utc()).num_seconds().abs() < 60);
    }
    handler.stop().await;
}

/// (what is wrong, webhook id, headers, body, expected status, expected error code)
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, String)>,
    Vec<u8>,
    u16,
    &'a str,
);

#[tokio::test]
async fn each_bad_request_gets_its_status_and_stores_nothing() {
    let (unknown, _) = entry(Scheme::Standard);
    let (deleted, deleted_secret) = entry(Scheme::Standard);
    let (mut suspended, suspended_secret) = entry(Scheme::Standard);
    suspended.suspended = true;
    let (mut fenced, fenced_secret) = entry(Scheme::Standard);
    fenced.allowed_source_ranges = vec!["10.0.0.0/8".into()];
    let (open, open_secret) = entry(Scheme::Standard);
    let (legacy, legacy_secret) = entry(Scheme::LegacyHex);
    let handler = Handler::start_with_tombstones(
        &bootstrap(),
        &[
            deleted.clone(),
            suspended.clone(),
            fenced.clone(),
            open.clone(),
            legacy.clone(),
        ],
        &[&deleted.webhook_id],
        &["--max-body-bytes", "1024"],
    )
    .await;

    let body = br#"{"event_id":"e1"}"#;
    let sign = |secret: &str| signed_now(secret, body);
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown id",
            &unknown.webhook_id,
            sign(&open_secret),
            body.to_vec(),
            404,
            "unknown_webhook",
        ),
        (
            "deleted",
            &deleted.webhook_id,
            sign(&deleted_secret),
            body.to_vec(),
            410,
            "webhook_deleted",
        ),
        (
            "suspended",
            &suspended.webhook_id,
            sign(&suspended_secret),
            body.to_vec(),
            404,
            "webhook_suspended",
        ),
        (
            "source outside the ranges",
            &fenced.webhook_id,
            sign(&fenced_secret),
            body.to_vec(),
            403,
            "source_not_allowed",
        ),
        (
            "body over the limit",
            &open.webhook_id,
            signed_now(&open_secret, &[b'x'; 1025]),
            vec![b'x'; 1025],
            413,
            "body_too_large",
        ),
        (
            "wrong secret",
            &open.webhook_id,
            sign(&generate_standard_secret()),
            body.to_vec(),
            401,
            "invalid_signature",
        ),
        (
            "no signature",
            &open.webhook_id,
            Vec::new(),
            body.to_vec(),
            401,
            "invalid_signature",
        ),
        (
            "body changed after signing",
            &open.webhook_id,
            sign(&open_secret),
            br#"{"event_id":"e2"}"#.to_vec(),
            401,
            "invalid_signature",
        ),
        (
            "timestamp too old",
            &open.webhook_id,
            signed(
                Scheme::Standard,
                &open_secret,
                &message_id(),
                Utc::now() - chrono::Duration::seconds(360),
                body,
            ),
            body.to_vec(),
            401,
            "timestamp_out_of_tolerance",
        ),
        (
            "timestamp in the future",
            &open.webhook_id,
            signed(
                Scheme::Standard,
                &open_secret,
                &message_id(),
                // The cases are signed before any is sent: a minute's margin, so that a slow
                // run's later send is still past the 300 s tolerance (301 s once was not).
                Utc::now() + chrono::Duration::seconds(360),
                body,
            ),
            body.to_vec(),
            401,
            "timestamp_out_of_tolerance",
        ),
        (
            "legacy-hex, wrong secret",
            &legacy.webhook_id,
            signed(Scheme::LegacyHex, "not-the-secret", "m", Utc::now(), body),
            body.to_vec(),
            401,
            "invalid_signature",
        ),
    ];
    for (case, id, headers, body, status, error) in &cases {
        let response = handler.post(id, headers, body).await;
        assert_eq!(response.status, *status, "{case}: {}", response.text());
        assert_eq!(response.error(), *error, "{case}");
        let text = response.text();
        for secret in [&open_secret, &legacy_secret, &fenced_secret] {
            assert!(
                !text.contains(secret.as_str()),
                "{case}: a secret is echoed"
            );
        }
    }

    // A body over the limit without Content-Length is cut off while being read.
    let chunked = chunked_request(&open.webhook_id, &sign(&open_secret), 4 * 1024);
    let response = raw_exchange(&handler, &chunked).await;
    assert_eq!(response.status, 413, "{}", response.text());

    for webhook in [&unknown, &deleted, &suspended, &fenced, &open, &legacy] {
        assert!(
            handler.events(&webhook.webhook_id).await.is_empty(),
            "a refused request of {} was stored",
            webhook.name
        );
    }
    // The same handler still stores good requests, so "nothing stored" above means refused.
    assert_eq!(
        handler
            .post(&open.webhook_id, &sign(&open_secret), body)
            .await
            .status,
        202
    );
    let legacy_ok = signed(Scheme::LegacyHex, &legacy_secret, "m", Utc::now(), body);
    assert_eq!(
        handler
            .post(&legacy.webhook_id, &legacy_ok, body)
            .await
            .status,
        202
    );
    assert_eq!(handler.events(&open.webhook_id).await.len(), 1);

    let metrics = handler.metrics().await;
    let (open_id, legacy_id) = (&open.webhook_id, &legacy.webhook_id);
    let (requests, failures) = (REQUESTS.exported(), VERIFICATION_FAILURES.exported());
    for line in [
        // Ids the registry does not list as live (unknown, deleted) share one series.
        format!(r#"{requests}{{webhook="unknown",status="404"}} 1"#),
        format!(r#"{requests}{{webhook="unknown",status="410"}} 1"#),
        format!(r#"{requests}{{webhook="{open_id}",status="401"}} 5"#),
        format!(r#"{requests}{{webhook="{legacy_id}",status="401"}} 1"#),
        format!(r#"{requests}{{webhook="{open_id}",status="413"}} 2"#),
        format!(r#"{failures}{{webhook="{open_id}",reason="no_matching_signature"}} 2"#),
        format!(r#"{failures}{{webhook="{legacy_id}",reason="no_matching_signature"}} 1"#),
        format!(r#"{failures}{{webhook="{open_id}",reason="missing_header"}} 1"#),
        format!(r#"{failures}{{webhook="{open_id}",reason="timestamp_out_of_tolerance"}} 2"#),
        format!("{}_count 2", PRODUCE_LATENCY.exported()),
        format!("{} 0", REQUESTS_IN_FLIGHT.exported()),
    ] {
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
    handler.stop().await;
}

#[tokio::test]
async fn a_repeated_message_is_acknowledged_but_stored_once() {
    let (standard, standard_secret) = entry(Scheme::Standard);
    let (legacy, legacy_secret) = entry(Scheme::LegacyHex);
    let handler = Handler::start(&bootstrap(), &[standard.clone(), legacy.clone()], &[]).await;
    let body = br#"{"event_id":"e1"}"#;
    let request = signed_now(&standard_secret, body);
    let first = handler.post(&standard.webhook_id, &request, body).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let repeat = handler.post(&standard.webhook_id, &request, body).await;
    assert_eq!(repeat.status, 202, "{}", repeat.text());
    assert_eq!(repeat.json()["status"], "duplicate");
    assert_eq!(repeat.json()["messageId"], first.json()["messageId"]);
    assert_eq!(handler.events(&standard.webhook_id).await.len(), 1);

    // legacy-hex has no message id: the signature and body identify the message.
    let legacy_request = signed(Scheme::LegacyHex, &legacy_secret, "m", Utc::now(), body);
    for _ in 0..2 {
        assert_eq!(
            handler
                .post(&legacy.webhook_id, &legacy_request, body)
                .await
                .status,
            202
        );
    }
    let other = br#"{"event_id":"e2"}"#;
    let other_request = signed(Scheme::LegacyHex, &legacy_secret, "m", Utc::now(), other);
    assert_eq!(
        handler
            .post(&legacy.webhook_id, &other_request, other)
            .await
            .status,
        202
    );
    let stored: Vec<_> = handler
        .events(&legacy.webhook_id)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(stored, [body.to_vec(), other.to_vec()]);
    let metrics = handler.metrics().await;
    assert!(
        metrics.contains(&format!("{} 2", REPEATED_MESSAGES.exported())),
        "{metrics}"
    );
    handler.stop().await;
}

#[tokio::test]
async fn rotation_accepts_the_old_secret_until_it_expires_then_only_the_new() {
    let (mut rotating, _) = entry(Scheme::Standard);
    let (old, new) = (generate_standard_secret(), generate_standard_secret());
    let expires_at = Utc::now() + chrono::Duration::seconds(4);
    rotating.secrets = vec![
        fixtures::secret(&new),
        RegistrySecret {
            expires_at: Some(expires_at),
            ..fixtures::secret(&old)
        },
    ];
    let handler = Handler::start(&bootstrap(), &[rotating.clone()], &[]).await;
    let body = b"{}";
    let post = |secret: String| {
        let handler = &handler;
        let id = rotating.webhook_id.clone();
        async move {
            let request = signed_now(&secret, body);
            handler.post(&id, &request, body).await
        }
    };
    assert!(
        Utc::now() < expires_at,
        "the grace period ended before the test began"
    );
    assert_eq!(
        post(old.clone()).await.status,
        202,
        "old secret during the grace period"
    );
    assert_eq!(
        post(new.clone()).await.status,
        202,
        "new secret during the grace period"
    );
    let wait = (expires_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let refused = post(old.clone()).await;
    assert_eq!(
        refused.status,
        401,
        "old secret after expiry: {}",
        refused.text()
    );
    assert_eq!(
        post(new.clone()).await.status,
        202,
        "new secret after expiry"
    );
    assert_eq!(handler.events(&rotating.webhook_id).await.len(), 3);
    handler.stop().await;
}

#[tokio::test]
async fn the_rate_limit_holds_per_webhook_and_a_forged_flood_does_not_starve_the_sender() {
    let limit = RateLimit {
        requests_per_second: 1,
        burst: 5,
    };
    let (mut target, target_secret) = entry(Scheme::Standard);
    target.rate_limit = limit;
    let (mut neighbour, neighbour_secret) = entry(Scheme::Standard);
    neighbour.rate_limit = limit;
    let handler = Handler::start(&bootstrap(), &[target.clone(), neighbour.clone()], &[]).await;
    let body = br#"{"event_id":"e1"}"#;

    // 200 forged requests from the same source, 20 at a time.
    let forged = signed_now(&generate_standard_secret(), body);
    for _ in 0..10 {
        let responses = futures::future::join_all(
            (0..20).map(|_| handler.post(&target.webhook_id, &forged, body)),
        )
        .await;
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    }
    // The real sender still has its whole burst, then is limited with Retry-After.
    for n in 0..5 {
        let request = signed_now(&target_secret, body);
        let response = handler.post(&target.webhook_id, &request, body).await;
        assert_eq!(
            response.status,
            202,
            "valid request {n}: {}",
            response.text()
        );
    }
    let request = signed_now(&target_secret, body);
    let limited = handler.post(&target.webhook_id, &request, body).await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert_eq!(limited.error(), "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"].parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    // Another webhook's budget is its own.
    let request = signed_now(&neighbour_secret, body);
    assert_eq!(
        handler
            .post(&neighbour.webhook_id, &request, body)
            .await
            .status,
        202
    );
    // The limited message was not stored, so its retry after the wait is.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let retried = signed_now(&target_secret, body);
    assert_eq!(
        handler
            .post(&target.webhook_id, &retried, body)
            .await
            .status,
        202
    );
    assert_eq!(handler.events(&target.webhook_id).await.len(), 6);
    handler.stop().await;
}

#[tokio::test]
async fn slow_senders_are_cut_off_and_excess_requests_are_shed() {
    let (handler, open, secret) = Handler::start_one(
        &bootstrap(),
        Scheme::Standard,
        &[
            "--header-read-timeout",
            "1s",
            "--body-read-timeout",
            "1s",
            "--max-concurrent-requests",
            "1",
        ],
    )
    .await;

    // Headers that never end: the connection is closed.
    let mut stalled = tokio::net::TcpStream::connect(handler.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"POST /webhooks/x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest),
    )
    .await
    .expect("connection closed by the server")
    .ok();
    assert!(started.elapsed() < Duration::from_secs(5));

    // A body that never completes holds the only permit, so a second request is shed;
    // then it times out with 408.
    let body = br#"{"event_id":"e1"}"#;
    let request = signed_now(&secret, body);
    let mut slow = tokio::net::TcpStream::connect(handler.addr).await.unwrap();
    let request = [request, vec![("connection", "close".to_owned())]].concat();
    let head = support::post_head(&open.webhook_id, 100, &request) + "{\"ev";
    tokio::io::AsyncWriteExt::write_all(&mut slow, head.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every cap is 1 here; the per-source one (the same loopback) is met first.
    let shed = handler.post(&open.webhook_id, &request, body).await;
    assert_eq!(shed.status, 429, "{}", shed.text());
    assert_eq!(shed.error(), "source_overloaded");
    assert!(shed.headers.contains_key("retry-after"));
    let timed_out = support::read_response(&mut slow).await.unwrap();
    assert_eq!(timed_out.status, 408, "{}", timed_out.text());
    assert_eq!(timed_out.error(), "body_timeout");

    // With the permit back, the same request is stored.
    assert_eq!(
        handler.post(&open.webhook_id, &request, body).await.status,
        202
    );
    assert_eq!(handler.events(&open.webhook_id).await.len(), 1);
    handler.stop().await;
}

fn chunked_request(webhook_id: &str, headers: &[(&str, String)], size: usize) -> Vec<u8> {
    let mut raw = format!(
        "POST /webhooks/{webhook_id} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    for _ in 0..size / 512 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

async fn raw_exchange(handler: &Handler, raw: &[u8]) -> support::Response {
    let mut stream = tokio::net::TcpStream::connect(handler.addr).await.unwrap();
    // The server may answer and close before it read everything; that is the point.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, raw).await;
    support::read_response(&mut stream).await.unwrap()
}

#[tokio::test]
async fn shutdown_stops_accepting_but_finishes_the_request_in_flight() {
    let (handler, open, secret) = Handler::start_one(&bootstrap(), Scheme::Standard, &[]).await;
    let body = br#"{"event_id":"in-flight"}"#;
    let request = signed_now(&secret, body);
    let mut in_flight = tokio::net::TcpStream::connect(handler.addr).await.unwrap();
    let head = support::post_head(&open.webhook_id, body.len(), &request);
    tokio::io::AsyncWriteExt::write_all(&mut in_flight, head.as_bytes())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut in_flight, &body[..5])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    handler.shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(handler.addr).await.is_err(),
        "still accepting after shutdown"
    );
    tokio::io::AsyncWriteExt::write_all(&mut in_flight, &body[5..])
        .await
        .unwrap();
    let response = support::read_response(&mut in_flight).await.unwrap();
    assert_eq!(response.status, 202, "{}", response.text());
    let events = support::read_events(&bootstrap(), &handler.events_topic, &open.webhook_id).await;
    assert_eq!(events.len(), 1);
    tokio::time::timeout(support::TIMEOUT, handler.task)
        .await
        .expect("stops once the request is answered")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_checked() {
    let (mut fenced, secret) = entry(Scheme::Standard);
    fenced.allowed_source_ranges = vec!["10.0.0.0/8".into()];
    let handler = Handler::start(
        &bootstrap(),
        std::slice::from_ref(&fenced),
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--body-read-timeout",
            "10s",
        ],
    )
    .await;
    let body = br#"{"event_id":"e1"}"#;
    let send = |forwarded: Vec<(&'static str, &'static str)>| {
        let mut request = signed_now(&secret, body);
        request.extend(
            forwarded
                .into_iter()
                .map(|(name, value)| (name, value.to_owned())),
        );
        let handler = &handler;
        let id = fenced.webhook_id.clone();
        async move { handler.post(&id, &request, body).await.status }
    };
    let xff = "x-forwarded-for";
    assert_eq!(
        send(vec![(xff, "10.1.2.3")]).await,
        202,
        "client inside the range"
    );
    assert_eq!(
        send(vec![(xff, "198.51.100.7")]).await,
        403,
        "client outside the range"
    );
    // A client cannot smuggle an allowed address in front of its own.
    assert_eq!(send(vec![(xff, "10.1.2.3, 198.51.100.7")]).await, 403);
    // Nor in a line of its own, before the line its proxy appended.
    assert_eq!(
        send(vec![(xff, "10.1.2.3"), (xff, "198.51.100.7")]).await,
        403
    );
    // A hop naming nobody makes the client unknown, which no range admits.
    assert_eq!(send(vec![(xff, "10.1.2.3, unknown")]).await, 403);
    // Forwarded is not read unless configured: a client could send it past the proxy.
    assert_eq!(
        send(vec![("forwarded", "for=10.1.2.3"), (xff, "198.51.100.7")]).await,
        403
    );

    // The source is refused from the headers: a body that never comes is not waited for.
    let mut request = signed_now(&secret, body);
    request.push(("connection", "close".into()));
    request.push(("x-forwarded-for", "198.51.100.7".into()));
    let raw = support::post_head(&fenced.webhook_id, 100, &request);
    let started = std::time::Instant::now();
    let refused = raw_exchange(&handler, raw.as_bytes()).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}: the body read timeout is 10 s",
        started.elapsed()
    );
    assert_eq!(handler.events(&fenced.webhook_id).await.len(), 1);
    handler.stop().await;
}

#[tokio::test]
async fn with_forwarded_configured_its_for_chain_names_the_client() {
    let (mut fenced, secret) = entry(Scheme::Standard);
    fenced.allowed_source_ranges = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
    let handler = Handler::start(
        &bootstrap(),
        std::slice::from_ref(&fenced),
        &[
            "--trusted-proxy-hops",
            "1",
            "--forwarding-header",
            "forwarded",
        ],
    )
    .await;
    let body = br#"{"event_id":"e1"}"#;
    let send = |forwarded: Vec<&'static str>| {
        let mut request = signed_now(&secret, body);
        request.extend(
            forwarded
                .into_iter()
                .map(|value| ("forwarded", value.to_owned())),
        );
        let handler = &handler;
        let id = fenced.webhook_id.clone();
        async move { handler.post(&id, &request, body).await.status }
    };
    assert_eq!(send(vec!["for=10.1.2.3;proto=https"]).await, 202);
    assert_eq!(send(vec![r#"for="[2001:db8::7]:4711""#]).await, 202);
    assert_eq!(send(vec!["for=198.51.100.7"]).await, 403);
    // The proxy (one hop) appended its element after the client's forged one.
    assert_eq!(send(vec!["for=10.1.2.3", "for=198.51.100.7"]).await, 403);
    assert_eq!(send(vec!["for=10.1.2.3, for=198.51.100.7"]).await, 403);
    assert_eq!(send(vec!["for=_hidden"]).await, 403);
    assert_eq!(send(vec!["for=unknown"]).await, 403);
    assert_eq!(handler.events(&fenced.webhook_id).await.len(), 2);
    handler.stop().await;
}

#[tokio::test]
async fn a_captured_body_under_a_new_delivery_id_is_a_repeat() {
    let (github, github_secret) = entry(Scheme::Github);
    let (shopify, shopify_secret) = entry(Scheme::Shopify);
    let handler = Handler::start(&bootstrap(), &[github.clone(), shopify.clone()], &[]).await;
    let body = br#"{"action":"opened","number":7}"#;
    for (webhook, secret, delivery_header) in [
        (&github, &github_secret, "x-github-delivery"),
        (&shopify, &shopify_secret, "x-shopify-webhook-id"),
    ] {
        let captured = signed(webhook.scheme, secret, &message_id(), Utc::now(), body);
        let first = handler.post(&webhook.webhook_id, &captured, body).await;
        assert_eq!(first.status, 202, "{}", first.text());
        assert_eq!(first.json()["status"], "accepted");
        // The attacker's copy: same body and signature, a delivery id of its own.
        let replayed: Vec<(&str, String)> = captured
            .iter()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case(delivery_header) {
                    message_id()
                } else {
                    value.clone()
                };
                (*name, value)
            })
            .collect();
        assert_ne!(replayed, captured, "{delivery_header} was replaced");
        let again = handler.post(&webhook.webhook_id, &replayed, body).await;
        assert_eq!(again.status, 202, "{}", again.text());
        assert_eq!(again.json()["status"], "duplicate", "{}", webhook.scheme);
        assert_eq!(handler.events(&webhook.webhook_id).await.len(), 1);
    }
    let metrics = handler.metrics().await;
    assert!(
        metrics.contains(&format!("{} 2", SEEN_BODIES_ENTRIES.exported())),
        "{metrics}"
    );
    handler.stop().await;
}

#[tokio::test]
async fn the_ops_endpoints_are_on_the_ops_port_only() {
    let (handler, open, secret) = Handler::start_one(&bootstrap(), Scheme::Standard, &[]).await;
    for path in ["/metrics", "/readyz", "/healthz"] {
        let public = handler.request("GET", path, &[], b"").await.unwrap();
        assert_eq!(public.status, 404, "{path} on the webhook port");
        let ops = handler.ops_get(path).await.unwrap();
        assert_eq!(ops.status, 200, "{path} on the ops port");
    }
    assert!(handler.metrics().await.contains("hookline_ready 1"));
    // The webhook port serves webhooks, and the ops port does not.
    assert_eq!(
        handler
            .post_signed(&open.webhook_id, &secret)
            .await
            .0
            .status,
        202
    );
    let path = format!("/webhooks/{}", open.webhook_id);
    let on_ops = support::exchange(handler.ops_addr, "POST", &path, &[], b"")
        .await
        .unwrap();
    assert_eq!(on_ops.status, 404);
    handler.stop().await;
}

#[tokio::test]
async fn a_webhook_registered_a_moment_ago_is_accepted_at_once() {
    let handler = Handler::start(&bootstrap(), &[], &[]).await;
    let body = br#"{"type":"invoice.paid"}"#;
    for _ in 0..10 {
        let (fresh, secret) = entry(Scheme::Standard);
        support::publish(&bootstrap(), &handler.registry_topic, &fresh).await;
        // No waiting: the broker acknowledged the entry, so it is not unknown.
        let request = signed_now(&secret, body);
        let answer = handler.post(&fresh.webhook_id, &request, body).await;
        assert_eq!(answer.status, 202, "{}", answer.text());
    }
    let (never, secret) = entry(Scheme::Standard);
    let request = signed_now(&secret, body);
    let answer = handler.post(&never.webhook_id, &request, body).await;
    assert_eq!(
        (answer.status, answer.error()),
        (404, "unknown_webhook".into())
    );
    handler.stop().await;
}

#[tokio::test]
async fn unknown_ids_hold_no_slot_and_read_the_registry_end_once_per_interval() {
    let (handler, open, secret) = Handler::start_one(
        &bootstrap(),
        Scheme::Standard,
        &[
            "--max-concurrent-requests",
            "1",
            "--body-read-timeout",
            "10s",
            "--unknown-webhook-recheck-interval",
            "1m",
        ],
    )
    .await;
    // A body that never completes holds the replica's only slot.
    let request = signed_now(&secret, b"{}");
    let head = support::post_head(&open.webhook_id, 100, &request) + "{";
    let mut slow = tokio::net::TcpStream::connect(handler.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut slow, head.as_bytes())
        .await
        .unwrap();
    hookline_testkit::eventually(
        "the slow request holds the slot",
        support::TIMEOUT,
        || async {
            let metrics = handler.metrics().await;
            metrics
                .contains(&format!("{} 1", REQUESTS_IN_FLIGHT.exported()))
                .then_some(())
        },
    )
    .await;

    // Requests for an id nobody registered: 404 at once, slot or no slot, and one read
    // of the registry's end for all of them.
    let (never, never_secret) = entry(Scheme::Standard);
    let requests = (0..50).map(|_| {
        let request = signed_now(&never_secret, b"{}");
        let (handler, id) = (&handler, never.webhook_id.clone());
        async move { handler.post(&id, &request, b"{}").await }
    });
    for answer in futures::future::join_all(requests).await {
        assert_eq!(
            (answer.status, answer.error()),
            (404, "unknown_webhook".into()),
            "{}",
            answer.text()
        );
    }
    let catch_ups = handler.metric(&REGISTRY_CATCH_UPS.exported()).await;
    // Concurrent first requests may each read it before the first one is remembered.
    assert!(
        catch_ups.is_some_and(|n| (1.0..=16.0).contains(&n)),
        "reads of the registry's end: {catch_ups:?}"
    );
    let again = handler.post(&never.webhook_id, &[], b"{}").await;
    assert_eq!(again.status, 404);
    assert_eq!(
        handler.metric(&REGISTRY_CATCH_UPS.exported()).await,
        catch_ups,
        "a remembered unknown id is not looked up again"
    );
    drop(slow);
    handler.stop().await;
}

#[tokio::test]
async fn a_webhook_without_a_usable_secret_is_answered_503_to_be_retried() {
    let (mut unusable, _) = entry(Scheme::Standard);
    unusable.secrets[0].value = "C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into();
    let handler = Handler::start(&bootstrap(), std::slice::from_ref(&unusable), &[]).await;
    let body = br#"{"type":"invoice.paid"}"#;
    let request = signed_now("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", body);
    let answer = handler.post(&unusable.webhook_id, &request, body).await;
    assert_eq!(
        (answer.status, answer.error()),
        (503, "secret_unusable".into())
    );
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
    assert!(!answer.text().contains("C2FVsBQIhrsc"), "{}", answer.text());
    let metrics = handler.metrics().await;
    assert!(
        metrics.contains(&format!(
            r#"{}{{webhook="{}",reason="secret_unusable"}} 1"#,
            VERIFICATION_FAILURES.exported(),
            unusable.webhook_id
        )),
        "{metrics}"
    );
    assert!(handler.events(&unusable.webhook_id).await.is_empty());
    handler.stop().await;
}

#[tokio::test]
async fn a_stripe_retry_is_a_repeat_of_its_event_and_kafka_carries_the_provider_identity() {
    let (handler, stripe, secret) = Handler::start_one(&bootstrap(), Scheme::Stripe, &[]).await;
    let body = br#"{"id":"evt_1QeZ","object":"event","type":"invoice.paid","created":1764496800}"#;
    let now = Utc::now();
    let first = signed(Scheme::Stripe, &secret, "unused", now, body);
    let retry = signed(
        Scheme::Stripe,
        &secret,
        "unused",
        now + chrono::Duration::seconds(30),
        body,
    );
    assert_ne!(first, retry, "Stripe re-signs its retries");
    let accepted = handler.post(&stripe.webhook_id, &first, body).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    assert_eq!(accepted.json()["messageId"], "evt_1QeZ");
    let repeat = handler.post(&stripe.webhook_id, &retry, body).await;
    assert_eq!(repeat.status, 202, "{}", repeat.text());
    assert_eq!(
        (
            repeat.json()["status"].as_str(),
            repeat.json()["messageId"].as_str()
        ),
        (Some("duplicate"), Some("evt_1QeZ"))
    );
    let events = handler.events(&stripe.webhook_id).await;
    let [event] = events.as_slice() else {
        panic!("one event produced, got {}", events.len());
    };
    assert_eq!(event.payload, body);
    assert_eq!(event.headers[record_headers::MESSAGE_ID], "evt_1QeZ");
    assert_eq!(event.headers[record_headers::EVENT_ID], "evt_1QeZ");
    assert_eq!(event.headers[record_headers::EVENT_TYPE], "invoice.paid");
    assert_eq!(
        event.headers[record_headers::OCCURRED_AT],
        "2025-11-30T10:00:00Z"
    );
    // Stripe's identity is in its body: no request header is kept with the event, its
    // signature least of all (whoever reads the topic must not be able to send it again).
    assert!(
        !event.headers.contains_key(record_headers::REQUEST_HEADERS),
        "{:?}",
        event.headers
    );
    handler.stop().await;
}

#[tokio::test]
async fn slacks_url_verification_is_answered_with_its_challenge_and_not_stored() {
    let (handler, slack, secret) = Handler::start_one(&bootstrap(), Scheme::Slack, &[]).await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let request = signed(Scheme::Slack, &secret, "unused", Utc::now(), body);
    let answer = handler.post(&slack.webhook_id, &request, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let forged = signed(Scheme::Slack, "another-secret", "unused", Utc::now(), body);
    assert_eq!(
        handler.post(&slack.webhook_id, &forged, body).await.status,
        401
    );
    assert!(handler.events(&slack.webhook_id).await.is_empty());
    handler.stop().await;
}
