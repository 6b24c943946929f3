//! Wires the emitter together: the generator that keeps the rate, a bounded queue,
//! delivery workers, the secret watcher and the ops endpoints; drains on shutdown.

use std::process::{ExitCode, Termination};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use hookline_runtime::service::{OpsBindError, Service, bind_ops};
use hookline_runtime::shutdown::Shutdown;
use hyper::Uri;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use thiserror::Error;
use tokio::sync::{Mutex, mpsc};

use crate::config::Config;
use crate::delivery::{Deliverer, DeliveryResult, HttpClient};
use crate::event::{SimulatedEvent, due, due_at, invoice_event};
use crate::metrics::{Metrics, OutcomeLabel, ReasonLabel};
use crate::secrets::{SecretFileError, SigningKeys};
use crate::target_guard::GuardedConnector;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no CA certificates found for the https target: {0}")]
    NoRoots(#[source] std::io::Error),
    #[error(transparent)]
    Ops(#[from] OpsBindError),
}

/// What the emitter did, for its exit log and for tests.
#[derive(Debug, Default)]
pub struct Tally {
    pub emitted: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub abandoned: AtomicU64,
    /// Set when the target answered 410 Gone: emission stopped for good.
    pub gone: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub emitted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub abandoned: u64,
    pub gone: bool,
}

impl Summary {
    /// Whether every event emitted was delivered: none failed, none abandoned.
    pub fn all_delivered(&self) -> bool {
        self.failed == 0 && self.abandoned == 0
    }
}

/// The exit code when the emitter ran but not every event was delivered.
const UNDELIVERED: u8 = 3;

/// The emitter's exit code: 0 when every event was delivered, else `UNDELIVERED`.
impl Termination for Summary {
    fn report(self) -> ExitCode {
        if self.all_delivered() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(UNDELIVERED)
        }
    }
}

impl Tally {
    pub fn summary(&self) -> Summary {
        Summary {
            emitted: self.emitted.load(Ordering::SeqCst),
            delivered: self.delivered.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            abandoned: self.abandoned.load(Ordering::SeqCst),
            gone: self.gone.load(Ordering::SeqCst),
        }
    }
}

/// One Webhook's event source.
pub struct Emitter {
    config: Config,
    deliverer: Arc<Deliverer>,
    keys: SigningKeys,
    metrics: Metrics,
    tally: Arc<Tally>,
}

impl Emitter {
    /// Validates the configuration and reads the signing secrets; the metrics are
    /// registered in `metrics_registry`.
    pub fn new(config: Config, metrics_registry: &mut Registry) -> Result<Self, StartError> {
        let policy = config.delivery_policy().map_err(StartError::Config)?;
        let target: Uri = config
            .target_url
            .parse()
            .map_err(|err| StartError::Config(format!("WEBHOOK_TARGET_URL: {err}")))?;
        let keys = SigningKeys::load(&config.secret_dir, config.scheme)?;
        let client = http_client(&config, target.scheme_str() == Some("https"))?;
        let metrics = Metrics::register(metrics_registry);
        let deliverer = Deliverer {
            client,
            target,
            scheme: config.scheme,
            keys: keys.clone(),
            policy,
            request_timeout: config.request_timeout(),
        };
        Ok(Self {
            config,
            deliverer: Arc::new(deliverer),
            keys,
            metrics,
            tally: Arc::default(),
        })
    }

    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    /// Emits until `shutdown`, `--max-events` or a 410; then delivers what is queued
    /// within the drain timeout and returns what happened.
    pub async fn run(self, shutdown: Shutdown) -> Summary {
        let Self {
            config,
            deliverer,
            keys,
            metrics,
            tally,
            ..
        } = self;
        tokio::spawn(keys.watch(Duration::from_secs(1), shutdown.clone()));
        let capacity = usize::try_from(config.queue_limit).unwrap_or(usize::MAX);
        let (queue, receiver) = mpsc::channel::<SimulatedEvent>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        // Triggered when emission ends; the drain deadline starts then.
        let stop_emitting = Shutdown::new();
        let give_up = Shutdown::new();
        let workers: Vec<_> = (0..config.concurrency)
            .map(|_| {
                tokio::spawn(work(
                    receiver.clone(),
                    deliverer.clone(),
                    metrics.clone(),
                    tally.clone(),
                    stop_emitting.clone(),
                    give_up.clone(),
                ))
            })
            .collect();

        generate(&config, queue, &metrics, &tally, &shutdown, &stop_emitting).await;
        stop_emitting.trigger();
        let drain = config.drain_timeout();
        let deadline = {
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(drain).await;
                give_up.trigger();
            })
        };
        for worker in workers {
            let _ = worker.await;
        }
        deadline.abort();
        let summary = tally.summary();
        tracing::info!(
            emitted = summary.emitted,
            delivered = summary.delivered,
            failed = summary.failed,
            abandoned = summary.abandoned,
            gone = summary.gone,
            "emitter stopped"
        );
        summary
    }
}

/// Builds the pooled client: connect timeout, keep-alive, TLS through rustls.
fn http_client(config: &Config, https_target: bool) -> Result<HttpClient, StartError> {
    let mut guarded = GuardedConnector::new(config.allow_private_targets);
    let http = guarded.http();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout()));
    http.set_nodelay(true);
    let provider = rustls::crypto::ring::default_provider();
    let builder = match HttpsConnectorBuilder::new().with_provider_and_native_roots(provider) {
        Ok(builder) => builder,
        Err(err) if https_target => return Err(StartError::NoRoots(err)),
        Err(_) => {
            // Plain http needs no roots; an https redirect would fail its handshake.
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|err| StartError::Config(format!("TLS: {err}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let connector = builder
        .https_or_http()
        .enable_http1()
        .wrap_connector(guarded);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// Emits at the configured rate. A full queue pauses emission (the target is slow or
/// down) and the schedule restarts from the moment there is room again, so events
/// are not bunched up after an outage.
async fn generate(
    config: &Config,
    queue: mpsc::Sender<SimulatedEvent>,
    metrics: &Metrics,
    tally: &Tally,
    shutdown: &Shutdown,
    stop: &Shutdown,
) {
    let rate = config.rate_per_second;
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut start = tokio::time::Instant::now();
    let mut scheduled: u64 = 0;
    let mut emitted: u64 = 0;
    loop {
        if shutdown.is_triggered() || tally.gone.load(Ordering::SeqCst) {
            return;
        }
        let due_now = due(start.elapsed(), rate);
        while scheduled < due_now {
            if config.max_events > 0 && emitted >= config.max_events {
                return;
            }
            let event = invoice_event(&config.event_types, Utc::now(), &mut rng);
            let event = match queue.try_send(event) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(event)) => Some(event),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            };
            if let Some(event) = event {
                metrics.backpressure_pauses.inc();
                tracing::warn!(
                    queued = config.queue_limit,
                    "queue full: emission paused until the target catches up"
                );
                tokio::select! {
                    sent = queue.send(event) => if sent.is_err() { return },
                    () = shutdown.wait() => return,
                    () = stop.wait() => return,
                }
                start = tokio::time::Instant::now() - due_at(scheduled + 1, rate);
            }
            scheduled += 1;
            emitted += 1;
            metrics.emitted.inc();
            metrics.queued.inc();
            tally.emitted.fetch_add(1, Ordering::SeqCst);
        }
        tokio::select! {
            () = tokio::time::sleep_until(start + due_at(scheduled, rate)) => {}
            () = shutdown.wait() => return,
            () = stop.wait() => return,
        }
    }
}

/// One delivery worker: takes events until the queue is closed and empty.
async fn work(
    receiver: Arc<Mutex<mpsc::Receiver<SimulatedEvent>>>,
    deliverer: Arc<Deliverer>,
    metrics: Metrics,
    tally: Arc<Tally>,
    stop_emitting: Shutdown,
    give_up: Shutdown,
) {
    loop {
        let next = {
            let mut receiver = receiver.lock().await;
            if stop_emitting.is_triggered() {
                // Emission is over: take what is left without waiting for more.
                receiver.try_recv().ok()
            } else {
                tokio::select! {
                    event = receiver.recv() => event,
                    () = stop_emitting.wait() => receiver.try_recv().ok(),
                }
            }
        };
        let Some(event) = next else { return };
        metrics.queued.dec();
        if give_up.is_triggered() {
            metrics.abandoned.inc();
            tally.abandoned.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let attempts = &metrics.attempts;
        let result = deliverer
            .deliver(&event, give_up.wait(), |outcome| {
                attempts.get_or_create(&OutcomeLabel { outcome }).inc();
            })
            .await;
        match result {
            DeliveryResult::Delivered { latency, .. } => {
                metrics.delivered.inc();
                metrics.delivery_seconds.observe(latency.as_secs_f64());
                tally.delivered.fetch_add(1, Ordering::SeqCst);
            }
            DeliveryResult::Failed { attempts, reason } => {
                tracing::warn!(message_id = %event.message_id, attempts, %reason, "delivery failed");
                metrics
                    .failed
                    .get_or_create(&ReasonLabel {
                        reason: failure_label(&reason),
                    })
                    .inc();
                tally.failed.fetch_add(1, Ordering::SeqCst);
            }
            DeliveryResult::Gone { .. } => {
                if !tally.gone.swap(true, Ordering::SeqCst) {
                    tracing::error!("the target answered 410 Gone: emission stopped");
                }
                metrics
                    .failed
                    .get_or_create(&ReasonLabel {
                        reason: "http_410".into(),
                    })
                    .inc();
                tally.failed.fetch_add(1, Ordering::SeqCst);
                stop_emitting.trigger();
            }
            DeliveryResult::Abandoned { .. } => {
                metrics.abandoned.inc();
                tally.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// A bounded label for the metric: the reason without the detail after a comma.
fn failure_label(reason: &str) -> String {
    let reason = reason
        .strip_prefix("retries exhausted, last: ")
        .unwrap_or(reason);
    reason
        .split([':', ' '])
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

/// Serves the ops endpoints and runs the emitter until SIGTERM.
pub async fn run(config: Config) -> Result<Summary, StartError> {
    let shutdown = Shutdown::on_signal();
    let ops_addr = config.ops.ops_addr;
    // The ops endpoints have a shutdown of their own: they keep answering while the
    // queue drains after SIGTERM.
    let mut service = Service::new(Shutdown::new());
    let emitter = Emitter::new(config, &mut service.metrics)?;
    let service = service.serve_ops(bind_ops(ops_addr).await?);
    let summary = emitter.run(shutdown).await;
    service.shutdown.trigger();
    service.stopped().await;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_labels_stay_few() {
        assert_eq!(failure_label("http_401"), "http_401");
        assert_eq!(failure_label("retries exhausted, last: timeout"), "timeout");
        assert_eq!(failure_label("cannot sign: no secrets"), "cannot");
    }
}
