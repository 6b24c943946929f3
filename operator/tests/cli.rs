//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-operator");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &["run"],
        &[
            ("--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("--ops-addr", "HOOKLINE_OPS_ADDR"),
            (
                "--emitter-network-policy",
                "HOOKLINE_EMITTER_NETWORK_POLICY",
            ),
            ("--handler-pod-port", "HOOKLINE_HANDLER_POD_PORT"),
        ],
    );
}

#[test]
fn missing_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(BIN, &[], &["Usage", "run"]);
    hookline_testkit::assert_missing_config_is_named(BIN, &["run"], &["--kafka-bootstrap-servers"]);
}
