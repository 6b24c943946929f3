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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use hookline_core::signature::generate_standard_secret;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use thiserror::Error;

use crate::desired::{self, DesiredError, Settings};
use crate::metrics::Metrics;
use crate::registry::{PublishError, RegistryPublisher};
use hookline_api::webhook::Webhook;

#[cfg(test)]
mod fixtures;
mod observe;
mod plan;
mod status;

use plan::Decision;

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
        }
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
pub fn error_policy(webhook: Arc<Webhook>, _error: &Error, ctx: Arc<Context>) -> Action {
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
    let now = Utc::now();
    let plan = match plan::plan(
        webhook,
        &observed,
        &ctx.settings,
        &id,
        now,
        generate_standard_secret,
    )? {
        Decision::Serve(plan) => plan,
        Decision::Refuse(refusal) => {
            // Nothing is applied: a Webhook registered before keeps its last good
            // secret, and senders signing with it are still accepted, unless the
            // refusal withdraws it.
            if refusal.withdraw {
                withdraw(webhook, &id, &namespace, &observed.children, ctx).await?;
            }
            let parts = status::refused_parts(&refusal);
            let report = status::status(webhook, &ctx.settings, &id, &parts, None, time_now());
            status::patch(ctx, webhook, report).await?;
            publish_event(
                ctx,
                webhook,
                EventType::Warning,
                refusal.reason,
                refusal.message,
            )
            .await;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };

    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();
    let secret_name = desired::signing_secret_name(webhook);
    let emitter_name = desired::emitter_name(webhook);
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
            delete_owned(&policies, &emitter_name, &id)
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
    let deployment = deployment?;
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
    let registered = match ctx.registry.publish(&plan.registry_entry).await {
        Ok(sent) => {
            if sent {
                ctx.metrics.registry_publishes.inc();
            }
            Ok(())
        }
        Err(err) => Err(err),
    };

    let replicas = status::EmitterReplicas {
        desired: plan.desired_replicas,
        ready: deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    };
    let parts = status::served_parts(
        &secret_name,
        registered.as_ref().map(|_| ()).map_err(ToString::to_string),
        replicas,
        webhook.spec.emitter.enabled,
    );
    let served = status::Served {
        replicas,
        keys: &plan.keys,
    };
    let report = status::status(
        webhook,
        &ctx.settings,
        &id,
        &parts,
        Some(served),
        time_now(),
    );
    status::patch(ctx, webhook, report).await?;
    registered?;

    let requeue = plan
        .keys
        .previous_expires_at()
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .map_or(ctx.resync, |until| {
            (until + Duration::from_secs(1)).min(ctx.resync)
        });
    Ok(Action::requeue(requeue))
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
    webhook: &Webhook,
    id: &str,
    namespace: &str,
    children: &observe::Children,
    ctx: &Context,
) -> Result<(), Error> {
    let was_registered = webhook.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == crate::conditions::REGISTERED && c.status == "True")
    });
    if was_registered || ctx.registry.last_published(id).await.is_some() {
        ctx.registry.remove(id).await?;
        ctx.metrics.registry_publishes.inc();
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

fn time_now() -> Time {
    Time(
        Timestamp::from_millisecond(Utc::now().timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

async fn cleanup(webhook: &Webhook, ctx: &Context) -> Result<Action, Error> {
    // The children go with the Webhook through their owner references; only the
    // registry entry lives outside the cluster.
    if let Ok(id) = desired::webhook_id(webhook) {
        ctx.registry.remove(&id).await?;
        ctx.metrics.registry_publishes.inc();
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
}
