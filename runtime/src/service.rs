//! The skeleton every Hookline binary runs on, so that start-up and shutdown are written
//! once: [`main`] builds the async runtime, sets up logs and traces, runs the service
//! and turns its result into an exit code; a [`Service`] holds what every running
//! service shares (readiness, the metrics it exports, shutdown) and starts the tasks
//! they all need (the ops endpoints, Kafka's readiness, the registry follower).

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitCode, Termination};
use std::sync::Arc;

use hookline_core::registry::{Keyring, RegistryUpdate};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{CommonArgs, TraceArgs};
use crate::kafka::{self, KafkaConnection};
use crate::ops::{self, Readiness};
use crate::registry_view::{self, FollowError, RegistryView};
use crate::shutdown::Shutdown;
use crate::traces;

/// Uses mimalloc as the binary's allocator: glibc's malloc and free were about a tenth
/// of a busy service's CPU (measured on the handler). The operator keeps glibc's: its
/// memory peak was lower.
#[macro_export]
macro_rules! use_mimalloc {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::mimalloc::MiMalloc = $crate::mimalloc::MiMalloc;
    };
}

/// A binary's `main`: the runtime of `--worker-threads`, logs and traces as `binary`,
/// then `run`. What `run` returns gives the exit code (`()`: 0; a service's own outcome
/// says its own code); an error is logged and gives exit code 1. Spans still queued are
/// exported before the process exits.
pub fn main<T: Termination, E: Display>(
    binary: &'static str,
    common: &CommonArgs,
    trace_args: &TraceArgs,
    run: impl Future<Output = Result<T, E>>,
) -> ExitCode {
    common.block_on(binary, async move {
        let traces = match traces::init(common.log_format, trace_args, binary) {
            Ok(traces) => traces,
            Err(err) => {
                eprintln!("{binary}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let exit = match run.await {
            Ok(outcome) => outcome.report(),
            Err(err) => {
                tracing::error!(%err, "{binary} failed");
                ExitCode::FAILURE
            }
        };
        traces.shutdown().await;
        exit
    })
}

/// The ops endpoints' address could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on {addr} for /healthz, /readyz and /metrics: {source}")]
pub struct OpsBindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the ops endpoints' `addr`, for [`Service::serve_ops`]. Apart from it so that a
/// service can refuse to start on a taken port before it starts anything else.
pub async fn bind_ops(addr: SocketAddr) -> Result<TcpListener, OpsBindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| OpsBindError { addr, source })
}

/// What every running service shares. Components register their metrics in
/// `metrics` before [`Service::serve_ops`] starts serving them.
pub struct Service {
    pub readiness: Readiness,
    /// The Prometheus registry `/metrics` encodes.
    pub metrics: Registry,
    pub shutdown: Shutdown,
}

impl Service {
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            readiness: Readiness::default(),
            metrics: Registry::default(),
            shutdown,
        }
    }

    /// Keeps the readiness condition `kafka` current while the service runs.
    pub fn watch_kafka(&self, connection: KafkaConnection) {
        tokio::spawn(kafka::watch_reachability(
            connection,
            self.readiness.clone(),
            self.shutdown.clone(),
        ));
    }

    /// Follows the registry `topic` into `view` (readiness condition `registry` until it
    /// is loaded), calling `on_update` for every record applied. If the follower fails
    /// the service cannot learn about Webhooks any more, so it shuts down rather than
    /// serve a stale view; the error is the task's result.
    pub fn follow_registry(
        &self,
        connection: KafkaConnection,
        topic: String,
        keys: Option<watch::Receiver<Arc<Keyring>>>,
        view: RegistryView,
        on_update: impl Fn(&RegistryUpdate) + Send + 'static,
    ) -> JoinHandle<Result<(), FollowError>> {
        let follow = registry_view::follow(
            connection,
            topic,
            keys,
            view,
            self.readiness.clone(),
            self.shutdown.clone(),
            on_update,
        );
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let result = follow.await;
            if let Err(err) = &result {
                tracing::error!(%err, "registry follower failed; shutting down");
                shutdown.trigger();
            }
            result
        })
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `listener` (from [`bind_ops`], or
    /// one a test bound) until shutdown. The metrics registered so far are the ones served.
    pub fn serve_ops(self, listener: TcpListener) -> RunningService {
        let ops = tokio::spawn(ops::serve_on(
            listener,
            ops::router(self.readiness.clone(), Arc::new(self.metrics)),
            self.shutdown.clone(),
        ));
        RunningService {
            readiness: self.readiness,
            shutdown: self.shutdown,
            ops,
        }
    }
}

/// A service whose ops endpoints are up.
pub struct RunningService {
    pub readiness: Readiness,
    pub shutdown: Shutdown,
    ops: JoinHandle<std::io::Result<()>>,
}

impl RunningService {
    /// Waits for the ops endpoints to stop (they stop at shutdown).
    pub async fn stopped(self) {
        if let Ok(Err(err)) = self.ops.await {
            tracing::warn!(%err, "the ops endpoints stopped with an error");
        }
    }
}
