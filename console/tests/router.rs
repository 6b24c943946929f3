//! The router's layers without a database or a cluster behind it: who may call what
//! (401 without credentials, CSRF on every change, replay for operators only), the
//! session cookie round trip, the security headers on every answer, the OpenAPI
//! document, and request metrics labelled by route template.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use hookline_console::api::AppState;
use hookline_console::auth::Auth;
use hookline_console::metrics::Metrics;
use hookline_console::service::app;
use hookline_core::replay::Replayer;
use kube::runtime::reflector;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

struct Console {
    router: axum::Router,
    registry: Registry,
}

/// A console whose database and Kubernetes API are never reached (lazy pool, a store
/// never synced, a producer that never connects).
fn console() -> Console {
    // One file per console: the tests run in parallel in one process.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let users = std::env::temp_dir().join(format!(
        "hookline-console-router-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(
        &users,
        "alice:operator:correct horse\nbob:viewer:battery staple\n",
    )
    .expect("users file");
    let auth = Auth::new(Some(&users), None, Duration::from_secs(3600), false, None).expect("auth");
    let _ = std::fs::remove_file(&users);
    let mut registry = Registry::with_prefix("hookline_console");
    let metrics = Arc::new(Metrics::register(&mut registry));
    let (store, _writer) = reflector::store();
    let state = AppState {
        pool: PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy("postgres://console@127.0.0.1:1/hookline")
            .expect("lazy pool"),
        auth: Arc::new(auth),
        webhooks: store,
        replayer: Arc::new(
            Replayer::new(
                &hookline_core::kafka::KafkaConnection::plaintext("127.0.0.1:1"),
                "router-test",
                "events",
            )
            .expect("producer"),
        ),
        metrics,
        webhooks_synced: Arc::new(AtomicBool::new(false)),
        namespaced: false,
    };
    Console {
        router: app(state),
        registry,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(console: &Console, mut request: Request<Body>) -> Answer {
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = console
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn get(path: &str) -> axum::http::request::Builder {
    Request::get(path)
}

fn json_post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::CONTENT_TYPE, "application/json")
}

/// Signs in through the API; the Cookie header value and the CSRF token.
async fn sign_in(console: &Console, username: &str, password: &str) -> (String, String) {
    let body = json!({"username": username, "password": password});
    let answer = call(
        console,
        json_post("/api/v1/session")
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let csrf = answer.body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn nothing_answers_without_credentials_and_every_answer_has_the_security_headers() {
    let console = console();
    let answer = call(
        &console,
        get("/api/v1/webhooks")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "unauthenticated");
    let csp = answer.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(answer.headers["x-frame-options"], "DENY");

    let wrong = json!({"username": "alice", "password": "wrong password"});
    let answer = call(
        &console,
        json_post("/api/v1/session")
            .body(Body::from(wrong.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "invalid_credentials");

    let page = console
        .router
        .clone()
        .oneshot(get("/").body(Body::empty()).expect("request"))
        .await
        .expect("the page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().contains_key("content-security-policy"));

    let openapi = call(
        &console,
        get("/api/v1/openapi.json")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["paths"]["/api/v1/dead-letters/replay"]["post"].is_object());
}

#[tokio::test]
async fn a_session_needs_its_csrf_token_to_change_anything_and_only_operators_replay() {
    let console = console();
    let replay = json!({"ids": [1]});
    let (cookie, csrf) = sign_in(&console, "alice", "correct horse").await;
    let me = call(
        &console,
        get("/api/v1/session")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (me.body["username"].as_str(), me.body["role"].as_str()),
        (Some("alice"), Some("operator"))
    );

    let without_token = call(
        &console,
        json_post("/api/v1/dead-letters/replay")
            .header(header::COOKIE, &cookie)
            .body(Body::from(replay.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(without_token.status, StatusCode::FORBIDDEN);
    assert_eq!(without_token.body["error"], "csrf_mismatch");

    let (viewer_cookie, viewer_csrf) = sign_in(&console, "bob", "battery staple").await;
    let another_sessions_token = call(
        &console,
        json_post("/api/v1/dead-letters/replay")
            .header(header::COOKIE, &viewer_cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::from(replay.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(another_sessions_token.body["error"], "csrf_mismatch");
    let viewer = call(
        &console,
        json_post("/api/v1/dead-letters/replay")
            .header(header::COOKIE, &viewer_cookie)
            .header("x-csrf-token", &viewer_csrf)
            .body(Body::from(replay.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.body["error"], "forbidden");

    let out = call(
        &console,
        Request::delete("/api/v1/session")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn unlisted_webhooks_answer_503_and_requests_are_counted_by_route_template() {
    let console = console();
    let (cookie, _) = sign_in(&console, "bob", "battery staple").await;
    let answer = call(
        &console,
        get("/api/v1/webhooks/some-namespace/some-name")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not listed yet is not 'none'"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &console.registry).expect("encode");
    assert!(
        text.contains(r#"route="/api/v1/webhooks/{namespace}/{name}",status="503""#),
        "{text}"
    );
    assert!(
        !text.contains("some-namespace"),
        "a path, not its template, in a label"
    );
}
