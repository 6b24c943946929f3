//! Wires the handler together: the registry follower, the Kafka watch, the producer
//! and the HTTP server, and runs them until shutdown.

use std::sync::Arc;

use hookline_core::registry::RegistryUpdate;
use hookline_runtime::kafka;
use hookline_runtime::ops::{self, Readiness};
use hookline_runtime::registry_view::{FollowError, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::webhook_labels::WebhookLabels;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::concurrency::KeyedCap;
use crate::config::Config;
use crate::ingest::{self, Ingest, Limits};
use crate::metrics::Metrics;
use crate::produce::{EventProducer, ProducerSetupError};
use crate::rate_limit::SharedRateLimiter;
use crate::repeats::SharedReplayCache;
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
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServiceError::Bind { addr, source })
    };
    let listener = bind(config.listen_addr).await?;
    let ops_listener = bind(config.ops.ops_addr).await?;
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
    let readiness = Readiness::default();
    let mut metrics_registry = Registry::default();
    let view = RegistryView::default();
    view.register_metrics(&mut metrics_registry);
    let metrics = Metrics::register(
        metrics_registry.sub_registry_with_prefix("hookline_handler"),
        WebhookLabels::new(config.webhook_metrics.per_webhook_metrics),
    );
    let kafka = config.kafka.connection()?;
    let keys = hookline_runtime::keyring_files::watch_dir(
        config.registry_keys.registry_keys_dir.clone(),
        config.registry_keys.registry_keys_reload_interval,
        shutdown.clone(),
    )
    .await?;
    let producer = EventProducer::new(
        &kafka,
        config.events_topic.clone(),
        config.produce_timeout,
        config.produce_linger,
    )?;

    let rate_limiter = Arc::new(SharedRateLimiter::default());
    let forget_deleted = {
        let (rate_limiter, metrics) = (rate_limiter.clone(), metrics.clone());
        move |update: &RegistryUpdate| {
            if let RegistryUpdate::Deleted { webhook_id } = update {
                rate_limiter.forget(webhook_id);
                metrics.forget_webhook(webhook_id);
            }
        }
    };
    let follower = tokio::spawn(stop_on_error(
        hookline_runtime::registry_view::follow(
            kafka.clone(),
            config.registry_topic.clone(),
            Some(keys),
            view.clone(),
            readiness.clone(),
            shutdown.clone(),
            forget_deleted,
        ),
        shutdown.clone(),
    ));
    tokio::spawn(kafka::watch_reachability(
        kafka,
        readiness.clone(),
        shutdown.clone(),
    ));

    let ingest = Arc::new(Ingest {
        registry: view,
        readiness: readiness.clone(),
        producer: producer.clone(),
        replay: SharedReplayCache::new(
            config.timestamp_tolerance,
            config.replay_cache_capacity as usize,
            metrics.replay_cache_entries.clone(),
            metrics.replay_cache_evictions.clone(),
        ),
        body_repeats: SharedReplayCache::new(
            config.unsigned_id_repeat_window,
            config.replay_cache_capacity as usize,
            metrics.body_repeat_cache_entries.clone(),
            metrics.body_repeat_cache_evictions.clone(),
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
        permits: Semaphore::new(config.max_concurrent_requests as usize),
        webhook_caps: KeyedCap::new(
            config
                .max_concurrent_requests_per_webhook
                .min(config.max_concurrent_requests),
        ),
        source_caps: KeyedCap::new(
            config
                .max_concurrent_requests_per_source
                .min(config.max_concurrent_requests),
        ),
        unknown_ids: UnknownIds::new(config.unknown_webhook_recheck_interval),
        catch_ups: Semaphore::new(ingest::CONCURRENT_CATCH_UPS),
        shutdown: shutdown.clone(),
        producer_failure: std::sync::OnceLock::new(),
    });
    let ops_server = tokio::spawn(ops::serve_on(
        ops_listener,
        ops::router(readiness, Arc::new(metrics_registry)),
        shutdown.clone(),
    ));
    tracing::info!(addr = ?listener.local_addr().ok(), events_topic = %config.events_topic, registry_topic = %config.registry_topic, "serving webhooks");
    server::serve(
        listener,
        ingest::router(ingest.clone()),
        ServerLimits {
            header_read_timeout: config.header_read_timeout,
            shutdown_grace: config.shutdown_grace,
        },
        shutdown.clone(),
    )
    .await;

    if let Ok(Err(err)) = ops_server.await {
        tracing::warn!(%err, "the ops endpoints stopped with an error");
    }
    if let Err(err) = producer.flush(config.produce_timeout).await {
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

/// Runs the registry follower; if it fails, the service cannot learn about webhooks,
/// so it shuts down rather than serve a stale view.
async fn stop_on_error(
    follow: impl Future<Output = Result<(), FollowError>>,
    shutdown: Shutdown,
) -> Result<(), FollowError> {
    let result = follow.await;
    if let Err(err) = &result {
        tracing::error!(%err, "registry follower failed; shutting down");
        shutdown.trigger();
    }
    result
}
