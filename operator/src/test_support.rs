//! Test support, written once for the operator's unit tests and, through the feature
//! `test-support`, its tests under `tests/`: the settings and Webhooks tests build
//! again and again, and the recorded objects of `tests/fixtures`. Each builder returns
//! a complete, valid value; a test changes what it is about with struct update syntax:
//! `Settings { emitter_network_policy: false, ..test_support::settings() }`.

use hookline_api::webhook::{Webhook, WebhookSpec};
use k8s_openapi::api::core::v1::Secret;

use crate::desired::{Settings, SigningKeys};
use crate::limits::Limits;

/// The settings of a local stack: its handler's public address, the chart's limits,
/// emitter NetworkPolicies written.
pub fn settings() -> Settings {
    Settings {
        emitter_image: "hookline-emitter:test".into(),
        public_base_url: "http://127.0.0.1:18080".into(),
        in_cluster_handler_url: "http://hookline-handler.hookline.svc:8080".into(),
        limits: Limits::default(),
        emitter_network_policy: true,
        handler_pod_port: 8080,
    }
}

/// A spec of nothing but its customer: the CRD's defaults fill the rest.
pub fn spec() -> WebhookSpec {
    serde_json::from_value(serde_json::json!({"customerId": "ben@webhooksystem"}))
        .expect("defaults fill the rest")
}

/// The Webhook `shop/invoices` of `spec`, as read from the API server: uid `7f6c-uid`,
/// generation 4.
pub fn webhook(spec: WebhookSpec) -> Webhook {
    let mut webhook = Webhook::new("invoices", spec);
    webhook.metadata.namespace = Some("shop".into());
    webhook.metadata.uid = Some("7f6c-uid".into());
    webhook.metadata.generation = Some(4);
    webhook
}

/// Keys of one secret, `current`, never rotated.
pub fn signing_keys(current: &str) -> SigningKeys {
    SigningKeys {
        current: current.into(),
        previous: None,
        rotation_generation: 0,
        rotated_at: None,
    }
}

fn recorded<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_yaml::from_str(yaml).expect("a valid recorded object")
}

/// A generated-secret Webhook with two emitter replicas and a status.
pub fn invoices() -> Webhook {
    recorded(include_str!("../tests/fixtures/webhook-generated.yaml"))
}

/// A Stripe Webhook whose secret comes from `secretRef`, emitter off.
pub fn from_stripe() -> Webhook {
    recorded(include_str!(
        "../tests/fixtures/webhook-stripe-secretref.yaml"
    ))
}

/// The signing Secret the operator wrote for `invoices`.
pub fn signing_secret() -> Secret {
    recorded(include_str!("../tests/fixtures/signing-secret.yaml"))
}

/// `from_stripe`'s Secret as `kubectl create secret --from-file` of an `echo`ed file.
pub fn stripe_secret_with_trailing_newline() -> Secret {
    recorded(include_str!(
        "../tests/fixtures/stripe-secret-trailing-newline.yaml"
    ))
}
