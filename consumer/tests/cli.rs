//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-consumer");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &["--database-url", "postgres://h/db", "run"],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--kafka-security-protocol", "KAFKA_SECURITY_PROTOCOL"),
            ("--kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM"),
            ("--kafka-sasl-username", "KAFKA_SASL_USERNAME"),
            ("--kafka-sasl-password", "KAFKA_SASL_PASSWORD"),
            ("--kafka-ssl-ca-location", "KAFKA_SSL_CA_LOCATION"),
            ("--schema", "CONSUMER_SCHEMA"),
            ("--group-id", "CONSUMER_GROUP_ID"),
            ("--group-instance-id", "CONSUMER_GROUP_INSTANCE_ID"),
            ("--events-topic", "CONSUMER_EVENTS_TOPIC"),
            ("--dead-letter-topic", "CONSUMER_DEAD_LETTER_TOPIC"),
            ("--registry-topic", "CONSUMER_REGISTRY_TOPIC"),
            ("--retry-tier-delays", "CONSUMER_RETRY_TIER_DELAYS"),
            ("--batch-max-events", "CONSUMER_BATCH_MAX_EVENTS"),
            ("--batch-max-wait", "CONSUMER_BATCH_MAX_WAIT"),
            ("--inject-failure-rate", "CONSUMER_INJECT_FAILURE_RATE"),
            ("--database-max-connections", "DATABASE_MAX_CONNECTIONS"),
            ("--database-timeout", "DATABASE_TIMEOUT"),
            (
                "--database-parallel-transactions",
                "DATABASE_PARALLEL_TRANSACTIONS",
            ),
            ("--session-timeout", "CONSUMER_SESSION_TIMEOUT"),
            ("--events-retention-days", "CONSUMER_EVENTS_RETENTION_DAYS"),
            (
                "--dead-letter-retention-days",
                "CONSUMER_DEAD_LETTER_RETENTION_DAYS",
            ),
            ("--dedup-window-days", "CONSUMER_DEDUP_WINDOW_DAYS"),
            ("--partitions-ahead-days", "CONSUMER_PARTITIONS_AHEAD_DAYS"),
            ("--retention-interval", "CONSUMER_RETENTION_INTERVAL"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
        ],
    );
    hookline_testkit::assert_help_documents(
        BIN,
        &["--database-url", "postgres://h/db", "replay"],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--events-topic", "CONSUMER_EVENTS_TOPIC"),
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
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &with_kafka(
            "run",
            &[
                "--database-max-connections",
                "5",
                "--database-parallel-transactions",
                "2",
            ],
        ),
        &[
            "--database-max-connections",
            "--database-parallel-transactions",
        ],
    );
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &with_kafka("run", &["--session-timeout", "1s"]),
        &["--session-timeout", "6s"],
    );
    for (delays, why) in [
        ("10s,1s", "grow strictly"),
        ("1s,2s,3s", "expected 5 delays, one per retry topic"),
    ] {
        hookline_testkit::assert_missing_config_is_named(
            BIN,
            &with_kafka("run", &["--retry-tier-delays", delays]),
            &["--retry-tier-delays", why],
        );
    }
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &with_kafka("replay", &[]),
        &["--webhook", "--all"],
    );
}

/// `subcommand` with a database and Kafka, then `flags`.
fn with_kafka<'a>(subcommand: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--database-url",
        "postgres://h/db",
        subcommand,
        "--kafka-bootstrap-servers",
        "127.0.0.1:9092",
    ];
    args.extend_from_slice(flags);
    args
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
