//! The binary documents its flags and refuses to start without a way to sign in, or
//! with sign-ins (a password in clear above all) or a session key it cannot use, naming
//! what is wrong; `hookline-console hash-password` makes the hashes its users file holds.

use std::io::Write;
use std::process::{Command, Stdio};

use hookline_testkit::run_clean;

const BIN: &str = env!("CARGO_BIN_EXE_hookline-console");

/// Flags enough to get past parsing; nothing answers at these addresses.
const REQUIRED: [&str; 4] = [
    "--kafka-bootstrap-servers",
    "127.0.0.1:1",
    "--database-url",
    "postgres://console@127.0.0.1:1/hookline",
];

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &[],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--database-url", "DATABASE_URL"),
            ("--listen-addr", "CONSOLE_LISTEN_ADDR"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
            ("--query-timeout", "CONSOLE_QUERY_TIMEOUT"),
            ("--events-topic", "CONSOLE_EVENTS_TOPIC"),
            ("--watch-namespace", "CONSOLE_WATCH_NAMESPACE"),
            ("--users-file", "CONSOLE_USERS_FILE"),
            ("--session-key-file", "CONSOLE_SESSION_KEY_FILE"),
            ("--session-lifetime", "CONSOLE_SESSION_LIFETIME"),
            ("--session-idle-timeout", "CONSOLE_SESSION_IDLE_TIMEOUT"),
            ("--users-reload-interval", "CONSOLE_USERS_RELOAD_INTERVAL"),
            ("--secure-cookie", "CONSOLE_SECURE_COOKIE"),
            (
                "--login-max-failures-per-user",
                "CONSOLE_LOGIN_MAX_FAILURES_PER_USER",
            ),
            (
                "--login-max-failures-per-source",
                "CONSOLE_LOGIN_MAX_FAILURES_PER_SOURCE",
            ),
            ("--login-lockout", "CONSOLE_LOGIN_LOCKOUT"),
            ("--auth-proxy-user-header", "CONSOLE_AUTH_PROXY_USER_HEADER"),
            (
                "--auth-proxy-groups-header",
                "CONSOLE_AUTH_PROXY_GROUPS_HEADER",
            ),
            (
                "--auth-proxy-operator-groups",
                "CONSOLE_AUTH_PROXY_OPERATOR_GROUPS",
            ),
            (
                "--auth-proxy-trusted-cidrs",
                "CONSOLE_AUTH_PROXY_TRUSTED_CIDRS",
            ),
            ("--shutdown-grace", "CONSOLE_SHUTDOWN_GRACE"),
            ("hash-password", "argon2id"),
        ],
    );
}

/// `hookline-console hash-password` with `args`, the password on stdin: (ok, stdout, stderr).
fn hash_password(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hash-password starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    let output = child.wait_with_output().expect("hash-password ends");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A cheap hash for a users file (the hash string carries its parameters).
fn cheap_hash(password: &str) -> String {
    let (ok, stdout, stderr) = hash_password(
        &["--memory-kib", "8", "--iterations", "1"],
        &format!("{password}\n"),
    );
    assert!(ok, "{stderr}");
    stdout.trim().to_owned()
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_stdin() {
    let (ok, stdout, stderr) = hash_password(&[], "correct horse battery\n");
    assert!(ok, "{stderr}");
    let hash = stdout.trim();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "production parameters by default: {hash}"
    );
    assert!(!stdout.contains("correct horse"));
    assert!(hookline_console::password::verify(
        hash,
        "correct horse battery"
    ));
    assert!(!hookline_console::password::verify(
        hash,
        "correct horse battery\n"
    ));

    let cheap = cheap_hash("correct horse battery");
    assert!(cheap.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{cheap}");
    assert!(hookline_console::password::verify(
        &cheap,
        "correct horse battery"
    ));

    let (ok, _, stderr) = hash_password(&[], "short\n");
    assert!(!ok && stderr.contains("shorter than 8"), "{stderr}");
    let (ok, _, stderr) = hash_password(&[], "");
    assert!(!ok && stderr.contains("no password"), "{stderr}");
    let (ok, _, stderr) = hash_password(&["--help"], "");
    assert!(ok && !stderr.contains("error"), "{stderr}");
}

#[test]
fn missing_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &[],
        &["--kafka-bootstrap-servers", "--database-url"],
    );
}

/// Runs the console with the required flags and `extra`; it must exit with an error
/// naming each of `named`.
fn refuses(extra: &[&str], named: &[&str]) {
    let args: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    let (ok, _, stderr) = run_clean(BIN, &args);
    assert!(!ok, "started with {extra:?}");
    for name in named {
        assert!(
            stderr.contains(name),
            "the error does not name {name}:\n{stderr}"
        );
    }
}

#[test]
fn it_will_not_start_without_a_usable_way_to_sign_in() {
    let dir = std::env::temp_dir().join(format!("hookline-console-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let users = dir.join("users");
    let key = dir.join("session-key");
    let (users_path, key_path) = (users.to_string_lossy(), key.to_string_lossy());

    refuses(&[], &["nobody could sign in", "--users-file"]);

    let hash = cheap_hash("long enough");
    std::fs::write(&users, format!("alice:operator:{hash}\nbob:admin:{hash}\n")).expect("users");
    refuses(
        &["--users-file", &users_path],
        &[&*users_path, "line 2", "unknown role"],
    );

    std::fs::write(
        &users,
        format!("alice:operator:{hash}\nbob:viewer:long enough\n"),
    )
    .expect("users");
    let (ok, _, stderr) = run_clean(
        BIN,
        &[&REQUIRED[..], &["--users-file", &users_path]].concat(),
    );
    assert!(!ok, "started with a password in clear");
    assert!(
        stderr.contains("line 2") && stderr.contains("not an argon2id hash"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("long enough"),
        "the password is not logged: {stderr}"
    );

    std::fs::write(&users, format!("alice:operator:{hash}\n")).expect("users");
    std::fs::write(&key, "short").expect("key");
    refuses(
        &["--users-file", &users_path, "--session-key-file", &key_path],
        &[&*key_path, "5 bytes", "at least 32"],
    );
    refuses(
        &["--users-file", &dir.join("missing").to_string_lossy()],
        &["cannot read the users file"],
    );
    refuses(
        &["--auth-proxy-user-header", "X-Forwarded-User"],
        &["--auth-proxy-trusted-cidrs"],
    );
    refuses(
        &[
            "--users-file",
            &users_path,
            "--auth-proxy-user-header",
            "X-Forwarded-User",
            "--auth-proxy-trusted-cidrs",
            "10.0.0.0/33",
        ],
        &["10.0.0.0/33", "not a CIDR range"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
