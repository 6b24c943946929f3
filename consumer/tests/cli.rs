//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-consumer");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &["--database-url", "postgres://h/db", "run"],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--group-id", "CONSUMER_GROUP_ID"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
        ],
    );
    hookline_testkit::assert_help_documents(BIN, &[], &[("--database-url", "DATABASE_URL")]);
}

#[test]
fn missing_or_bad_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(BIN, &["migrate"], &["--database-url"]);
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &["--database-url", "postgres://h/db", "run"],
        &["--kafka-bootstrap-servers"],
    );
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &["--database-url", "mysql://u:hunter2@h/db", "migrate"],
        &["postgres://"],
    );
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    // Port 1 on loopback refuses connections at once.
    let (ok, _, stderr) = hookline_testkit::run_clean(
        BIN,
        &[
            "--log-format",
            "text",
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/db",
            "migrate",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}
