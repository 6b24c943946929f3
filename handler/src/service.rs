//! Wires the handler together on the service skeleton: the registry follower, the Kafka
//! watch, the producer and the HTTP server, and runs them until shutdown.

use std::sync::{Arc, OnceLock};

use hookline_core::registry::RegistryUpdate;
use hookline_runtime::keyring_files;
use hookline_runtime::registry_view::{FollowError, RegistryView};
use hookline_runtime::service::{OpsBindError, Service, bind_ops};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::webhook_labels::WebhookLabels;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::concurrency::KeyedCap;
use crate::config::Config;
use crate::ingest::{self, Ingest, Limits};
use crate::metrics::Metrics;
use crate::produce::{EventProducer, ProducerSetupError};
use crate::rate_limit::SharedRateLimiter;
use crate::repeats::SharedSeenMessages;
use crate::server::{self, ServerLimits};
use crate::unknown_ids::UnknownIds;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ops(#[from] OpsBindError),
    #[error(transparent)]
    Producer(#[from] ProducerSetupError),
    #[error(transparent)]
    KafkaSettings(#[from] hookline_runtime::kafka::KafkaSettingsError),
    #[error(transparent)]
    Keyring(#[from] hookline_core::registry::KeyringError),
    #[error("the registry follower stopped: {0}")]
    Registry(#[from] FollowError),
    #[error("the Kafka producer failed for good: {0}")]
    ProducerFailed(String),
}

/// Listens on the configured addresses and serves until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), ServiceError> {
    let addr = config.listen_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind { addr, source })?;
    let ops_listener = bind_ops(config.ops.ops_addr).await?;
    serve(listener, ops_listener, config, Shutdown::on_signal()).await
}

/// Serves the webhook endpoint on `listener`, and /healthz, /readyz, /metrics on
/// `ops_listener` (so they are never on the port the Ingress exposes), until
/// `shutdown`: then stops accepting, finishes in-flight requests, and flushes the
/// producer. Ready once the registry is loaded and Kafka answers.
pub async fn serve(
    listener: TcpListener,
    ops_listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let mut service = Service::new(shutdown);
    let view = RegistryView::default();
    view.register_metrics(&mut service.metrics);
    let metrics = Metrics::register(
        &mut service.metrics,
        WebhookLabels::new(config.webhook_metrics.per_webhook_metrics),
    );
    let kafka = config.kafka.connection()?;
    let keys = keyring_files::watch_dir(
        config.registry_keys.registry_keys_dir.clone(),
        config.registry_keys.registry_keys_reload_interval,
        service.shutdown.clone(),
    )
    .await?;
    let producer = EventProducer::new(
        &kafka,
        config.events_topic.clone(),
        config.produce_timeout,
        config.produce_linger,
    )?;
    let rate_limiter = Arc::new(SharedRateLimiter::default());
    let follower = service.follow_registry(
        kafka.clone(),
        config.registry_topic.clone(),
        Some(keys),
        view.clone(),
        forget_deleted(rate_limiter.clone(), metrics.clone()),
    );
    service.watch_kafka(kafka);
    let ingest = Arc::new(ingest(
        &config,
        &service,
        view,
        producer,
        rate_limiter,
        metrics,
    ));
    let running = service.serve_ops(ops_listener);
    tracing::info!(addr = ?listener.local_addr().ok(), events_topic = %config.events_topic, registry_topic = %config.registry_topic, "serving webhooks");
    server::serve(
        listener,
        ingest::router(ingest.clone()),
        ServerLimits {
            header_read_timeout: config.header_read_timeout,
            shutdown_grace: config.shutdown_grace,
        },
        running.shutdown.clone(),
    )
    .await;
    running.stopped().await;
    wind_down(&ingest, &config, follower).await
}

/// Forgets a deleted Webhook's rate-limit bucket and metric series.
fn forget_deleted(
    rate_limiter: Arc<SharedRateLimiter>,
    metrics: Metrics,
) -> impl Fn(&RegistryUpdate) + Send + 'static {
    move |update| {
        if let RegistryUpdate::Deleted { webhook_id } = update {
            rate_limiter.forget(webhook_id);
            metrics.forget_webhook(webhook_id);
        }
    }
}

/// What every webhook request shares, sized by `config`.
fn ingest(
    config: &Config,
    service: &Service,
    view: RegistryView,
    producer: EventProducer,
    rate_limiter: Arc<SharedRateLimiter>,
    metrics: Metrics,
) -> Ingest {
    let max_concurrent = config.max_concurrent_requests;
    Ingest {
        registry: view,
        readiness: service.readiness.clone(),
        producer,
        seen_messages: SharedSeenMessages::new(
            config.timestamp_tolerance,
            config.seen_messages_capacity as usize,
            metrics.seen_messages_entries.clone(),
            metrics.seen_messages_evictions.clone(),
        ),
        seen_bodies: SharedSeenMessages::new(
            config.unsigned_id_repeat_window,
            config.seen_messages_capacity as usize,
            metrics.seen_bodies_entries.clone(),
            metrics.seen_bodies_evictions.clone(),
        ),
        rate_limiter,
        metrics,
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            timestamp_tolerance: config.timestamp_tolerance,
            trusted_proxies: config.trusted_proxies(),
            forwarding_header: config.forwarding_header,
        },
        permits: Semaphore::new(max_concurrent as usize),
        webhook_caps: KeyedCap::new(
            config
                .max_concurrent_requests_per_webhook
                .min(max_concurrent),
        ),
        source_caps: KeyedCap::new(
            config
                .max_concurrent_requests_per_source
                .min(max_concurrent),
        ),
        unknown_ids: UnknownIds::new(config.unknown_webhook_recheck_interval),
        catch_ups: Semaphore::new(ingest::CONCURRENT_CATCH_UPS),
        shutdown: service.shutdown.clone(),
        producer_failure: OnceLock::new(),
    }
}

/// Once the server has stopped: flushes what the producer still holds, then reports
/// why the service ended if it was not asked to (the producer or the follower failed).
async fn wind_down(
    ingest: &Ingest,
    config: &Config,
    follower: JoinHandle<Result<(), FollowError>>,
) -> Result<(), ServiceError> {
    if let Err(err) = ingest.producer.flush(config.produce_timeout).await {
        tracing::warn!(%err, "events still queued at exit were not acknowledged");
    }
    if let Some(reason) = ingest.producer_failure.get() {
        return Err(ServiceError::ProducerFailed(reason.clone()));
    }
    match follower.await {
        Ok(result) => result.map_err(ServiceError::from),
        Err(_) => Ok(()),
    }
}
