//! The recorded objects of `operator/tests/fixtures` and the settings the reconcile's
//! unit tests run with.

use hookline_api::webhook::Webhook;
use k8s_openapi::api::core::v1::Secret;

use crate::desired::Settings;
use crate::limits::Limits;

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

fn recorded<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_yaml::from_str(yaml).expect("a valid recorded object")
}

/// A generated-secret Webhook with two emitter replicas and a status.
pub fn invoices() -> Webhook {
    recorded(include_str!("../../tests/fixtures/webhook-generated.yaml"))
}

/// A Stripe Webhook whose secret comes from `secretRef`, emitter off.
pub fn from_stripe() -> Webhook {
    recorded(include_str!(
        "../../tests/fixtures/webhook-stripe-secretref.yaml"
    ))
}

/// The signing Secret the operator wrote for `invoices`.
pub fn signing_secret() -> Secret {
    recorded(include_str!("../../tests/fixtures/signing-secret.yaml"))
}

/// `from_stripe`'s Secret as `kubectl create secret --from-file` of an `echo`ed file.
pub fn stripe_secret_with_trailing_newline() -> Secret {
    recorded(include_str!(
        "../../tests/fixtures/stripe-secret-trailing-newline.yaml"
    ))
}
