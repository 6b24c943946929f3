//! The router's layers without a database or a cluster behind it: who may call what
//! (401 without credentials, CSRF on every change, replay for operators only), the
//! session cookie round trip, the security headers on every answer, the OpenAPI
//! document, and request metrics labelled by route template.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use hookline_console::auth::{Auth, AuthSettings, ProxyAuth};
use hookline_console::metrics::{self, Metrics};
use hookline_console::password;
use hookline_console::service::app;
use hookline_console::state::AppState;
use hookline_console::throttle::ThrottleSettings;
use hookline_runtime::shutdown::Shutdown;
use hookline_store::dead_letter_replay::Replayer;
use kube::runtime::reflector;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

struct Console {
    router: axum::Router,
    metrics_registry: Registry,
    users_file: PathBuf,
    auth: Arc<Auth>,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.users_file);
    }
}

/// How a test's console signs people in.
struct Setup {
    users: String,
    proxy: Option<ProxyAuth>,
    throttle: ThrottleSettings,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            users: users(&[
                ("alice", "operator", "correct horse"),
                ("bob", "viewer", "battery staple"),
            ]),
            proxy: None,
            throttle: ThrottleSettings {
                max_failures_per_user: 5,
                max_failures_per_source: 50,
                window: Duration::from_secs(900),
            },
        }
    }
}

/// A users file's text; hashes made cheap (the string carries its parameters).
fn users(lines: &[(&str, &str, &str)]) -> String {
    lines
        .iter()
        .map(|(name, role, password)| {
            format!(
                "{name}:{role}:{}\n",
                password::hash(password, 8, 1, 1).expect("hash")
            )
        })
        .collect()
}

fn console() -> Console {
    console_with(Setup::default())
}

/// A console whose database and Kubernetes API are never reached (lazy pool, a store
/// never synced, a producer that never connects). Its users file is watched every 50 ms.
fn console_with(setup: Setup) -> Console {
    // One file per console: the tests run in parallel in one process.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let users_file = std::env::temp_dir().join(format!(
        "hookline-console-router-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&users_file, &setup.users).expect("users file");
    let auth = Arc::new(
        Auth::new(AuthSettings {
            users_file: Some(users_file.clone()),
            session_key_file: None,
            session_lifetime: Duration::from_secs(3600),
            session_idle_timeout: Duration::from_secs(600),
            secure_cookie: true,
            proxy: setup.proxy,
            throttle: setup.throttle,
        })
        .expect("auth"),
    );
    tokio::spawn(
        auth.clone()
            .watch_users(Duration::from_millis(50), Shutdown::default()),
    );
    let mut metrics_registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut metrics_registry));
    let (store, _writer) = reflector::store();
    let state = AppState {
        pool: PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy("postgres://console@127.0.0.1:1/hookline")
            .expect("lazy pool"),
        auth: auth.clone(),
        webhooks: store,
        replayer: Arc::new(
            Replayer::new(
                &hookline_runtime::kafka::KafkaConnection::plaintext("127.0.0.1:1"),
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
        metrics_registry,
        users_file,
        auth,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(console: &Console, request: Request<Body>) -> Answer {
    call_from(console, "127.0.0.1", request).await
}

/// A request as if from `ip`.
async fn call_from(console: &Console, ip: &str, mut request: Request<Body>) -> Answer {
    let peer = SocketAddr::new(ip.parse().expect("ip"), 50000);
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
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
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
    let another_sessions_token = call(&console, replay_request(&viewer_cookie, &csrf)).await;
    assert_eq!(another_sessions_token.body["error"], "csrf_mismatch");
    let viewer = call(&console, replay_request(&viewer_cookie, &viewer_csrf)).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.body["error"], "forbidden");

    let out = call(&console, sign_out_request(&cookie, &csrf)).await;
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
    let text = hookline_testkit::prometheus::encoded(&console.metrics_registry);
    assert!(
        text.contains(r#"route="/api/v1/webhooks/{namespace}/{name}",status="503""#),
        "{text}"
    );
    assert!(
        !text.contains("some-namespace"),
        "a path, not its template, in a label"
    );
}

fn sign_out_request(cookie: &str, csrf: &str) -> Request<Body> {
    Request::delete("/api/v1/session")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .body(Body::empty())
        .expect("request")
}

/// A replay of dead letter 1 with the session `cookie` and the CSRF token `csrf`.
fn replay_request(cookie: &str, csrf: &str) -> Request<Body> {
    json_post("/api/v1/dead-letters/replay")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .body(Body::from(json!({"ids": [1]}).to_string()))
        .expect("request")
}

fn sign_in_request(username: &str, password: &str) -> Request<Body> {
    let body = json!({"username": username, "password": password});
    json_post("/api/v1/session")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn with_cookie(path: &str, cookie: &str) -> Request<Body> {
    get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

/// Asks `ask` every 20 ms until `done` holds of its answer, for at most 10 s.
async fn until<F, Fut>(what: &str, mut ask: F, done: impl Fn(&Answer) -> bool) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = ask().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cookie_copied_before_sign_out_is_refused_after_it() {
    let console = console();
    let (cookie, csrf) = sign_in(&console, "alice", "correct horse").await;
    let copy = cookie.clone();
    assert!(
        !cookie.contains("alice") && !cookie.contains("operator"),
        "the cookie holds a session id only: {cookie}"
    );
    let out = call(&console, sign_out_request(&cookie, &csrf)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let replayed = call(&console, with_cookie("/api/v1/session", &copy)).await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.body
    );
    let replay = call(&console, replay_request(&copy, &csrf)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_role_change_or_removal_in_the_users_file_holds_from_the_next_request() {
    let console = console();
    let (cookie, csrf) = sign_in(&console, "alice", "correct horse").await;
    std::fs::write(
        &console.users_file,
        users(&[
            ("alice", "viewer", "correct horse"),
            ("bob", "viewer", "battery staple"),
        ]),
    )
    .expect("demote alice");
    until(
        "alice demoted",
        || call(&console, with_cookie("/api/v1/session", &cookie)),
        |answer| answer.body["role"] == "viewer",
    )
    .await;
    let replay = call(&console, replay_request(&cookie, &csrf)).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.body);
    assert_eq!(replay.body["error"], "forbidden");

    std::fs::write(
        &console.users_file,
        users(&[("bob", "viewer", "battery staple")]),
    )
    .expect("remove alice");
    until(
        "alice removed",
        || call(&console, with_cookie("/api/v1/session", &cookie)),
        |answer| answer.status == StatusCode::UNAUTHORIZED,
    )
    .await;

    std::fs::write(&console.users_file, "bob:viewer:battery staple in clear\n")
        .expect("a clear password");
    let refused = console.auth.reload_users().expect_err("a clear password");
    assert!(
        refused.to_string().contains("not an argon2id hash")
            && !refused.to_string().contains("battery"),
        "{refused}"
    );
    let (bob, _) = sign_in(&console, "bob", "battery staple").await;
    let me = call(&console, with_cookie("/api/v1/session", &bob)).await;
    assert_eq!(me.body["username"], "bob", "an unusable file is not taken");
}

#[tokio::test]
async fn failed_sign_ins_lock_the_user_and_the_source_with_retry_after() {
    let console = console_with(Setup {
        throttle: ThrottleSettings {
            max_failures_per_user: 3,
            max_failures_per_source: 6,
            window: Duration::from_secs(3),
        },
        ..Setup::default()
    });
    let attacker = "192.0.2.7";
    for attempt in 1..=3 {
        let answer = call_from(&console, attacker, sign_in_request("alice", "guess")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let locked = call_from(&console, attacker, sign_in_request("alice", "guess")).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert_eq!(locked.body["error"], "too_many_attempts");
    let retry_after: u64 = locked.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    let right_password = call_from(
        &console,
        "198.51.100.1",
        sign_in_request("alice", "correct horse"),
    )
    .await;
    assert_eq!(
        right_password.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a locked user's right password is no oracle"
    );
    let basic = call_from(
        &console,
        "198.51.100.1",
        get("/api/v1/session")
            .header(header::AUTHORIZATION, basic_header("alice:correct horse"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(basic.status, StatusCode::TOO_MANY_REQUESTS, "Basic too");

    let other = call_from(
        &console,
        "198.51.100.2",
        sign_in_request("bob", "battery staple"),
    )
    .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another user from another source"
    );

    for user in ["carol", "dave", "erin"] {
        call_from(&console, attacker, sign_in_request(user, "guess")).await;
    }
    let source_locked =
        call_from(&console, attacker, sign_in_request("bob", "battery staple")).await;
    assert_eq!(
        source_locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the source's sixth failure locks it for every user"
    );

    until(
        "alice's lock to expire",
        || {
            call_from(
                &console,
                "198.51.100.3",
                sign_in_request("alice", "correct horse"),
            )
        },
        |answer| answer.status != StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // The source was locked a little later than alice, by its sixth failure.
    let unlocked = until(
        "the source's lock to expire",
        || call_from(&console, attacker, sign_in_request("bob", "battery staple")),
        |answer| answer.status != StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(
        unlocked.status,
        StatusCode::OK,
        "the source's lock ends too"
    );
    let text = hookline_testkit::prometheus::encoded(&console.metrics_registry);
    assert!(
        text.contains(&metrics::THROTTLED_LOGINS.exported()),
        "{text}"
    );
}

fn basic_header(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[tokio::test]
async fn behind_an_auth_proxy_basic_is_off_and_only_the_proxy_is_believed() {
    let console = console_with(Setup {
        proxy: Some(ProxyAuth {
            user_header: "x-forwarded-user".into(),
            groups_header: None,
            operator_groups: vec![],
            trusted: vec!["127.0.0.1/32".parse().expect("cidr")],
        }),
        ..Setup::default()
    });
    let basic = call(
        &console,
        get("/api/v1/session")
            .header(header::AUTHORIZATION, basic_header("alice:correct horse"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED, "{}", basic.body);
    let from_proxy = call(
        &console,
        get("/api/v1/session")
            .header("x-forwarded-user", "carol")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(from_proxy.body["username"], "carol");
    let from_a_neighbour = call_from(
        &console,
        "127.0.0.2",
        get("/api/v1/session")
            .header("x-forwarded-user", "carol")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(from_a_neighbour.status, StatusCode::UNAUTHORIZED);
}
