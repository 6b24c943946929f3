//! Wires the operator together on the service skeleton: topics, leader election, the
//! controller, the operational endpoints; runs until SIGTERM or until leadership is lost.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hookline_api::topics;
use hookline_core::registry::KeyringError;
use hookline_runtime::kafka::{self, KafkaConnection, KafkaSettingsError};
use hookline_runtime::keyring_files;
use hookline_runtime::ops::Readiness;
use hookline_runtime::registry_view::{self, FollowError, RegistryView};
use hookline_runtime::service::{OpsBindError, RunningService, Service, bind_ops};
use hookline_runtime::shutdown::Shutdown;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{
    Controller, Predicate, PredicateConfig, WatchStreamExt, controller, predicates, reflector,
    watcher,
};
use kube::{Api, Client};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::config::RunArgs;
use crate::leader::LeaseLock;
use crate::metrics::Metrics;
use crate::reconcile::{self, Context};
use crate::registry::{PublishError, RegistryPublisher};
use hookline_api::webhook::{LENT_SECRET_LABEL, Webhook};

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot configure the Kubernetes client: {0}")]
    Kube(#[source] kube::Error),
    #[error("the Kubernetes API server did not answer: {0}")]
    ApiServer(#[source] kube::Error),
    #[error("the Webhook CRD is not installed (kubectl apply -f crds/webhook.yaml): {0}")]
    CrdMissing(#[source] kube::Error),
    #[error(transparent)]
    Registry(#[from] PublishError),
    #[error(transparent)]
    KafkaSettings(#[from] KafkaSettingsError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("cannot read the Deployment {name} that is to own the leader Lease: {source}")]
    LeaseOwner {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lost the leader Lease {0}; exiting so that only one replica acts")]
    LostLeadership(String),
    #[error(transparent)]
    Ops(#[from] OpsBindError),
    #[error("the registry follower stopped: {0}")]
    Follow(#[from] FollowError),
}

/// An owner reference to the operator's own Deployment, for the leader Lease.
async fn lease_owner(
    client: &Client,
    namespace: &str,
    deployment: &str,
) -> Result<OwnerReference, RunError> {
    let found = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(deployment)
        .await
        .map_err(|source| RunError::LeaseOwner {
            name: format!("{namespace}/{deployment}"),
            source,
        })?;
    Ok(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: deployment.to_owned(),
        uid: found.metadata.uid.unwrap_or_default(),
        ..OwnerReference::default()
    })
}

/// Written by `kubectl apply`: the whole object again, as JSON.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

const TOPICS_READY: &str = "topics";
const API_READY: &str = "kubernetes";

/// The operator's `run` command: every replica serves its ops endpoints, follows the
/// registry and stands by; the one holding the leader Lease reconciles.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let shutdown = Shutdown::on_signal();
    let kafka = args.kafka.connection()?;
    let keys = keyring_files::watch_dir(
        args.registry_keys.registry_keys_dir.clone(),
        args.registry_keys.registry_keys_reload_interval,
        shutdown.clone(),
    )
    .await?;
    let listener = bind_ops(args.ops.ops_addr).await?;
    let mut service = Service::new(shutdown);
    service
        .readiness
        .require(API_READY, "not connected to the Kubernetes API server yet");
    service
        .readiness
        .require(TOPICS_READY, "Kafka topics not created yet");
    let topic_view = RegistryView::default();
    topic_view.register_metrics(&mut service.metrics);
    let metrics = Metrics::register(&mut service.metrics);
    // The versions already on the topic (see crate::registry), followed by the leader
    // and the replicas waiting to take over alike (from before the topic is created:
    // the follower waits for it). Without them, what this replica publishes may be
    // refused, so a failed follower stops the operator.
    let follower = service.follow_registry(
        kafka.clone(),
        args.registry_topic.clone(),
        Some(keys.clone()),
        topic_view.clone(),
        |_| {},
    );
    let service = service.serve_ops(listener);

    let client = connect_api_server(&args, &service.readiness).await?;
    create_topics(&args, &kafka, &service.readiness, &service.shutdown).await;
    let publisher = Arc::new(RegistryPublisher::with_topic(
        &kafka,
        &args.registry_topic,
        keys,
        topic_view,
        metrics.registry_entries_sealed_with_old_key.clone(),
    )?);
    tokio::spawn(
        publisher
            .clone()
            .reseal_on_rotation(service.shutdown.clone()),
    );
    lead(&args, client, publisher, metrics, &service).await?;
    finish(follower, service).await
}

/// Connects to the API server and checks that the Webhook CRD is served, then marks
/// the readiness condition `kubernetes` met.
async fn connect_api_server(args: &RunArgs, readiness: &Readiness) -> Result<Client, RunError> {
    let config = kube::Config::infer()
        .await
        .map_err(|err| RunError::Kube(kube::Error::InferConfig(err)))?;
    let client = crate::api_client::http2_client(config).map_err(RunError::Kube)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(RunError::ApiServer)?;
    let webhooks: Api<Webhook> = match &args.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    webhooks
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdMissing)?;
    readiness.set_ready(API_READY);
    tracing::info!(server = %version.git_version, "connected to the Kubernetes API server");
    Ok(client)
}

/// Once the registry is loaded, waits for the leader Lease, then runs the controller
/// until shutdown, or until the Lease is lost (an error: another replica acts now).
async fn lead(
    args: &RunArgs,
    client: Client,
    publisher: Arc<RegistryPublisher>,
    metrics: Metrics,
    service: &RunningService,
) -> Result<(), RunError> {
    let shutdown = &service.shutdown;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("hookline-operator-{}", uuid::Uuid::new_v4().simple()));
    let lease = Arc::new(leader_lease(args, &client, &identity).await?);
    let loaded = tokio::select! {
        () = registry_view::loaded(&service.readiness) => true,
        () = shutdown.wait() => false,
    };
    if !loaded || !acquire(&lease, shutdown).await {
        return Ok(());
    }
    metrics.leader.set(1);
    tokio::spawn(publisher.clone().reassert_after_replays(shutdown.clone()));
    tracing::info!(%identity, lease = %args.lease_name, "acquired the leader Lease");
    let lost = Shutdown::new();
    let renewer = tokio::spawn(keep_renewing(lease.clone(), shutdown.clone(), lost.clone()));
    let ctx = controller_context(args, &client, identity, publisher, metrics.clone());
    run_controller(
        client,
        args.watch_namespace.clone(),
        args.reconcile_concurrency,
        ctx,
        shutdown.clone(),
    )
    .await;

    renewer.abort();
    metrics.leader.set(0);
    if lost.is_triggered() {
        return Err(RunError::LostLeadership(args.lease_name.clone()));
    }
    if let Err(err) = lease.release().await {
        tracing::warn!(%err, "cannot release the leader Lease; it expires by itself");
    }
    Ok(())
}

/// The leader Lease this replica competes for as `identity`, owned by the operator's
/// Deployment when one is named.
async fn leader_lease(
    args: &RunArgs,
    client: &Client,
    identity: &str,
) -> Result<LeaseLock, RunError> {
    let lease = LeaseLock::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        identity,
        args.lease_duration(),
    );
    Ok(match &args.lease_owner_deployment {
        Some(deployment) => {
            lease.owned_by(lease_owner(client, &args.lease_namespace, deployment).await?)
        }
        None => lease,
    })
}

/// What the leader's reconciles share; its Events are reported as `identity`.
fn controller_context(
    args: &RunArgs,
    client: &Client,
    identity: String,
    publisher: Arc<RegistryPublisher>,
    metrics: Metrics,
) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "hookline-operator".into(),
            instance: Some(identity),
        },
    );
    Arc::new(Context::new(
        client.clone(),
        args.settings(),
        publisher,
        metrics,
        recorder,
        args.resync(),
    ))
}

/// Runs the Webhook controller until `shutdown`: all namespaces, or only `namespace`.
pub async fn run_controller(
    client: Client,
    namespace: Option<String>,
    concurrency: u16,
    ctx: Arc<Context>,
    shutdown: Shutdown,
) {
    let namespace = namespace.as_deref();
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let children =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=hookline-operator");
    // Memory stays flat with thousands of Webhooks: the cache keeps Webhooks without
    // their managedFields and last-applied annotation, and children only as metadata
    // (an owner reference is all a child's event and an owner check need).
    let (store, writer) = reflector::store();
    // Our own status patches change neither the generation nor the finalizers: they
    // update the cache but trigger no second reconcile.
    let webhooks = watcher(
        api::<Webhook>(&client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip_webhook)
    .reflect(writer)
    .touched_objects()
    .predicate_filter(webhook_changes(), PredicateConfig::default());
    let (deployment_store, deployment_writer) = reflector::store();
    let deployments = watcher(
        api::<PartialObjectMeta<Deployment>>(&client, namespace),
        children.clone(),
    )
    .default_backoff()
    .modify(strip_child)
    .reflect(deployment_writer)
    .touched_objects();
    let secrets = watcher(
        api::<PartialObjectMeta<Secret>>(&client, namespace),
        children,
    )
    .default_backoff()
    .touched_objects();
    // Secrets lent to Webhooks: lending one (or taking it back, which the labelled watch
    // sees as the Secret leaving it), or changing its value, reconciles the Webhooks
    // naming it at once.
    let lent = watcher(
        api::<PartialObjectMeta<Secret>>(&client, namespace),
        watcher::Config::default().labels(&format!("{LENT_SECRET_LABEL}=true")),
    )
    .default_backoff()
    .touched_objects();
    ctx.set_owned_emitters(deployment_store);
    let referencing = store.clone();
    Controller::for_stream(webhooks, store)
        .owns_stream(deployments)
        .owns_stream(secrets)
        .watches_stream(lent, move |secret| {
            webhooks_referencing(&referencing, &secret)
        })
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(webhook = %object.name, "reconciled"),
                Err(err) => tracing::debug!(error = %err, "reconcile error"),
            }
        })
        .await;
}

/// What the Webhook cache keeps: everything but the managedFields and the client-side
/// apply annotation (a second copy of the object), which no reconcile reads.
pub fn strip_webhook(webhook: &mut Webhook) {
    webhook.managed_fields_mut().clear();
    webhook.annotations_mut().remove(LAST_APPLIED_ANNOTATION);
}

/// What of a Webhook reconciles it: its spec (the generation, which deletion bumps too)
/// and its finalizers (the one the first reconcile adds).
pub fn webhook_changes() -> impl Predicate<Webhook> {
    predicates::generation.combine(predicates::finalizers)
}

/// What a child's metadata cache keeps: names, labels and owner references.
pub fn strip_child<K: kube::Resource>(child: &mut K) {
    child.managed_fields_mut().clear();
    child.annotations_mut().clear();
}

/// The Webhooks in `secret`'s namespace whose `secretRef` names it.
fn webhooks_referencing(
    webhooks: &reflector::Store<Webhook>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<reflector::ObjectRef<Webhook>> {
    let (namespace, name) = (secret.namespace(), secret.name_any());
    webhooks
        .state()
        .iter()
        .filter(|webhook| {
            webhook.namespace() == namespace
                && webhook
                    .spec
                    .secret_ref
                    .as_ref()
                    .is_some_and(|reference| reference.name == name)
        })
        .map(|webhook| reflector::ObjectRef::from_obj(webhook.as_ref()))
        .collect()
}

/// Waits for the registry follower and the ops endpoints to stop (they stop at
/// shutdown); the follower's failure is the operator's.
async fn finish(
    follower: JoinHandle<Result<(), FollowError>>,
    service: RunningService,
) -> Result<(), RunError> {
    if let Ok(Err(err)) = follower.await {
        return Err(err.into());
    }
    service.stopped().await;
    Ok(())
}

async fn create_topics(
    args: &RunArgs,
    kafka: &KafkaConnection,
    readiness: &Readiness,
    shutdown: &Shutdown,
) {
    let specs = topics::layout(
        args.topic_partitions,
        args.topic_replication,
        &args.topic_names(),
    );
    let mut delay = Duration::from_millis(500);
    while !shutdown.is_triggered() {
        match kafka::ensure_topics(kafka, &specs, Duration::from_secs(10)).await {
            Ok(()) => {
                readiness.set_ready(TOPICS_READY);
                tracing::info!(count = specs.len(), "Kafka topics exist");
                return;
            }
            Err(err) => {
                readiness.set_not_ready(TOPICS_READY, err.to_string());
                tracing::warn!(%err, retry_in = ?delay, "cannot create the Kafka topics");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Waits until the Lease is ours; false if shutdown came first.
async fn acquire(lease: &LeaseLock, shutdown: &Shutdown) -> bool {
    let mut announced = false;
    loop {
        match lease.try_acquire_or_renew().await {
            Ok(true) => return true,
            Ok(false) if !announced => {
                tracing::info!(
                    identity = lease.identity(),
                    "another replica leads; standing by"
                );
                announced = true;
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(%err, "cannot read the leader Lease"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.wait() => return false,
        }
    }
}

/// Renews the Lease; when it cannot for a whole lease duration, or another replica
/// took it, stops the controller and marks leadership lost.
async fn keep_renewing(lease: Arc<LeaseLock>, shutdown: Shutdown, lost: Shutdown) {
    let interval = lease.renew_interval();
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => return,
        }
        match lease.try_acquire_or_renew().await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("another replica holds the leader Lease");
                break;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot renew the leader Lease");
                if last_renewed.elapsed() >= interval * 3 {
                    break;
                }
            }
        }
    }
    lost.trigger();
    shutdown.trigger();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use kube::core::PartialObjectMetaExt;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::reconcile::observe::{Occupant, cached_occupant};
    use crate::test_support::invoices;

    fn managed_fields() -> Option<Vec<ManagedFieldsEntry>> {
        Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..ManagedFieldsEntry::default()
        }])
    }

    #[test]
    fn the_webhook_cache_keeps_what_a_reconcile_reads() {
        let mut webhook = invoices();
        webhook.metadata.managed_fields = managed_fields();
        webhook.metadata.annotations = Some(BTreeMap::from([
            (
                LAST_APPLIED_ANNOTATION.into(),
                "{\"kind\":\"Webhook\"}".into(),
            ),
            ("team".into(), "billing".into()),
        ]));
        let original = webhook.clone();
        strip_webhook(&mut webhook);
        assert_eq!(webhook.metadata.managed_fields, Some(vec![]));
        assert_eq!(
            webhook.metadata.annotations,
            Some(BTreeMap::from([("team".into(), "billing".into())]))
        );
        assert_eq!(webhook.spec, original.spec);
        assert_eq!(webhook.status, original.status);
        assert_eq!(
            (
                webhook.uid(),
                webhook.metadata.generation,
                webhook.finalizers()
            ),
            (
                original.uid(),
                original.metadata.generation,
                original.finalizers()
            )
        );
    }

    #[test]
    fn a_status_change_alone_does_not_reconcile_a_webhook() {
        let changes = webhook_changes();
        let webhook = invoices();
        let seen = changes.hash_property(&webhook);
        let mut status_only = webhook.clone();
        status_only
            .status
            .get_or_insert_with(Default::default)
            .emitter_ready_replicas += 1;
        status_only.metadata.resource_version = Some("41873".into());
        assert_eq!(changes.hash_property(&status_only), seen);
        let mut new_spec = webhook.clone();
        new_spec.metadata.generation = Some(4);
        assert_ne!(changes.hash_property(&new_spec), seen);
        let mut finalized = webhook;
        finalized.metadata.finalizers = None;
        assert_ne!(changes.hash_property(&finalized), seen);
    }

    fn emitter(owner_uid: &str) -> PartialObjectMeta<Deployment> {
        ObjectMeta {
            name: Some("invoices-emitter".into()),
            namespace: Some("shop".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "hookline.io/v1alpha1".into(),
                kind: "Webhook".into(),
                name: "invoices".into(),
                uid: owner_uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            annotations: Some(BTreeMap::from([(
                "deployment.kubernetes.io/revision".into(),
                "1".into(),
            )])),
            managed_fields: managed_fields(),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }

    #[test]
    fn a_child_cache_keeps_names_labels_and_owners_only() {
        let mut child = emitter("uid-1");
        child.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".into(),
            "hookline-operator".into(),
        )]));
        let original = child.clone();
        strip_child(&mut child);
        assert_eq!(child.metadata.managed_fields, Some(vec![]));
        assert_eq!(child.metadata.annotations, Some(BTreeMap::new()));
        assert_eq!(child.metadata.labels, original.metadata.labels);
        assert_eq!(
            child.metadata.owner_references,
            original.metadata.owner_references
        );
    }

    #[test]
    fn only_an_emitter_cached_as_this_webhooks_skips_the_read() {
        let (store, mut writer) = reflector::store();
        let mut cached = emitter("uid-1");
        strip_child(&mut cached);
        writer.apply_watcher_event(&Event::Apply(cached));
        assert_eq!(
            cached_occupant(&store, "shop", "invoices-emitter", "uid-1"),
            Some(Occupant::Owned)
        );
        assert_eq!(
            cached_occupant(&store, "shop", "invoices-emitter", "uid-2"),
            None,
            "another Webhook's: read from the server"
        );
        assert_eq!(
            cached_occupant(&store, "other", "invoices-emitter", "uid-1"),
            None,
            "not cached: read from the server"
        );
    }
}
