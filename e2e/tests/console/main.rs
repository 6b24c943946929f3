//! The console as a person meets it, on the system of `make run`: Playwright drives
//! Debian's chromium through sign-in, webhooks, events, a dead letter and its replay
//! (then finds the event stored), a viewer who cannot replay, and a request without
//! credentials (console/tests/browser/console_flow.py); schemathesis fuzzes the API from
//! its OpenAPI document with no 5xx and no secret in any answer
//! (console/tests/api/fuzz.py); a session cookie copied before sign-out is refused after
//! it; and the console's database login can read but not change the events.
//!
//! The dead letter is made for real: a trigger refuses one event type of this test's
//! webhook with a data exception, as a constraint a DBA added would, so the consumer
//! retries it and dead-letters it; dropping the trigger is the fix, and the replay from
//! the browser stores the event.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use hookline_core::{provider, signature};
use hookline_e2e::system::{System, repo_root, standard_signed_json_headers};
use hookline_testkit::{eventually, tools};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;
use sqlx::PgPool;

const NAMESPACE: &str = "hookline-console";
const WAIT: Duration = Duration::from_secs(90);
const POISONED_TYPE: &str = "order.refused";

struct Sent {
    message_id: String,
    event_type: &'static str,
    /// The signature header's value, which no answer may contain.
    signature: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_finds_events_and_replays_a_dead_letter_in_the_console() {
    // The API fuzzing signs in with wrong credentials by the hundred, all from 127.0.0.1
    // and many as one made-up user (its invalid-auth probes): a lock would answer it 429,
    // which it takes for auth not enforced. The locks are tested in console/tests/router.rs.
    let unthrottled = "100000".to_owned();
    let system = System::start_with_env(
        NAMESPACE,
        &[
            (
                "HOOKLINE_CONSOLE_MAX_FAILURES_PER_USER",
                unthrottled.clone(),
            ),
            ("HOOKLINE_CONSOLE_MAX_FAILURES_PER_SOURCE", unthrottled),
        ],
    )
    .await;
    let secret = signature::generate_standard_secret();
    system.create_secret("orders-signing-input", &secret).await;
    let webhook_id = system
        .create_webhook(
            "orders",
            json!({
                "customerId": "acme",
                "scheme": "standard",
                "secretRef": {"name": "orders-signing-input", "key": "secret"},
                "emitter": {"enabled": false},
                "delivery": {"retry": 1, "backoffDelayMs": 100, "deadLetter": true}
            }),
        )
        .await;
    let trigger = RefusingTrigger::install(&system.db, &webhook_id).await;

    let mut sent = Vec::new();
    for (n, event_type) in [
        "order.created",
        "order.paid",
        "order.created",
        "order.paid",
        POISONED_TYPE,
    ]
    .into_iter()
    .enumerate()
    {
        let message_id = format!("msg_console_{n}_{}", Utc::now().timestamp_millis());
        let body = json!({
            "type": event_type,
            "timestamp": Utc::now().to_rfc3339(),
            "data": {"order": n, "note": "a console test order"}
        })
        .to_string();
        let headers = standard_signed_json_headers(&secret, &message_id, body.as_bytes());
        system
            .post_until_accepted(&webhook_id, &headers, body.as_bytes())
            .await;
        let signature = headers
            .iter()
            .find(|(name, _)| provider::is_signature_header(name))
            .map(|(_, value)| value.clone())
            .expect("a signature header");
        sent.push(Sent {
            message_id,
            event_type,
            signature,
        });
    }
    eventually("four events stored and one dead letter", WAIT, || async {
        let stored = system.stored(&webhook_id).await;
        let dead = system.dead_lettered(&webhook_id).await;
        (stored == 4 && dead == 1).then_some(())
    })
    .await;
    trigger.remove().await;

    let console = console_url(&system);
    let users = console_users(&system).await;
    let (operator, viewer) = (&users[0], &users[1]);
    let paid = sent
        .iter()
        .find(|s| s.event_type == "order.paid")
        .expect("a paid order");
    let dead = sent.last().expect("the refused order");
    let python = tools::python();
    let chromium = tools::chromium();
    let screenshots = screenshot_dir();

    let flow = Command::new(python)
        .arg(repo_root().join("console/tests/browser/console_flow.py"))
        .env("CONSOLE_URL", &console)
        .env("OPERATOR_USER", &operator.0)
        .env("OPERATOR_PASSWORD", &operator.1)
        .env("VIEWER_USER", &viewer.0)
        .env("VIEWER_PASSWORD", &viewer.1)
        .env("WEBHOOK_ID", &webhook_id)
        .env("EVENT_TYPE", paid.event_type)
        .env("EVENT_ID", &paid.message_id)
        .env("DEAD_MESSAGE_ID", &dead.message_id)
        .env("SECRET_CANARY", &secret)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run the browser test");
    assert!(
        flow.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&flow.stdout),
        String::from_utf8_lossy(&flow.stderr)
    );

    // What the browser did, as the database recorded it.
    let (requested_by, replayed): (String, i64) = sqlx::query_as(
        "SELECT r.requested_by, r.replayed FROM dead_letters d JOIN replays r ON r.id = d.replay_id \
         WHERE d.webhook_id = $1 AND d.message_id = $2",
    )
    .bind(&webhook_id)
    .bind(&dead.message_id)
    .fetch_one(&system.db)
    .await
    .expect("the replay is recorded on the dead letter");
    assert_eq!((requested_by.as_str(), replayed), (operator.0.as_str(), 1));
    assert_eq!(
        system.stored(&webhook_id).await,
        5,
        "the replayed event is stored once"
    );

    let forbidden = forbidden_strings(&system, &webhook_id, &secret, &users, &sent).await;
    let forbidden_file = screenshots.join("forbidden.txt");
    std::fs::write(&forbidden_file, forbidden.join("\n")).expect("write the forbidden strings");
    let fuzz = Command::new(python)
        .arg(repo_root().join("console/tests/api/fuzz.py"))
        .env("CONSOLE_URL", &console)
        .env("OPERATOR_USER", &operator.0)
        .env("OPERATOR_PASSWORD", &operator.1)
        .env("FORBIDDEN_FILE", &forbidden_file)
        .output()
        .expect("run the API fuzzing");
    let _ = std::fs::remove_file(&forbidden_file);
    assert!(
        fuzz.status.success(),
        "the API fuzzing found failures:\n{}\n{}",
        String::from_utf8_lossy(&fuzz.stdout),
        String::from_utf8_lossy(&fuzz.stderr)
    );

    a_cookie_copied_before_sign_out_is_refused_after_it(&console, viewer);
    the_console_login_reads_but_cannot_change_events(&webhook_id).await;
    system.stop();
}

/// The running console (issue 27, defect 6): the session ends on the server at sign-out,
/// so a copy of its cookie is refused afterwards.
fn a_cookie_copied_before_sign_out_is_refused_after_it(console: &str, viewer: &(String, String)) {
    let port: u16 = console
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the console's port");
    let sign_in = |(user, password): (&str, &str)| {
        let body = json!({"username": user, "password": password}).to_string();
        exchange(
            port,
            "POST",
            "/api/v1/session",
            &[("Content-Type", "application/json")],
            &body,
        )
    };
    let signed_in = sign_in((&viewer.0, &viewer.1));
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let cookie = signed_in
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let csrf: serde_json::Value = serde_json::from_str(&signed_in.body).expect("JSON");
    let csrf = csrf["csrf_token"].as_str().expect("a CSRF token");
    let out = exchange(
        port,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", csrf)],
        "",
    );
    assert_eq!(out.status, 204, "{}", out.body);
    let again = exchange(port, "GET", "/api/v1/session", &[("Cookie", &cookie)], "");
    assert_eq!(
        again.status, 401,
        "the copied cookie after sign-out: {}",
        again.body
    );
}

struct Exchanged {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Exchanged {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.0 request to the console on loopback, its answer with its headers.
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Exchanged {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the console answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("the answer");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .expect("an HTTP status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Exchanged {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The console's database login (the stack's CONSOLE_DATABASE_URL): reads, records
/// replays, and PostgreSQL refuses it everything else.
async fn the_console_login_reads_but_cannot_change_events(webhook_id: &str) {
    let url = hookline_testkit::stack()
        .vars
        .get("CONSOLE_DATABASE_URL")
        .expect("the stack's env has CONSOLE_DATABASE_URL: re-run make stack-up")
        .clone();
    let console = PgPool::connect(&url)
        .await
        .expect("the console's login connects");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE webhook_id = $1")
        .bind(webhook_id)
        .fetch_one(&console)
        .await
        .expect("the console reads events");
    assert_eq!(stored, 5);
    for statement in [
        "DELETE FROM events",
        "UPDATE events SET attempts = 2",
        "INSERT INTO events (webhook_id, message_id, body, received_at, received_day) \
         VALUES ('x', 'y', '', now(), (now() AT TIME ZONE 'UTC')::date)",
        "UPDATE dead_letters SET reason = 'rewritten'",
        "DELETE FROM dead_letters",
        "DELETE FROM replays",
        "UPDATE webhooks SET status = 'deleted'",
        "DROP TABLE events",
        "ALTER TABLE events ADD COLUMN c int",
        "CREATE TABLE console_owned (id int)",
        "SELECT events_ensure_partition(current_date + 100)",
    ] {
        let err = sqlx::query(statement)
            .execute(&console)
            .await
            .expect_err(statement);
        let code = err
            .as_database_error()
            .and_then(|db| db.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {err}");
    }
}

/// A BEFORE INSERT trigger that refuses one event type of one webhook with a data
/// exception (SQLSTATE 22023), as a CHECK constraint would.
struct RefusingTrigger<'p> {
    db: &'p PgPool,
}

impl<'p> RefusingTrigger<'p> {
    async fn install(db: &'p PgPool, webhook_id: &str) -> Self {
        let trigger = Self { db };
        trigger.remove().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE FUNCTION console_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF NEW.webhook_id = '{webhook_id}' AND NEW.event_type = '{POISONED_TYPE}' THEN \
                 RAISE EXCEPTION 'refused by the console test' USING ERRCODE = '22023'; \
               END IF; \
               RETURN NEW; \
             END $$"
        )))
        .execute(db)
        .await
        .expect("create the trigger function");
        sqlx::query(
            "CREATE TRIGGER console_test_refuse BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION console_test_refuse()",
        )
        .execute(db)
        .await
        .expect("create the trigger");
        trigger
    }

    async fn remove(&self) {
        for statement in [
            "DROP TRIGGER IF EXISTS console_test_refuse ON events",
            "DROP FUNCTION IF EXISTS console_test_refuse()",
        ] {
            sqlx::query(statement)
                .execute(self.db)
                .await
                .expect(statement);
        }
    }
}

/// Posts one event as a provider would: a 5xx (a replica that just went away behind the
/// proxy) is retried, as every provider retries; anything but 202 in the end fails.
fn console_url(system: &System) -> String {
    let ports = system.ports_of(
        |labels| labels["app.kubernetes.io/component"] == "console",
        "8080",
    );
    let port = ports.first().expect("a console pod runs");
    format!("http://127.0.0.1:{port}")
}

/// The sign-ins `dev/run.sh` made, (username, password): the operator, then the viewer.
/// The console's Secret holds only their argon2id hashes.
async fn console_users(system: &System) -> Vec<(String, String)> {
    let sign_ins = system
        .pods_dir
        .parent()
        .expect("the run's directory")
        .join("console-sign-ins");
    let text = std::fs::read_to_string(&sign_ins)
        .unwrap_or_else(|err| panic!("{}: {err}", sign_ins.display()));
    let users: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (name, _role, password) = (fields.next()?, fields.next()?, fields.next()?);
            Some((name.to_owned(), password.to_owned()))
        })
        .collect();
    assert_eq!(users.len(), 2, "admin and viewer");
    let secrets: Api<Secret> = Api::namespaced(system.webhooks.clone().into_client(), NAMESPACE);
    let secret = secrets
        .get("hookline-console")
        .await
        .expect("the console's Secret");
    let data = secret.data.unwrap_or_default();
    let stored = String::from_utf8_lossy(&data.get("users").expect("a users key").0).into_owned();
    for (name, password) in &users {
        assert!(
            stored.contains(&format!("{name}:")) && !stored.contains(password.as_str()),
            "the Secret holds {name}'s hash, not the password"
        );
    }
    assert!(
        stored.lines().all(|line| line.contains(":$argon2id$v=19$")),
        "{stored}"
    );
    users
}

/// What no answer may contain: the signing secret, every signature the senders sent,
/// the sign-in passwords and the session key.
async fn forbidden_strings(
    system: &System,
    webhook_id: &str,
    secret: &str,
    users: &[(String, String)],
    sent: &[Sent],
) -> Vec<String> {
    let mut forbidden = vec![secret.to_owned()];
    forbidden.extend(users.iter().map(|(_, password)| password.clone()));
    forbidden.extend(sent.iter().map(|sent| sent.signature.clone()));
    let stored_signatures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE webhook_id = $1 AND request_headers ?| $2",
    )
    .bind(webhook_id)
    .bind(provider::SIGNATURE_HEADERS)
    .fetch_one(&system.db)
    .await
    .expect("count the stored signatures");
    assert_eq!(stored_signatures, 0, "no signature is stored with an event");
    let secrets: Api<Secret> = Api::namespaced(system.webhooks.clone().into_client(), NAMESPACE);
    let console = secrets
        .get("hookline-console")
        .await
        .expect("the console's Secret");
    if let Some(key) = console.data.unwrap_or_default().get("session-key") {
        forbidden.push(String::from_utf8_lossy(&key.0).into_owned());
    }
    forbidden
}

/// docs/screenshots when HOOKLINE_UPDATE_SCREENSHOTS is set (the README shows them),
/// else a directory under target/ the next run overwrites.
fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var_os("HOOKLINE_UPDATE_SCREENSHOTS").is_some() {
        repo_root().join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}
