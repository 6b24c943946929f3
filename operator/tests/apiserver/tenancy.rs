//! A tenant who may create Webhooks cannot turn the operator against objects or Secrets
//! that are not theirs to give: names already taken are left alone, a Secret is used only
//! when it is lent, and the admin's limits hold without an admission policy.

use std::collections::BTreeMap;
use std::time::Duration;

use hookline_api::webhook::{LENT_SECRET_LABEL, Webhook};
use hookline_core::registry::RegistryUpdate;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::common::{self, Operator, webhook};
use hookline_operator::desired::Settings;
use hookline_testkit::eventually;

const WAIT: Duration = Duration::from_secs(30);

/// The condition `kind` of Webhook `name` as (status, reason, message).
async fn condition(api: &Api<Webhook>, name: &str, kind: &str) -> Option<(String, String, String)> {
    let webhook = api.get(name).await.ok()?;
    let found = webhook
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == kind)?;
    Some((found.status, found.reason, found.message))
}

/// Waits until condition `kind` of `name` is False with `reason`; returns its message.
async fn refused_with(api: &Api<Webhook>, name: &str, kind: &str, reason: &str) -> String {
    eventually(&format!("{name}: {kind}=False {reason}"), WAIT, || async {
        let (status, found, message) = condition(api, name, kind).await?;
        (status == "False" && found == reason).then_some(message)
    })
    .await
}

/// Everything of an object a write would change: its resourceVersion moves on any write,
/// and the rest is compared as the server returns it.
fn untouched<K: serde::Serialize>(object: &K) -> serde_json::Value {
    serde_json::to_value(object).expect("serializable object")
}

fn victim_policy(name: &str) -> NetworkPolicy {
    let mut policy = NetworkPolicy {
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_owned(), "payments".to_owned())])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            ..NetworkPolicySpec::default()
        }),
        ..NetworkPolicy::default()
    };
    policy.metadata.name = Some(name.into());
    policy
}

struct Tenant {
    client: Client,
    namespace: common::TestNamespace,
    webhooks: Api<Webhook>,
    secrets: Api<Secret>,
    policies: Api<NetworkPolicy>,
    deployments: Api<Deployment>,
}

impl Tenant {
    async fn new(prefix: &str) -> Self {
        let client = common::client().await;
        common::install_crd(&client).await;
        let namespace = common::namespace(&client, prefix).await;
        Self {
            webhooks: Api::namespaced(client.clone(), &namespace.name),
            secrets: Api::namespaced(client.clone(), &namespace.name),
            policies: Api::namespaced(client.clone(), &namespace.name),
            deployments: Api::namespaced(client.clone(), &namespace.name),
            client,
            namespace,
        }
    }

    async fn create(&self, name: &str, spec: serde_json::Value) {
        self.webhooks
            .create(&PostParams::default(), &webhook(name, spec))
            .await
            .expect("create Webhook");
    }

    async fn delete_and_wait(&self, name: &str) {
        self.webhooks
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete Webhook");
        eventually(&format!("Webhook {name} gone"), WAIT, || async {
            self.webhooks
                .get_opt(name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn objects_of_someone_else_survive_a_webhook_named_after_them() {
    let t = Tenant::new("conflict").await;
    let pp = PostParams::default();
    let mut secret = Secret::default();
    secret.metadata.name = Some("victim-signing".into());
    secret.data = Some(BTreeMap::from([(
        "password".to_owned(),
        ByteString(b"the payments team's".to_vec()),
    )]));
    let secret = t.secrets.create(&pp, &secret).await.expect("victim Secret");
    let policy = t
        .policies
        .create(&pp, &victim_policy("victim-emitter"))
        .await
        .expect("victim NetworkPolicy");
    let lone_policy = t
        .policies
        .create(&pp, &victim_policy("bystander-emitter"))
        .await
        .expect("bystander NetworkPolicy");
    let operator = Operator::start(&t.client, &t.namespace.name).await;

    t.create("victim", json!({"customerId": "c"})).await;
    t.create("bystander", json!({"customerId": "c"})).await;
    let message = refused_with(&t.webhooks, "victim", "Ready", "NameConflict").await;
    assert!(
        message.starts_with("Secret \"victim-signing\" already exists"),
        "{message}"
    );
    let message = refused_with(&t.webhooks, "bystander", "Ready", "NameConflict").await;
    assert!(
        message.starts_with("NetworkPolicy \"bystander-emitter\" already exists"),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.namespace.name);
    eventually("a Warning Event NameConflict", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("NameConflict") && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;

    // An update of the Webhook is refused the same way.
    t.webhooks
        .patch(
            "victim",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"emitter": {"replicas": 2}}})),
        )
        .await
        .expect("patch Webhook");
    eventually("the update seen and still refused", WAIT, || async {
        let w = t.webhooks.get("victim").await.ok()?;
        let status = w.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.observed_generation == w.metadata.generation && ready.reason == "NameConflict")
            .then_some(())
    })
    .await;
    assert!(
        t.deployments
            .get_opt("victim-emitter")
            .await
            .expect("read")
            .is_none(),
        "nothing of the refused Webhook was made"
    );
    assert!(
        t.secrets
            .get_opt("bystander-signing")
            .await
            .expect("read")
            .is_none(),
        "nothing of the refused Webhook was made"
    );

    t.delete_and_wait("victim").await;
    t.delete_and_wait("bystander").await;
    operator.stop().await;
    // Garbage collection would have taken them by now had an owner reference been added;
    // without a controller-manager here the resourceVersion and contents say it instead.
    for (before, after) in [
        (
            untouched(&secret),
            untouched(&t.secrets.get("victim-signing").await.expect("still there")),
        ),
        (
            untouched(&policy),
            untouched(&t.policies.get("victim-emitter").await.expect("still there")),
        ),
        (
            untouched(&lone_policy),
            untouched(
                &t.policies
                    .get("bystander-emitter")
                    .await
                    .expect("still there"),
            ),
        ),
    ] {
        assert_eq!(before, after, "an object of someone else was written");
    }
    t.namespace.delete().await;
}

#[tokio::test]
async fn a_secret_is_used_only_while_it_is_lent() {
    let t = Tenant::new("lent").await;
    let operator = Operator::start(&t.client, &t.namespace.name).await;
    let mut registry = operator.registry_reader();
    let mut secret = Secret::default();
    secret.metadata.name = Some("team-key".into());
    secret.data = Some(BTreeMap::from([(
        "key".to_owned(),
        ByteString(b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_vec()),
    )]));
    let pp = PostParams::default();
    t.secrets.create(&pp, &secret).await.expect("Secret");
    t.create(
        "borrower",
        json!({"customerId": "c", "secretRef": {"name": "team-key", "key": "key"}}),
    )
    .await;
    let message = refused_with(&t.webhooks, "borrower", "SecretReady", "SecretNotLent").await;
    assert!(
        message.contains("\"team-key\"") && message.contains("hookline.io/webhook-secret=true"),
        "{message}"
    );
    assert_eq!(
        condition(&t.webhooks, "borrower", "Ready")
            .await
            .map(|c| (c.0, c.1)),
        Some(("False".into(), "SecretNotLent".into()))
    );
    assert!(
        t.deployments
            .get_opt("borrower-emitter")
            .await
            .expect("read")
            .is_none(),
        "no emitter signs with a Secret not lent"
    );
    assert!(
        t.secrets
            .get_opt("borrower-signing")
            .await
            .expect("read")
            .is_none(),
        "no copy of a Secret not lent"
    );

    // Its owner lends it: the Webhook is served without being edited (its secret and
    // registry entry; Ready waits for emitter pods, which no kubelet runs here).
    let label = |value: Option<&str>| {
        Patch::Merge(json!({"metadata": {"labels": {LENT_SECRET_LABEL: value}}}))
    };
    t.secrets
        .patch("team-key", &PatchParams::default(), &label(Some("true")))
        .await
        .expect("label the Secret");
    eventually("SecretReady and Registered once lent", WAIT, || async {
        let (secret, ..) = condition(&t.webhooks, "borrower", "SecretReady").await?;
        let (registered, ..) = condition(&t.webhooks, "borrower", "Registered").await?;
        (secret == "True" && registered == "True").then_some(())
    })
    .await;
    let id = t
        .webhooks
        .get("borrower")
        .await
        .expect("Webhook")
        .status
        .and_then(|s| s.webhook_id)
        .expect("webhook id");
    let entry = registry
        .wait_for(&id, WAIT, |u| matches!(u, RegistryUpdate::Upsert(_)))
        .await;
    let RegistryUpdate::Upsert(entry) = entry else {
        unreachable!("accepted only an upsert")
    };
    assert_eq!(
        entry.secrets[0].value,
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    );
    eventually("the emitter runs", WAIT, || async {
        let d = t.deployments.get_opt("borrower-emitter").await.ok()??;
        (d.spec?.replicas? == 1).then_some(())
    })
    .await;

    // Taking the loan back withdraws the Webhook: registry entry removed, emitter at zero.
    t.secrets
        .patch("team-key", &PatchParams::default(), &label(None))
        .await
        .expect("unlabel the Secret");
    refused_with(&t.webhooks, "borrower", "SecretReady", "SecretNotLent").await;
    registry
        .wait_for(&id, WAIT, |u| matches!(u, RegistryUpdate::Deleted { .. }))
        .await;
    eventually("the emitter scaled to zero", WAIT, || async {
        let d = t.deployments.get_opt("borrower-emitter").await.ok()??;
        (d.spec?.replicas? == 0).then_some(())
    })
    .await;

    t.delete_and_wait("borrower").await;
    operator.stop().await;
    t.namespace.delete().await;
}

#[tokio::test]
async fn the_operator_holds_the_admins_limits_without_an_admission_policy() {
    let t = Tenant::new("limits").await;
    let operator = Operator::start(&t.client, &t.namespace.name).await;
    for (name, spec, field, limit) in [
        (
            "many-emitters",
            json!({"customerId": "c", "emitter": {"replicas": 50}}),
            "spec.emitter.replicas is 50",
            "limits.maxEmitterReplicas",
        ),
        (
            "fast-emitter",
            json!({"customerId": "c", "emitter": {"ratePerSecond": 5000.0}}),
            "spec.emitter.ratePerSecond is 5000",
            "limits.maxEmitterRatePerSecond",
        ),
        (
            "unlimited",
            json!({"customerId": "c", "rateLimit": {"requestsPerSecond": 1000000, "burst": 1000000}}),
            "spec.rateLimit.requestsPerSecond is 1000000",
            "limits.maxRateLimitPerSecond",
        ),
        (
            "inward",
            json!({"customerId": "c", "url": "http://10.0.0.1/in", "emitter": {"allowPrivateTargets": true}}),
            "spec.emitter.allowPrivateTargets is true",
            "limits.allowPrivateTargets",
        ),
    ] {
        t.create(name, spec).await;
        let message = refused_with(&t.webhooks, name, "Ready", "LimitExceeded").await;
        assert!(
            message.contains(field) && message.contains(limit),
            "{name}: {message}"
        );
        assert!(
            t.deployments
                .get_opt(&format!("{name}-emitter"))
                .await
                .expect("read")
                .is_none(),
            "{name}: nothing is made over the limits"
        );
    }
    // Brought within the limits, it is served.
    t.webhooks
        .patch(
            "many-emitters",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"emitter": {"replicas": 2}}})),
        )
        .await
        .expect("patch Webhook");
    eventually("Registered within the limits", WAIT, || async {
        let (status, ..) = condition(&t.webhooks, "many-emitters", "Registered").await?;
        (status == "True").then_some(())
    })
    .await;
    for name in ["many-emitters", "fast-emitter", "unlimited", "inward"] {
        t.delete_and_wait(name).await;
    }
    operator.stop().await;
    t.namespace.delete().await;
}

#[tokio::test]
async fn an_emitter_policy_no_longer_wanted_is_deleted_only_when_owned() {
    let t = Tenant::new("policyoff").await;
    let operator = Operator::start(&t.client, &t.namespace.name).await;
    t.create("owned", json!({"customerId": "c"})).await;
    eventually("the owned emitter policy", WAIT, || async {
        t.policies.get_opt("owned-emitter").await.ok()?.map(|_| ())
    })
    .await;
    operator.stop().await;
    let foreign = t
        .policies
        .create(&PostParams::default(), &victim_policy("foreign-emitter"))
        .await
        .expect("someone else's NetworkPolicy");

    let without_policies = Settings {
        emitter_network_policy: false,
        ..common::settings()
    };
    let operator = Operator::start_with(&t.client, &t.namespace.name, without_policies).await;
    t.create("foreign", json!({"customerId": "c"})).await;
    eventually("the owned policy deleted", WAIT, || async {
        t.policies
            .get_opt("owned-emitter")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually(
        "the Webhook beside a foreign policy is served",
        WAIT,
        || async {
            let (status, ..) = condition(&t.webhooks, "foreign", "Registered").await?;
            (status == "True").then_some(())
        },
    )
    .await;
    assert_eq!(
        untouched(&foreign),
        untouched(
            &t.policies
                .get("foreign-emitter")
                .await
                .expect("still there")
        ),
        "a policy the operator does not write is not its to delete"
    );
    t.delete_and_wait("owned").await;
    t.delete_and_wait("foreign").await;
    operator.stop().await;
    t.namespace.delete().await;
}
