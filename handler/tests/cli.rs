//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-handler");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &[],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--listen-addr", "HANDLER_LISTEN_ADDR"),
            ("--log-format", "HOOKLINE_LOG_FORMAT"),
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
}
