//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-operator");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &["run"],
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
            ("--events-topic", "HOOKLINE_EVENTS_TOPIC"),
            ("--dead-letter-topic", "HOOKLINE_DEAD_LETTER_TOPIC"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
            (
                "--emitter-network-policy",
                "HOOKLINE_EMITTER_NETWORK_POLICY",
            ),
            ("--handler-pod-port", "HOOKLINE_HANDLER_POD_PORT"),
            (
                "--max-rate-limit-per-second",
                "HOOKLINE_MAX_RATE_LIMIT_PER_SECOND",
            ),
            ("--max-rate-limit-burst", "HOOKLINE_MAX_RATE_LIMIT_BURST"),
            (
                "--max-emitter-rate-per-second",
                "HOOKLINE_MAX_EMITTER_RATE_PER_SECOND",
            ),
            ("--max-emitter-replicas", "HOOKLINE_MAX_EMITTER_REPLICAS"),
            ("--allow-private-targets", "HOOKLINE_ALLOW_PRIVATE_TARGETS"),
            (
                "--allow-referenced-secrets-to-other-targets",
                "HOOKLINE_ALLOW_REFERENCED_SECRETS_TO_OTHER_TARGETS",
            ),
        ],
    );
}

#[test]
fn missing_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(BIN, &[], &["Usage", "run"]);
    hookline_testkit::assert_missing_config_is_named(BIN, &["run"], &["--kafka-bootstrap-servers"]);
}
