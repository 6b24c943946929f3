//! The binary documents its flags and refuses to start without configuration.

const BIN: &str = env!("CARGO_BIN_EXE_hookline-emitter");

#[test]
fn help_documents_flags_and_their_environment_variables() {
    hookline_testkit::assert_help_documents(
        BIN,
        &[],
        &[
            ("--webhook-id", "WEBHOOK_ID"),
            ("--target-url", "WEBHOOK_TARGET_URL"),
            ("--secret-dir", "WEBHOOK_SECRET_DIR"),
            ("--allow-private-targets", "EMITTER_ALLOW_PRIVATE_TARGETS"),
        ],
    );
}

#[test]
fn missing_or_bad_configuration_is_named() {
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &[],
        &["--webhook-id", "--target-url", "--secret-dir"],
    );
    hookline_testkit::assert_missing_config_is_named(
        BIN,
        &[
            "--webhook-id",
            "w",
            "--secret-dir",
            "/s",
            "--target-url",
            "handler:8080",
        ],
        &["http://"],
    );
}
