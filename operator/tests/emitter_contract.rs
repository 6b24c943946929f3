//! The operator-to-emitter contract (`hookline_api::emitter`), checked from both ends:
//! the environment the operator writes into an emitter's Deployment is parsed by the
//! emitter's own command line, every variable is one the emitter reads, and the
//! signing Secret the operator writes, laid out as the mounted files, is loaded by the
//! emitter. Renaming a variable or a key on one side only fails here.

use chrono::{TimeZone, Utc};
use clap::{CommandFactory, Parser};
use hookline_api::webhook::Webhook;
use hookline_core::signature::{Scheme, generate_standard_secret};
use hookline_emitter::config::Config;
use hookline_emitter::secrets::SigningKeys as EmitterKeys;
use hookline_operator::desired::{self, SigningKeys};
use hookline_operator::test_support::{self, settings};
use serde_json::json;

fn webhook(spec: serde_json::Value) -> Webhook {
    test_support::webhook(serde_json::from_value(spec).expect("valid spec"))
}

#[test]
fn the_emitter_parses_every_variable_the_operator_sets() {
    let webhook = webhook(json!({
        "customerId": "c",
        "scheme": "stripe",
        "emitter": {"ratePerSecond": 2.5, "eventTypes": ["PAID", "FAILED"]},
        "delivery": {"retry": 7, "backoffPolicy": "linear", "backoffDelayMs": 250, "maxBackoffDelayMs": 9000},
    }));
    let deployment =
        desired::emitter_deployment(&webhook, &settings(), "7f6c-uid").expect("deployment");
    let container = &deployment
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    let command = Config::command();
    let mut args = vec!["hookline-emitter".to_owned()];
    for var in container.env.as_ref().expect("env") {
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == var.name.as_str()))
            .and_then(|arg| arg.get_long())
            .unwrap_or_else(|| panic!("the emitter reads no variable {}", var.name));
        args.push(format!(
            "--{flag}={}",
            var.value.as_deref().unwrap_or_default()
        ));
    }
    let config = Config::try_parse_from(&args)
        .unwrap_or_else(|err| panic!("the emitter refuses what the operator sets: {err}"));
    assert_eq!(config.webhook_id, "7f6c-uid");
    assert_eq!(config.scheme, Scheme::Stripe);
    assert_eq!(config.rate_per_second, 2.5);
    assert_eq!(config.event_types, ["PAID", "FAILED"]);
    let policy = config.delivery_policy().expect("policy");
    assert_eq!(
        (
            policy.retries,
            policy.backoff_delay_ms,
            policy.max_backoff_delay_ms
        ),
        (7, 250, 9000)
    );
    assert_eq!(
        config.target_url,
        "http://hookline-handler.hookline.svc:8080/webhooks/7f6c-uid"
    );
}

#[test]
fn the_emitter_loads_the_signing_secret_the_operator_writes() {
    let webhook = webhook(json!({"customerId": "c"}));
    let keys = SigningKeys {
        current: generate_standard_secret(),
        previous: Some((
            generate_standard_secret(),
            Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0).unwrap(),
        )),
        rotation_generation: 1,
        rotated_at: None,
    };
    let secret = desired::signing_secret(&webhook, &keys).expect("secret");
    let dir = std::env::temp_dir().join(hookline_testkit::unique_name("emitter-contract"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (key, value) in secret.data.expect("data") {
        std::fs::write(dir.join(key), value.0).expect("write a mounted file");
    }
    let loaded = EmitterKeys::load(&dir, Scheme::Standard).expect("the emitter loads it");
    assert_eq!(loaded.secrets().len(), 2, "current and previous");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
