//! The reconciler against the real API server: children, registry entries, status,
//! scaling, rotation, restoration of deleted children, deletion, validation and the
//! emitter's egress NetworkPolicy.

use std::time::Duration;

use hookline_api::webhook::Webhook;
use hookline_core::registry::{Keyring, RegistryEntry, RegistryUpdate};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::common::{self, Operator, RegistryReader, webhook};
use hookline_testkit::eventually;

const WAIT: Duration = Duration::from_secs(30);

fn upsert(update: &RegistryUpdate) -> &RegistryEntry {
    match update {
        RegistryUpdate::Upsert(entry) => entry,
        RegistryUpdate::Deleted { webhook_id } => panic!("{webhook_id} was deleted"),
    }
}

fn condition(webhook: &Webhook, kind: &str) -> Option<(String, String)> {
    webhook
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn condition_is(api: &Api<Webhook>, name: &str, kind: &str, status: &str) -> Option<Webhook> {
    let webhook = api.get(name).await.ok()?;
    (condition(&webhook, kind)?.0 == status).then_some(webhook)
}

async fn replicas(api: &Api<Deployment>, name: &str) -> Option<i32> {
    api.get_opt(name).await.ok()??.spec?.replicas
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

struct Fixture {
    client: Client,
    namespace: common::TestNamespace,
    operator: Operator,
    registry: RegistryReader,
    webhooks: Api<Webhook>,
    deployments: Api<Deployment>,
    secrets: Api<Secret>,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let client = common::client().await;
        common::install_crd(&client).await;
        let namespace = common::namespace(&client, prefix).await;
        let operator = Operator::start(&client, &namespace.name).await;
        let registry = operator.registry_reader();
        Self {
            webhooks: Api::namespaced(client.clone(), &namespace.name),
            deployments: Api::namespaced(client.clone(), &namespace.name),
            secrets: Api::namespaced(client.clone(), &namespace.name),
            client,
            namespace,
            operator,
            registry,
        }
    }

    async fn create(&self, webhook: &Webhook) -> String {
        self.webhooks
            .create(&PostParams::default(), webhook)
            .await
            .expect("create Webhook");
        let name = webhook.metadata.name.clone().expect("name");
        eventually("status.webhookId", WAIT, || async {
            self.webhooks.get(&name).await.ok()?.status?.webhook_id
        })
        .await
    }

    /// Deletes the Webhooks while the operator still runs (their finalizers need it),
    /// then stops it and deletes the namespace.
    async fn finish(self) {
        self.webhooks
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await
            .expect("delete the Webhooks");
        eventually("every Webhook finalized", WAIT, || async {
            let list = self.webhooks.list(&Default::default()).await.ok()?;
            list.items.is_empty().then_some(())
        })
        .await;
        self.operator.stop().await;
        self.namespace.delete().await;
    }
}

#[tokio::test]
async fn a_webhook_gets_its_children_registry_entry_and_honest_status() {
    let mut f = Fixture::new("lifecycle").await;
    let spec = json!({"customerId": "ben@webhooksystem", "emitter": {"replicas": 2}});
    let id = f.create(&webhook("invoices", spec)).await;

    let secret = eventually("signing Secret", WAIT, || async {
        f.secrets.get_opt("invoices-signing").await.ok()?
    })
    .await;
    let current = secret_text(&secret, "current").expect("current key");
    assert!(current.starts_with("whsec_"), "a Standard Webhooks secret");
    assert_eq!(replicas(&f.deployments, "invoices-emitter").await, Some(2));

    let entry = f.registry.wait_for(&id, WAIT, |_| true).await;
    let entry = upsert(&entry);
    assert_eq!(entry.customer_id, "ben@webhooksystem");
    assert_eq!(entry.secrets.len(), 1);
    assert_eq!(
        entry.secrets[0].value, current,
        "the registry carries the Secret's key"
    );
    assert_eq!(entry.namespace, f.namespace.name);

    // No kubelet runs the pods yet: registered, but the emitter is not available.
    let status = eventually("Registered without an available emitter", WAIT, || async {
        let w = condition_is(&f.webhooks, "invoices", "Registered", "True").await?;
        (condition(&w, "EmitterAvailable")?.0 == "False").then_some(w)
    })
    .await;
    assert_eq!(
        condition(&status, "SecretReady").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(
        condition(&status, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    let status = status.status.expect("status");
    assert_eq!(
        status.endpoint,
        Some(format!("https://hooks.example.test/webhooks/{id}"))
    );
    assert_eq!(status.observed_generation, Some(1));

    // Standing in for kubelets, the pods become ready; the condition follows.
    let selector = "app.kubernetes.io/component=emitter,hookline.io/webhook=invoices";
    eventually("two emitter pods", WAIT, || async {
        (common::mark_pods_ready(&f.client, &f.namespace.name, selector).await == 2).then_some(())
    })
    .await;
    let ready = eventually("Ready", WAIT, || async {
        condition_is(&f.webhooks, "invoices", "Ready", "True").await
    })
    .await;
    assert_eq!(
        ready.status.as_ref().map(|s| s.emitter_ready_replicas),
        Some(2)
    );

    // A spec change reaches the Deployment.
    f.webhooks
        .patch(
            "invoices",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"emitter": {"ratePerSecond": 50.0}}})),
        )
        .await
        .expect("change the rate");
    eventually("the new rate in the Deployment", WAIT, || async {
        let d = f.deployments.get("invoices-emitter").await.ok()?;
        let env = d.spec?.template.spec?.containers.first()?.env.clone()?;
        env.iter()
            .any(|e| e.name == "EMITTER_RATE_PER_SECOND" && e.value.as_deref() == Some("50"))
            .then_some(())
    })
    .await;

    // `kubectl scale webhook` goes through the scale subresource to the Deployment.
    let (ok, out) = common::kubectl(
        &[
            "scale",
            "webhook/invoices",
            "--replicas=3",
            "-n",
            &f.namespace.name,
        ],
        "",
    );
    assert!(ok, "kubectl scale webhook: {out}");
    eventually("3 emitter replicas", WAIT, || async {
        (replicas(&f.deployments, "invoices-emitter").await == Some(3)).then_some(())
    })
    .await;

    // Disabling the emitter scales it to zero, and that is not a failure.
    f.webhooks
        .patch(
            "invoices",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"emitter": {"enabled": false}}})),
        )
        .await
        .expect("disable the emitter");
    eventually("0 emitter replicas", WAIT, || async {
        (replicas(&f.deployments, "invoices-emitter").await == Some(0)).then_some(())
    })
    .await;
    let disabled = eventually("EmitterAvailable ScaledToZero", WAIT, || async {
        let w = f.webhooks.get("invoices").await.ok()?;
        (condition(&w, "EmitterAvailable")? == ("True".into(), "ScaledToZero".into())).then_some(w)
    })
    .await;
    assert_eq!(disabled.status.map(|s| s.emitter_replicas), Some(0));

    // A child deleted by hand is put back; a deleted signing Secret keeps its key.
    let old_uid = f
        .deployments
        .get("invoices-emitter")
        .await
        .expect("deployment")
        .metadata
        .uid;
    f.deployments
        .delete("invoices-emitter", &DeleteParams::default())
        .await
        .expect("delete the Deployment");
    f.secrets
        .delete("invoices-signing", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    eventually("the Deployment restored", WAIT, || async {
        let d = f.deployments.get_opt("invoices-emitter").await.ok()??;
        (d.metadata.uid != old_uid).then_some(())
    })
    .await;
    let restored = eventually("the Secret restored", WAIT, || async {
        f.secrets.get_opt("invoices-signing").await.ok()?
    })
    .await;
    assert_eq!(secret_text(&restored, "current"), Some(current));

    // Deleting the Webhook removes the registry entry; garbage collection takes the children.
    f.webhooks
        .delete("invoices", &DeleteParams::default())
        .await
        .expect("delete the Webhook");
    f.registry
        .wait_for(&id, WAIT, |u| matches!(u, RegistryUpdate::Deleted { .. }))
        .await;
    eventually("the Webhook gone", WAIT, || async {
        f.webhooks
            .get_opt("invoices")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("children collected", Duration::from_secs(60), || async {
        let deployment = f.deployments.get_opt("invoices-emitter").await.ok()?;
        let secret = f.secrets.get_opt("invoices-signing").await.ok()?;
        (deployment.is_none() && secret.is_none()).then_some(())
    })
    .await;
    f.finish().await;
}

/// The TCP ports of the policy's egress rules other than DNS's, and whether DNS (UDP and
/// TCP 53) is allowed.
fn egress_ports(policy: &NetworkPolicy) -> (bool, Vec<i32>) {
    let rules = policy
        .spec
        .as_ref()
        .and_then(|s| s.egress.clone())
        .unwrap_or_default();
    let mut dns = false;
    let mut ports = Vec::new();
    for rule in rules {
        assert!(rule.to.is_none(), "ports only: {rule:?}");
        let rule_ports = rule.ports.expect("a rule without ports allows every port");
        let numbers: Vec<(String, i32)> = rule_ports
            .iter()
            .map(|p| match (&p.protocol, &p.port) {
                (Some(protocol), Some(IntOrString::Int(n))) => (protocol.clone(), *n),
                other => panic!("unexpected port {other:?}"),
            })
            .collect();
        if numbers == [("UDP".to_owned(), 53), ("TCP".to_owned(), 53)] {
            dns = true;
        } else {
            assert!(numbers.iter().all(|(protocol, _)| protocol == "TCP"));
            ports.extend(numbers.into_iter().map(|(_, n)| n));
        }
    }
    (dns, ports)
}

#[tokio::test]
async fn the_emitter_may_leave_only_for_dns_and_its_targets_port() {
    let f = Fixture::new("egress").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(f.client.clone(), &f.namespace.name);
    let spec = json!({"customerId": "c", "url": "https://receiver.example.com/in"});
    f.create(&webhook("outbound", spec)).await;
    let webhook_uid = f
        .webhooks
        .get("outbound")
        .await
        .expect("Webhook")
        .metadata
        .uid
        .expect("uid");

    let policy = eventually("the emitter's NetworkPolicy", WAIT, || async {
        policies.get_opt("outbound-emitter").await.ok()?
    })
    .await;
    assert_eq!(egress_ports(&policy), (true, vec![443]), "https's port");
    let spec = policy.spec.as_ref().expect("spec");
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Egress".to_owned()][..])
    );
    let selector = spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .expect("a pod selector");
    let deployment = f
        .deployments
        .get("outbound-emitter")
        .await
        .expect("the emitter Deployment");
    let pod_labels = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .expect("pod labels");
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "selects the emitter's pods: {selector:?} vs {pod_labels:?}"
    );
    let owner = &policy.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Webhook", webhook_uid.as_str(), Some(true))
    );
    let managers: Vec<_> = policy
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(
        managers,
        [(Some("hookline-operator".into()), Some("Apply".into()))],
        "applied with the Deployment's field manager"
    );

    // A new port in spec.url moves the policy with it.
    f.webhooks
        .patch(
            "outbound",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"url": "http://receiver.example.com:8443/in"}})),
        )
        .await
        .expect("change the URL's port");
    eventually("the policy allows 8443 only", WAIT, || async {
        let policy = policies.get("outbound-emitter").await.ok()?;
        (egress_ports(&policy) == (true, vec![8443])).then_some(())
    })
    .await;

    // The default target, the handler Service: its port (8080 in these settings) and the
    // handler pods' (also 8080 here) are allowed.
    f.create(&webhook("inside", json!({"customerId": "c"})))
        .await;
    let inside = eventually("the default target's policy", WAIT, || async {
        policies.get_opt("inside-emitter").await.ok()?
    })
    .await;
    assert_eq!(egress_ports(&inside), (true, vec![8080]));

    // Garbage collection takes the policy with its Webhook.
    f.webhooks
        .delete("outbound", &DeleteParams::default())
        .await
        .expect("delete the Webhook");
    eventually("the policy collected", Duration::from_secs(60), || async {
        policies
            .get_opt("outbound-emitter")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn rotation_accepts_both_secrets_until_the_grace_period_ends() {
    let mut f = Fixture::new("rotation").await;
    let spec = json!({"customerId": "c", "secretRotation": {"gracePeriodSeconds": 4}});
    let id = f.create(&webhook("rotating", spec)).await;
    let first = f.registry.wait_for(&id, WAIT, |_| true).await;
    let old_secret = upsert(&first).secrets[0].value.clone();

    f.webhooks
        .patch(
            "rotating",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"secretRotation": {"generation": 1}}})),
        )
        .await
        .expect("ask for a rotation");
    let rotated = f
        .registry
        .wait_for(
            &id,
            WAIT,
            |u| matches!(u, RegistryUpdate::Upsert(e) if e.secrets.len() == 2),
        )
        .await;
    let rotated = upsert(&rotated);
    assert_ne!(rotated.secrets[0].value, old_secret, "a new current secret");
    assert_eq!(
        rotated.secrets[1].value, old_secret,
        "the old one during the grace period"
    );
    assert!(rotated.secrets[1].expires_at.is_some());
    let secret = f
        .secrets
        .get("rotating-signing")
        .await
        .expect("signing Secret");
    assert_eq!(
        secret_text(&secret, "previous"),
        Some(old_secret.clone()),
        "the emitter signs with both"
    );
    // The status is written after the registry entry is published.
    let status = eventually("the rotation in the status", WAIT, || async {
        let status = f.webhooks.get("rotating").await.ok()?.status?;
        (status.secret_rotation_generation == 1).then_some(status)
    })
    .await;
    assert!(status.last_secret_rotation.is_some());

    let after = f
        .registry
        .wait_for(
            &id,
            Duration::from_secs(20),
            |u| matches!(u, RegistryUpdate::Upsert(e) if e.secrets.len() == 1),
        )
        .await;
    assert_eq!(
        upsert(&after).secrets[0].value,
        rotated.secrets[0].value,
        "only the new one after"
    );
    let secret = f
        .secrets
        .get("rotating-signing")
        .await
        .expect("signing Secret");
    assert_eq!(secret_text(&secret, "previous"), None);
    f.finish().await;
}

#[tokio::test]
async fn a_missing_referenced_secret_is_reported_then_used_once_it_exists() {
    let mut f = Fixture::new("secretref").await;
    let spec = json!({"customerId": "c", "scheme": "github", "secretRef": {"name": "github-hook", "key": "token"}});
    f.webhooks
        .create(&PostParams::default(), &webhook("from-github", spec))
        .await
        .expect("create Webhook");
    let waiting = eventually("SecretNotFound", WAIT, || async {
        let w = f.webhooks.get("from-github").await.ok()?;
        (condition(&w, "SecretReady")? == ("False".into(), "SecretNotFound".into())).then_some(w)
    })
    .await;
    assert_eq!(
        condition(&waiting, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    let message = waiting
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "SecretReady")
        .unwrap()
        .message;
    assert!(
        message.contains("github-hook") && message.contains("token"),
        "{message}"
    );

    let mut secret = common::lent_secret();
    secret.metadata.name = Some("github-hook".into());
    secret.data = Some(
        [(
            "token".to_owned(),
            ByteString(b"It's a Secret to Everybody".to_vec()),
        )]
        .into(),
    );
    f.secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the referenced Secret");
    let ready = eventually("SecretReady", Duration::from_secs(60), || async {
        condition_is(&f.webhooks, "from-github", "SecretReady", "True").await
    })
    .await;
    let id = ready.status.and_then(|s| s.webhook_id).expect("webhook id");
    let entry = f.registry.wait_for(&id, WAIT, |_| true).await;
    let entry = upsert(&entry);
    assert_eq!(entry.secrets[0].value, "It's a Secret to Everybody");
    assert_eq!(entry.scheme.as_str(), "github");
    f.finish().await;
}

#[tokio::test]
async fn a_malformed_referenced_secret_keeps_the_webhook_not_ready_naming_the_problem() {
    let mut f = Fixture::new("badsecret").await;
    let standard_key = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    // (name, scheme, secret, what the condition must say, or None when usable)
    let cases: [(&str, &str, String, Option<&str>); 5] = [
        (
            "no-prefix",
            "standard",
            standard_key["whsec_".len()..].to_owned(),
            Some("must start with whsec_"),
        ),
        (
            "bad-base64",
            "standard",
            "whsec_not*base64!".to_owned(),
            Some("followed by base64"),
        ),
        (
            "stripe-newline",
            "stripe",
            "whsec_stripe-key\n".to_owned(),
            Some("whitespace"),
        ),
        (
            "slack-space",
            "slack",
            " 8f742231b10e8888abcd99yyyzzz85a5".to_owned(),
            Some("whitespace"),
        ),
        // Standard secrets are base64, where whitespace means nothing: trimmed, usable.
        (
            "standard-newline",
            "standard",
            format!("{standard_key}\n"),
            None,
        ),
    ];
    for (name, scheme, value, _) in &cases {
        let mut secret = common::lent_secret();
        secret.metadata.name = Some(format!("{name}-key"));
        secret.data = Some([("key".to_owned(), ByteString(value.clone().into_bytes()))].into());
        f.secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the referenced Secret");
        let spec = json!({
            "customerId": "c",
            "scheme": scheme,
            "secretRef": {"name": format!("{name}-key"), "key": "key"},
            "emitter": {"enabled": false},
        });
        f.webhooks
            .create(&PostParams::default(), &webhook(name, spec))
            .await
            .expect("create Webhook");
    }
    for (name, _, value, problem) in &cases {
        let Some(problem) = problem else {
            let ready = eventually("Ready", WAIT, || async {
                condition_is(&f.webhooks, name, "Ready", "True").await
            })
            .await;
            let id = ready.status.and_then(|s| s.webhook_id).expect("webhook id");
            f.registry.wait_for(&id, WAIT, |_| true).await;
            continue;
        };
        let refused = eventually("SecretInvalid", WAIT, || async {
            let w = f.webhooks.get(name).await.ok()?;
            (condition(&w, "SecretReady")? == ("False".into(), "SecretInvalid".into())).then_some(w)
        })
        .await;
        let conditions = refused.status.expect("status").conditions;
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "False", "{name}");
        let secret_ready = conditions
            .iter()
            .find(|c| c.type_ == "SecretReady")
            .expect("SecretReady");
        assert!(
            secret_ready.message.contains(problem)
                && secret_ready.message.contains(&format!("{name}-key")),
            "{name}: {}",
            secret_ready.message
        );
        assert!(
            !secret_ready.message.contains(value.trim()) && !ready.message.contains(value.trim()),
            "{name}: a condition shows the secret"
        );
        let registered = conditions
            .iter()
            .find(|c| c.type_ == "Registered")
            .expect("Registered");
        assert_eq!(
            registered.status, "False",
            "{name}: registered with an unusable secret"
        );
    }

    // Fixed in place, the Webhook becomes Ready with the fixed secret.
    let fixed = json!({"stringData": {"key": standard_key}});
    f.secrets
        .patch(
            "no-prefix-key",
            &PatchParams::default(),
            &Patch::Merge(&fixed),
        )
        .await
        .expect("fix the Secret");
    let ready = eventually("Ready after the fix", Duration::from_secs(60), || async {
        condition_is(&f.webhooks, "no-prefix", "Ready", "True").await
    })
    .await;
    let id = ready.status.and_then(|s| s.webhook_id).expect("webhook id");
    let entry = f.registry.wait_for(&id, WAIT, |_| true).await;
    assert_eq!(upsert(&entry).secrets[0].value, standard_key);
    f.finish().await;
}

#[tokio::test]
async fn invalid_webhooks_are_refused_by_the_api_server_naming_the_field() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let namespace = common::namespace(&client, "invalid").await;
    let cases = [
        (
            "spec.emitter.ratePerSecond",
            r#"{"customerId": "c", "emitter": {"ratePerSecond": 0}}"#,
        ),
        (
            "spec.emitter.ratePerSecond",
            r#"{"customerId": "c", "emitter": {"ratePerSecond": -1}}"#,
        ),
        (
            "spec.emitter.replicas",
            r#"{"customerId": "c", "emitter": {"replicas": -1}}"#,
        ),
        ("spec.url", r#"{"customerId": "c", "url": "not a url"}"#),
        (
            "spec.url",
            r#"{"customerId": "c", "url": "ftp://example.com/x"}"#,
        ),
        ("spec.scheme", r#"{"customerId": "c", "scheme": "md5"}"#),
        (
            "spec.delivery.retry",
            r#"{"customerId": "c", "delivery": {"retry": 50}}"#,
        ),
        (
            "spec.delivery.retry",
            r#"{"customerId": "c", "delivery": {"retry": -1}}"#,
        ),
        (
            "spec.delivery.maxBackoffDelayMs",
            r#"{"customerId": "c", "delivery": {"backoffDelayMs": 5000, "maxBackoffDelayMs": 1000}}"#,
        ),
        (
            "spec.delivery.backoffPolicy",
            r#"{"customerId": "c", "delivery": {"backoffPolicy": "random"}}"#,
        ),
        (
            "spec.rateLimit.requestsPerSecond",
            r#"{"customerId": "c", "rateLimit": {"requestsPerSecond": 0}}"#,
        ),
        (
            "spec.rateLimit.burst",
            r#"{"customerId": "c", "rateLimit": {"burst": -5}}"#,
        ),
        ("spec.customerId", r#"{"emitter": {"replicas": 1}}"#),
        ("spec.customerId", r#"{"customerId": ""}"#),
        (
            "spec.allowedSourceRanges",
            r#"{"customerId": "c", "allowedSourceRanges": ["10.0.0.300/8"]}"#,
        ),
        (
            "spec.secretRotation.gracePeriodSeconds",
            r#"{"customerId": "c", "secretRotation": {"gracePeriodSeconds": -1}}"#,
        ),
    ];
    for (field, spec) in cases {
        let manifest = format!(
            r#"{{"apiVersion": "hookline.io/v1alpha1", "kind": "Webhook", "metadata": {{"name": "bad", "namespace": "{}"}}, "spec": {spec}}}"#,
            namespace.name
        );
        let (ok, out) = common::kubectl(&["create", "--dry-run=server", "-f", "-"], &manifest);
        assert!(!ok, "the API server accepted {spec}");
        assert!(
            out.contains(field),
            "refusing {spec}, the error does not name {field}: {out}"
        );
    }
    let valid = format!(
        r#"{{"apiVersion": "hookline.io/v1alpha1", "kind": "Webhook", "metadata": {{"name": "good", "namespace": "{}"}}, "spec": {{"customerId": "c", "url": "https://example.com/in", "allowedSourceRanges": ["10.0.0.0/8"]}}}}"#,
        namespace.name
    );
    let (ok, out) = common::kubectl(&["create", "--dry-run=server", "-f", "-"], &valid);
    assert!(ok, "a valid Webhook was refused: {out}");
    namespace.delete().await;
}

#[tokio::test]
async fn the_registry_topic_holds_no_secret_and_a_rotation_reseals_every_entry() {
    let mut f = Fixture::new("sealed").await;
    let first = f
        .create(&webhook("orders", json!({"customerId": "c1"})))
        .await;
    let second = f
        .create(&webhook("refunds", json!({"customerId": "c2"})))
        .await;
    let mut keys = Vec::new();
    for (name, id) in [("orders", &first), ("refunds", &second)] {
        let secret = eventually("signing Secret", WAIT, || async {
            f.secrets.get_opt(&format!("{name}-signing")).await.ok()?
        })
        .await;
        keys.push(secret_text(&secret, "current").expect("current key"));
        let entry = f.registry.wait_for(id, WAIT, |_| true).await;
        assert_eq!(upsert(&entry).secrets[0].value, keys[keys.len() - 1]);
    }
    let secret_bytes = |key: &str| key.trim_start_matches("whsec_").to_owned();
    let in_clear = |values: &[Vec<u8>]| {
        values.iter().any(|value| {
            let text = String::from_utf8_lossy(value);
            keys.iter().any(|key| text.contains(&secret_bytes(key)))
        })
    };
    assert!(!f.registry.raw_values.is_empty());
    assert!(
        !in_clear(&f.registry.raw_values),
        "a signing secret is readable on the registry topic"
    );

    // Rotate: the old key stays in the keyring, the new one becomes primary, and the
    // operator re-seals both entries under it without anyone touching the Webhooks.
    assert_eq!(f.operator.keys.borrow().primary_id(), "k1");
    let new_key = Keyring::generate_key();
    let rotated = Keyring::new(
        "k2",
        [
            ("k1", f.operator.first_key.as_str()),
            ("k2", new_key.as_str()),
        ],
    )
    .expect("a keyring");
    f.operator.keys.send_replace(std::sync::Arc::new(rotated));
    for id in [&first, &second] {
        f.registry.wait_for_key(id, "k2", WAIT).await;
    }
    eventually("no entry left under the old key", WAIT, || async {
        (f.operator
            .metrics
            .registry_entries_sealed_with_old_key
            .get()
            == 0)
            .then_some(())
    })
    .await;
    // Only the new key is needed now: a reader holding k2 alone opens the newest entries.
    let only_new = Keyring::new("k2", [("k2", new_key.as_str())]).expect("a keyring");
    let newest = f.registry.raw_values.last().expect("a record").clone();
    let newest_id: serde_json::Value = serde_json::from_slice(&newest).expect("JSON");
    let newest_id = newest_id["webhookId"].as_str().expect("id").to_owned();
    let opened =
        hookline_core::registry::decode(Some(newest_id.as_bytes()), Some(&newest), Some(&only_new))
            .expect("the newest entry opens with the new key alone");
    assert!(matches!(opened.update, RegistryUpdate::Upsert(e) if !e.secrets.is_empty()));
    assert!(!in_clear(&f.registry.raw_values));
    f.finish().await;
}
