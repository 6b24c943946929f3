//! The reconciler, one stage per step, each in its own file:
//!
//! 1. [`observe`]: dereference the Webhook's Secret, referenced Secret and last
//!    registry entry;
//! 2. and 3. [`plan`]: validate them, then build everything the Webhook should be
//!    (pure, with the builders of `desired`);
//! 4. apply (this file): the signing Secret, the emitter's NetworkPolicy and the
//!    emitter Deployment with server-side apply, then the registry entry;
//! 5. [`status`]: the conditions and fields to report (pure), then the patch.
//!
//! Only stages 1, 4 and 5's patch, and `registry`, talk to the outside.

use hookline_core::ids::WebhookId;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use hookline_core::registry::RegistryEntry;
use hookline_core::signature::generate_standard_secret;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use thiserror::Error;

use crate::desired::{self, DesiredError, Settings, SigningKeys};
use crate::metrics::Metrics;
use crate::registry::{PublishError, RegistryPublisher};
use hookline_api::webhook::Webhook;

pub(crate) mod observe;
mod plan;
mod status;

use plan::{Decision, Plan, Refusal};

/// The one field manager for everything the operator applies.
pub const FIELD_MANAGER: &str = "hookline-operator";
/// Holds a Webhook until its registry entry is removed.
pub const FINALIZER: &str = "hookline.io/registry";

#[derive(Debug, Error)]
pub enum Error {
    #[error("Webhook {0} is not namespaced")]
    NotNamespaced(String),
    #[error(transparent)]
    Desired(#[from] DesiredError),
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Registry(#[from] PublishError),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// Whether the API server refused a write because the Webhook's namespace is being
    /// deleted: nothing can be written there any more, and the Webhook's own deletion,
    /// which runs its cleanup, follows.
    fn is_namespace_terminating(&self) -> bool {
        let source = match self {
            Self::Kube { source, .. } => source,
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => {
                    return inner.is_namespace_terminating();
                }
                finalizer::Error::AddFinalizer(source)
                | finalizer::Error::RemoveFinalizer(source) => source,
                _ => return false,
            },
            _ => return false,
        };
        matches!(source, kube::Error::Api(status) if status.code == 403
        && status.details.as_ref().is_some_and(|details| {
            details.causes.iter().any(|cause| cause.reason == "NamespaceTerminating")
        }))
    }

    fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub registry: Arc<RegistryPublisher>,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// Requeue interval when nothing is pending.
    pub resync: Duration,
    /// Consecutive failures per Webhook uid, for per-object backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The metadata of the Deployments the operator labelled as its own, kept by the
    /// running controller's watch: an emitter found there and owned needs no GET.
    owned_emitters: Mutex<Option<Store<PartialObjectMeta<Deployment>>>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        registry: Arc<RegistryPublisher>,
        metrics: Metrics,
        recorder: Recorder,
        resync: Duration,
    ) -> Self {
        Self {
            client,
            settings,
            registry,
            metrics,
            recorder,
            resync,
            failures: Mutex::default(),
            owned_emitters: Mutex::default(),
        }
    }

    /// The cache `observe` looks emitters up in first, from now on.
    pub fn set_owned_emitters(&self, store: Store<PartialObjectMeta<Deployment>>) {
        *self
            .owned_emitters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(store);
    }

    fn owned_emitters(&self) -> Option<Store<PartialObjectMeta<Deployment>>> {
        self.owned_emitters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Entry point for the controller.
pub async fn reconcile(webhook: Arc<Webhook>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = webhook
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(webhook.name_any()))?;
    let api: Api<Webhook> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, webhook.clone(), |event| async {
        match event {
            finalizer::Event::Apply(webhook) => apply(&webhook, &ctx).await,
            finalizer::Event::Cleanup(webhook) => cleanup(&webhook, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)));
    ctx.metrics.observe(result.is_ok(), started.elapsed());
    let uid = webhook.uid().unwrap_or_default();
    match &result {
        Ok(_) => {
            ctx.failures().remove(&uid);
        }
        Err(err) if err.is_namespace_terminating() => {
            tracing::debug!(webhook = %webhook.name_any(), %namespace, "namespace terminating");
        }
        Err(err) => {
            tracing::warn!(webhook = %webhook.name_any(), %namespace, error = %err, "reconcile failed");
            publish_event(
                &ctx,
                &webhook,
                EventType::Warning,
                "ReconcileFailed",
                err.to_string(),
            )
            .await;
        }
    }
    result
}

/// Backs off per Webhook: 1 s, 2 s, 4 s ... up to 5 minutes.
pub fn error_policy(webhook: Arc<Webhook>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_namespace_terminating() {
        return Action::await_change();
    }
    let uid = webhook.uid().unwrap_or_default();
    let mut failures = ctx.failures();
    let count = failures.entry(uid).or_insert(0);
    *count = count.saturating_add(1);
    Action::requeue(backoff(*count))
}

fn backoff(failures: u32) -> Duration {
    let seconds = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs(seconds.min(300))
}

async fn apply(webhook: &Webhook, ctx: &Context) -> Result<Action, Error> {
    let id = desired::webhook_id(webhook)?;
    let namespace = webhook
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(webhook.name_any()))?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed = observe::observe(webhook, &id, &secrets, ctx).await?;
    let target = Target {
        webhook,
        id: &id,
        namespace: &namespace,
    };
    match plan::plan(
        webhook,
        &observed,
        &ctx.settings,
        &id,
        Utc::now(),
        generate_standard_secret,
    )? {
        Decision::Serve(plan) => serve(&target, &plan, ctx).await,
        Decision::Refuse(refusal) => refuse(&target, refusal, &observed.children, ctx).await,
    }
}

/// The Webhook a reconcile is about: the object, its id and its namespace.
struct Target<'w> {
    webhook: &'w Webhook,
    id: &'w WebhookId,
    namespace: &'w str,
}

/// Applies nothing: a Webhook registered before keeps its last good secret, and senders
/// signing with it are still accepted, unless the refusal withdraws it. Reports why.
async fn refuse(
    target: &Target<'_>,
    refusal: Refusal,
    children: &observe::Children,
    ctx: &Context,
) -> Result<Action, Error> {
    let webhook = target.webhook;
    if refusal.withdraw {
        withdraw(target, children, ctx).await?;
    }
    let parts = status::refused_parts(&refusal);
    status::report(ctx, webhook, target.id, &parts, None).await?;
    publish_event(
        ctx,
        webhook,
        EventType::Warning,
        refusal.reason,
        refusal.message,
    )
    .await;
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Applies the plan's children, publishes its registry entry and reports both.
async fn serve(target: &Target<'_>, plan: &Plan, ctx: &Context) -> Result<Action, Error> {
    let webhook = target.webhook;
    let deployment = apply_children(target, plan, ctx).await?;
    if plan.rotated {
        publish_event(
            ctx,
            webhook,
            EventType::Normal,
            "SecretRotated",
            "the signing secret was rotated; the previous one stays valid for the grace period"
                .into(),
        )
        .await;
    }
    let registered = register(&plan.registry_entry, ctx).await;

    let replicas = status::EmitterReplicas {
        desired: plan.desired_replicas,
        ready: deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    };
    let parts = status::served_parts(
        &desired::signing_secret_name(webhook),
        registered.as_ref().map(|_| ()).map_err(ToString::to_string),
        replicas,
        webhook.spec.emitter.enabled,
    );
    let served = status::Served {
        replicas,
        keys: &plan.keys,
    };
    status::report(ctx, webhook, target.id, &parts, Some(served)).await?;
    registered?;
    Ok(Action::requeue(next_look(ctx.resync, &plan.keys)))
}

/// Applies the signing Secret, the emitter's NetworkPolicy and its Deployment; returns
/// the Deployment as applied.
async fn apply_children(
    target: &Target<'_>,
    plan: &Plan,
    ctx: &Context,
) -> Result<Deployment, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), target.namespace);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), target.namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), target.namespace);
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();
    let secret_name = desired::signing_secret_name(target.webhook);
    let emitter_name = desired::emitter_name(target.webhook);
    // The Secret and the Deployment do not wait for each other: a Pod waits for its
    // Secret volume by itself, and the Deployment appears one API round trip sooner.
    // The Deployment does wait for its NetworkPolicy: an emitter never runs without
    // its egress restriction, even when the policy cannot be written.
    let (secret_patch, emitter_patch) = (
        Patch::Apply(&plan.signing_secret),
        Patch::Apply(&plan.emitter),
    );
    // Every name was checked free or this Webhook's in `observe`: nothing here writes
    // into an object of someone else.
    let emitter = async {
        if let Some(policy) = &plan.emitter_network_policy {
            policies
                .patch(&emitter_name, &apply_params, &Patch::Apply(policy))
                .await
                .map_err(Error::kube(format!("apply NetworkPolicy {emitter_name}")))?;
        }
        if plan.delete_emitter_network_policy {
            delete_owned(&policies, &emitter_name, target.id)
                .await
                .map_err(Error::kube(format!("delete NetworkPolicy {emitter_name}")))?;
        }
        deployments
            .patch(&emitter_name, &apply_params, &emitter_patch)
            .await
            .map_err(Error::kube(format!("apply Deployment {emitter_name}")))
    };
    let (secret_applied, deployment) = tokio::join!(
        secrets.patch(&secret_name, &apply_params, &secret_patch),
        emitter,
    );
    secret_applied.map_err(Error::kube(format!("apply Secret {secret_name}")))?;
    deployment
}

/// Publishes `entry`, counting it when a record was sent.
async fn register(entry: &RegistryEntry, ctx: &Context) -> Result<(), PublishError> {
    if ctx.registry.publish(entry).await? {
        ctx.metrics.registry_publishes.inc();
    }
    Ok(())
}

/// Publishes the deletion record of `id`, counting it.
async fn unregister(id: &WebhookId, ctx: &Context) -> Result<(), PublishError> {
    ctx.registry.remove(id).await?;
    ctx.metrics.registry_publishes.inc();
    Ok(())
}

/// When to look at a served Webhook again: at the next (jittered) resync, or just after
/// its previous secret expires if that comes first.
fn next_look(resync: Duration, keys: &SigningKeys) -> Duration {
    let resync = jittered(resync);
    keys.previous_expires_at()
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .map_or(resync, |until| (until + Duration::from_secs(1)).min(resync))
}

/// `resync` give or take a tenth, drawn anew each time: Webhooks reconciled together (a
/// cold start) spread out over the following resyncs instead of coming back as one burst.
fn jittered(resync: Duration) -> Duration {
    let draw = std::hash::RandomState::new().hash_one(0u8) % 2001;
    // In thousandths of resync: 900 to 1,100.
    resync.mul_f64((900 + draw / 10) as f64 / 1000.0)
}

/// Deletes `name` only while it is still the object of this Webhook's uid `owner`: the
/// precondition is the uid read now, so an object someone re-created meanwhile stays.
async fn delete_owned<K>(api: &Api<K>, name: &str, owner: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(found) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    if observe::Occupant::of(&found.metadata, owner) != observe::Occupant::Owned {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: found.metadata.uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}

/// Stops serving a Webhook whose secret was withdrawn: its registry entry goes (the
/// handlers refuse its senders) and its emitter, when it is this Webhook's, scales to zero.
async fn withdraw(
    target: &Target<'_>,
    children: &observe::Children,
    ctx: &Context,
) -> Result<(), Error> {
    let Target {
        webhook,
        id,
        namespace,
    } = *target;
    let was_registered = webhook.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == crate::conditions::REGISTERED && c.status == "True")
    });
    if was_registered || ctx.registry.last_published(id).await.is_some() {
        unregister(id, ctx).await?;
    }
    if children.emitter == observe::Occupant::Owned {
        let name = desired::emitter_name(webhook);
        Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await
            .map_err(Error::kube(format!("scale Deployment {name} to zero")))?;
    }
    Ok(())
}

async fn cleanup(webhook: &Webhook, ctx: &Context) -> Result<Action, Error> {
    // The children go with the Webhook through their owner references; only the
    // registry entry lives outside the cluster.
    if let Ok(id) = desired::webhook_id(webhook) {
        unregister(&id, ctx).await?;
    }
    ctx.metrics.forget_webhook(
        &webhook.namespace().unwrap_or_default(),
        &webhook.name_any(),
    );
    publish_event(
        ctx,
        webhook,
        EventType::Normal,
        "Unregistered",
        "registry entry removed".into(),
    )
    .await;
    Ok(Action::await_change())
}

async fn publish_event(
    ctx: &Context,
    webhook: &Webhook,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &webhook.object_ref(&())).await {
        tracing::warn!(%err, reason, "cannot publish a Kubernetes Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    /// The API server's answer to a write into a namespace being deleted (as recorded),
    /// with the cause's reason `cause`.
    fn forbidden(cause: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "code": 403,
            "reason": "Forbidden",
            "message": "deployments.apps \"wh-emitter\" is forbidden: unable to create new content in namespace bench because it is being terminated",
            "details": {
                "name": "wh-emitter",
                "group": "apps",
                "kind": "deployments",
                "causes": [{"reason": cause, "message": "namespace bench is being terminated", "field": "metadata.namespace"}],
            },
        }))
        .expect("a Status");
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_write_refused_in_a_terminating_namespace_waits_for_the_webhooks_deletion() {
        let applying = |source| {
            Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(Error::Kube {
                action: "apply Deployment wh-emitter".into(),
                source,
            })))
        };
        assert!(applying(forbidden("NamespaceTerminating")).is_namespace_terminating());
        assert!(!applying(forbidden("FieldValueForbidden")).is_namespace_terminating());
        let adding = Error::Finalizer(Box::new(finalizer::Error::AddFinalizer(forbidden(
            "NamespaceTerminating",
        ))));
        assert!(adding.is_namespace_terminating());
        assert!(!Error::NotNamespaced("wh".into()).is_namespace_terminating());
    }

    #[test]
    fn resyncs_spread_over_a_tenth_either_side() {
        let resync = Duration::from_secs(300);
        let drawn: Vec<Duration> = (0..200).map(|_| jittered(resync)).collect();
        assert!(
            drawn
                .iter()
                .all(|d| (Duration::from_secs(270)..=Duration::from_secs(330)).contains(d)),
            "{drawn:?}"
        );
        let (early, late) = (
            drawn
                .iter()
                .filter(|d| **d < Duration::from_secs(295))
                .count(),
            drawn
                .iter()
                .filter(|d| **d > Duration::from_secs(305))
                .count(),
        );
        assert!(early > 20 && late > 20, "{early} early, {late} late of 200");
    }
}
