//! The binary documents its flags and refuses to start without a way to sign in, or
//! with sign-ins or a session key it cannot use, naming what is wrong.

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
            ("--secure-cookie", "CONSOLE_SECURE_COOKIE"),
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
        ],
    );
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

    std::fs::write(
        &users,
        "alice:operator:long enough\nbob:admin:long enough\n",
    )
    .expect("users");
    refuses(
        &["--users-file", &users_path],
        &[&*users_path, "line 2", "unknown role"],
    );

    std::fs::write(&users, "alice:operator:long enough\n").expect("users");
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
