//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-handler");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &[],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--kafka-security-protocol", "KAFKA_SECURITY_PROTOCOL"),
            ("--kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM"),
            ("--kafka-sasl-username", "KAFKA_SASL_USERNAME"),
            ("--kafka-sasl-password", "KAFKA_SASL_PASSWORD"),
            ("--kafka-ssl-ca-location", "KAFKA_SSL_CA_LOCATION"),
            ("--registry-keys-dir", "HOOKLINE_REGISTRY_KEYS_DIR"),
            (
                "--registry-keys-reload-interval",
                "HOOKLINE_REGISTRY_KEYS_RELOAD_INTERVAL",
            ),
            ("--listen-addr", "HANDLER_LISTEN_ADDR"),
            ("--log-format", "HOOKLINE_LOG_FORMAT"),
            ("--registry-topic", "HANDLER_REGISTRY_TOPIC"),
            ("--events-topic", "HANDLER_EVENTS_TOPIC"),
            ("--max-body-bytes", "HANDLER_MAX_BODY_BYTES"),
            ("--timestamp-tolerance", "HANDLER_TIMESTAMP_TOLERANCE"),
            ("--header-read-timeout", "HANDLER_HEADER_READ_TIMEOUT"),
            ("--body-read-timeout", "HANDLER_BODY_READ_TIMEOUT"),
            (
                "--max-concurrent-requests",
                "HANDLER_MAX_CONCURRENT_REQUESTS",
            ),
            ("--produce-timeout", "HANDLER_PRODUCE_TIMEOUT"),
            ("--replay-cache-capacity", "HANDLER_REPLAY_CACHE_CAPACITY"),
            ("--trusted-proxies", "HANDLER_TRUSTED_PROXIES"),
            ("--trusted-proxy-hops", "HANDLER_TRUSTED_PROXY_HOPS"),
            ("--forwarding-header", "HANDLER_FORWARDING_HEADER"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
            (
                "--max-concurrent-requests-per-webhook",
                "HANDLER_MAX_CONCURRENT_REQUESTS_PER_WEBHOOK",
            ),
            (
                "--max-concurrent-requests-per-source",
                "HANDLER_MAX_CONCURRENT_REQUESTS_PER_SOURCE",
            ),
            (
                "--unknown-webhook-recheck-interval",
                "HANDLER_UNKNOWN_WEBHOOK_RECHECK_INTERVAL",
            ),
            (
                "--unsigned-id-repeat-window",
                "HANDLER_UNSIGNED_ID_REPEAT_WINDOW",
            ),
            ("--shutdown-grace", "HANDLER_SHUTDOWN_GRACE"),
        ],
    );
}

#[test]
fn missing_or_bad_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(BIN, &[], &["--kafka-bootstrap-servers"]);
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &["--kafka-bootstrap-servers", "kafka"],
        &["kafka", "port"],
    );
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &[
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
            "--trusted-proxies",
            "10.0.0.0/33",
        ],
        &["--trusted-proxies", "10.0.0.0/33"],
    );
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &[
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
            "--produce-timeout",
            "5",
        ],
        &["--produce-timeout", "unit"],
    );
}
