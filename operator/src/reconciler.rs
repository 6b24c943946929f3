//! The reconciler: reads the world, asks the pure builders in `desired` what it should
//! be, applies that with server-side apply, publishes the registry entry and reports
//! status conditions. Only this module and `registry` talk to the outside.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use hookline_core::signature::{SigningSecret, generate_standard_secret};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use thiserror::Error;

use crate::conditions::{self, EMITTER_AVAILABLE, PartState, REGISTERED, SECRET_READY};
use crate::desired::{self, DesiredError, Settings, SigningKeys};
use crate::metrics::Metrics;
use crate::registry::{PublishError, RegistryPublisher};
use hookline_api::webhook::{Webhook, WebhookStatus};

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
    pub registry: RegistryPublisher,
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
        registry: RegistryPublisher,
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
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();

    let secret_name = desired::signing_secret_name(webhook);
    let stored = secrets
        .get_opt(&secret_name)
        .await
        .map_err(Error::kube(format!("read Secret {secret_name}")))?
        .and_then(|secret| SigningKeys::from_secret(&secret));
    let stored = match stored {
        Some(keys) => Some(keys),
        None => {
            let rotation_generation = webhook
                .status
                .as_ref()
                .map_or(0, |s| s.secret_rotation_generation);
            ctx.registry
                .last_published(&id)
                .await
                .and_then(|entry| SigningKeys::from_registry_entry(&entry, rotation_generation))
        }
    };
    let referenced = match &webhook.spec.secret_ref {
        None => None,
        Some(reference) => {
            let value = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube(format!("read Secret {}", reference.name)))?
                .and_then(|secret| secret.data)
                .and_then(|data| data.get(&reference.key).cloned())
                .and_then(|bytes| String::from_utf8(bytes.0).ok())
                .filter(|value| !value.is_empty());
            let refusal = match &value {
                None => Some((
                    "SecretNotFound",
                    format!(
                        "Secret {:?} has no non-empty key {:?}: create it or fix spec.secretRef",
                        reference.name, reference.key
                    ),
                )),
                Some(value) => SigningSecret::parse(webhook.spec.scheme, value)
                    .err()
                    .map(|err| {
                        (
                            "SecretInvalid",
                            format!(
                                "key {:?} of Secret {:?} is not a usable {} secret: {err}",
                                reference.key, reference.name, webhook.spec.scheme
                            ),
                        )
                    }),
            };
            if let Some((reason, message)) = refusal {
                // The last published registry entry (if any) stays: senders signing
                // with the previous secret are still accepted until this is fixed.
                let waiting = PartState::unmet("WaitingForSecret", "waits for the signing secret");
                let parts = [
                    (SECRET_READY, PartState::unmet(reason, message.clone())),
                    (REGISTERED, waiting.clone()),
                    (EMITTER_AVAILABLE, waiting),
                ];
                patch_status(ctx, webhook, &id, &parts, None).await?;
                publish_event(ctx, webhook, EventType::Warning, reason, message).await;
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
            value
        }
    };
    let now = Utc::now();
    let keys = desired::next_signing_keys(
        &webhook.spec,
        stored.clone(),
        referenced.as_deref(),
        now,
        generate_standard_secret,
    );
    let rotated = stored.as_ref().is_some_and(|s| s.current != keys.current);
    // The Secret and the Deployment do not wait for each other: a Pod waits for its
    // Secret volume by itself, and the Deployment appears one API round trip sooner.
    let emitter_name = desired::emitter_name(webhook);
    let secret = Patch::Apply(desired::signing_secret(webhook, &keys)?);
    let emitter = Patch::Apply(desired::emitter_deployment(webhook, &ctx.settings, &id)?);
    let (secret_applied, deployment) = tokio::join!(
        secrets.patch(&secret_name, &apply_params, &secret),
        deployments.patch(&emitter_name, &apply_params, &emitter),
    );
    secret_applied.map_err(Error::kube(format!("apply Secret {secret_name}")))?;
    let deployment = deployment.map_err(Error::kube(format!("apply Deployment {emitter_name}")))?;
    if rotated {
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

    let entry = desired::registry_entry(webhook, &ctx.settings, &id, &keys, now);
    let registered = match ctx.registry.publish(&entry).await {
        Ok(sent) => {
            if sent {
                ctx.metrics.registry_publishes.inc();
            }
            Ok(())
        }
        Err(err) => Err(err),
    };

    let spec = &webhook.spec;
    let desired_replicas = desired::emitter_replicas(spec);
    let ready_replicas = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let parts = [
        (
            SECRET_READY,
            PartState::met(
                "SecretApplied",
                format!("signing secret in Secret {secret_name}"),
            ),
        ),
        (
            REGISTERED,
            match &registered {
                Ok(()) => PartState::met("Published", "the handler and consumer know this webhook"),
                Err(err) => PartState::unmet("RegistryUnavailable", err.to_string()),
            },
        ),
        (
            EMITTER_AVAILABLE,
            conditions::emitter_state(desired_replicas, ready_replicas, spec.emitter.enabled),
        ),
    ];
    let replicas = Some((desired_replicas, ready_replicas, &keys));
    patch_status(ctx, webhook, &id, &parts, replicas).await?;
    registered?;

    let now = Utc::now();
    let requeue = keys
        .previous_expires_at()
        .and_then(|at| (at - now).to_std().ok())
        .map_or(ctx.resync, |until| {
            (until + Duration::from_secs(1)).min(ctx.resync)
        });
    Ok(Action::requeue(requeue))
}

async fn cleanup(webhook: &Webhook, ctx: &Context) -> Result<Action, Error> {
    // The children go with the Webhook through their owner references; only the
    // registry entry lives outside the cluster.
    if let Ok(id) = desired::webhook_id(webhook) {
        ctx.registry.remove(&id).await?;
        ctx.metrics.registry_publishes.inc();
    }
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

async fn patch_status(
    ctx: &Context,
    webhook: &Webhook,
    id: &str,
    parts: &[(&'static str, PartState)],
    replicas: Option<(i32, i32, &SigningKeys)>,
) -> Result<(), Error> {
    let previous = webhook.status.clone().unwrap_or_default();
    let generation = webhook.metadata.generation.unwrap_or(0);
    let now = Time(
        Timestamp::from_millisecond(Utc::now().timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH),
    );
    let (desired_replicas, ready_replicas) = replicas
        .map(|(d, r, _)| (d, r))
        .unwrap_or((previous.emitter_replicas, previous.emitter_ready_replicas));
    let status = WebhookStatus {
        conditions: conditions::conditions(&previous.conditions, parts, generation, now),
        observed_generation: Some(generation),
        webhook_id: Some(id.to_owned()),
        endpoint: Some(desired::endpoint(&ctx.settings, id)),
        emitter_replicas: desired_replicas,
        emitter_ready_replicas: ready_replicas,
        emitter_replicas_text: Some(format!("{ready_replicas}/{desired_replicas}")),
        emitter_selector: Some(desired::selector_string(webhook)),
        secret_rotation_generation: replicas
            .map_or(previous.secret_rotation_generation, |(_, _, keys)| {
                keys.rotation_generation
            }),
        last_secret_rotation: replicas
            .and_then(|(_, _, keys)| keys.rotated_at)
            .map(|at| at.to_rfc3339())
            .or(previous.last_secret_rotation),
    };
    let namespace = webhook.namespace().unwrap_or_default();
    let api: Api<Webhook> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": Webhook::api_version(&()),
        "kind": Webhook::kind(&()),
        "status": status,
    });
    api.patch_status(
        &webhook.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::kube(format!(
        "update the status of Webhook {}",
        webhook.name_any()
    )))?;
    Ok(())
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
