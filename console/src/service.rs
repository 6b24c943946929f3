//! Wires the console together and serves it until SIGTERM: the PostgreSQL pool, the
//! reflector of Webhooks, the replay producer, the pages and the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use hookline_api::webhook::Webhook;
use hookline_runtime::ops::Readiness;
use hookline_runtime::service::{OpsBindError, Service, bind_ops};
use hookline_runtime::shutdown::Shutdown;
use hookline_store::database;
use hookline_store::dead_letter_replay::{ReplayError, Replayer};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::api;
use crate::assets;
use crate::auth::{Auth, AuthConfigError, AuthSettings, ProxyAuth};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::throttle::ThrottleSettings;

/// Ready while PostgreSQL answers and the console may read its tables (the consumer's
/// migrations made them and granted them to the console's login), not merely while it
/// answers.
const TABLES_READABLE: &str = "SELECT 1 FROM replays LIMIT 0";
const KUBERNETES: &str = "kubernetes";

#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error(transparent)]
    KafkaSettings(#[from] hookline_runtime::kafka::KafkaSettingsError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("the database URL is not one PostgreSQL takes: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot reach the Kubernetes API: {0}")]
    Kubernetes(#[source] kube::Error),
    #[error(transparent)]
    Producer(#[from] ReplayError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ops(#[from] OpsBindError),
    #[error("the server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

/// Everything the console needs, from its configuration.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ConsoleError> {
    let auth = Arc::new(Auth::new(auth_settings(&config))?);
    if !config.secure_cookie {
        tracing::warn!("--secure-cookie=false: the session cookie is sent over plain HTTP too");
    }
    tokio::spawn(
        auth.clone()
            .watch_users(config.users_reload_interval, shutdown.clone()),
    );
    let mut service = Service::new(shutdown);
    service
        .readiness
        .require(database::READINESS_CONDITION, "PostgreSQL not checked yet");
    service
        .readiness
        .require(KUBERNETES, "Webhooks not listed yet");
    let metrics = Arc::new(Metrics::register(&mut service.metrics));
    let service = service.serve_ops(bind_ops(config.ops.ops_addr).await?);

    let pool = pool(&config)?;
    tokio::spawn(database::watch(
        pool.clone(),
        TABLES_READABLE,
        service.readiness.clone(),
        service.shutdown.clone(),
    ));
    let (webhooks, webhooks_synced) = reflect_webhooks(&config, &service.readiness).await?;
    let replayer = Replayer::new(
        &config.kafka.connection()?,
        "hookline-console-replay",
        &config.events_topic,
    )?;
    let state = AppState {
        pool,
        auth,
        webhooks,
        replayer: Arc::new(replayer),
        metrics,
        webhooks_synced,
        namespaced: config.namespace().is_some(),
    };
    serve(app(state), &config, &service.shutdown).await?;
    service.stopped().await;
    Ok(())
}

/// How people sign in, from the flags.
fn auth_settings(config: &Config) -> AuthSettings {
    let proxy = config
        .auth_proxy_user_header
        .clone()
        .map(|user_header| ProxyAuth {
            user_header: user_header.to_ascii_lowercase(),
            groups_header: config
                .auth_proxy_groups_header
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            operator_groups: config.auth_proxy_operator_groups.clone(),
            trusted: config.auth_proxy_trusted_cidrs.clone(),
        });
    AuthSettings {
        users_file: config.users_file.clone(),
        session_key_file: config.session_key_file.clone(),
        session_lifetime: config.session_lifetime,
        session_idle_timeout: config.session_idle_timeout,
        secure_cookie: config.secure_cookie,
        proxy,
        throttle: ThrottleSettings {
            max_failures_per_user: config.login_max_failures_per_user,
            max_failures_per_source: config.login_max_failures_per_source,
            window: config.login_lockout,
        },
    }
}

/// The Webhooks the console sees, kept current by a reflector, and the flag set (with
/// the readiness condition `kubernetes`) once they have been listed.
async fn reflect_webhooks(
    config: &Config,
    readiness: &Readiness,
) -> Result<(Store<Webhook>, Arc<AtomicBool>), ConsoleError> {
    let client = Client::try_default()
        .await
        .map_err(ConsoleError::Kubernetes)?;
    let api: Api<Webhook> = match config.namespace() {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    let (store, writer) = reflector::store();
    let reflect = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(reflect);
        while let Some(event) = reflect.next().await {
            if let Err(err) = event {
                tracing::warn!(%err, "watching Webhooks failed; retrying");
            }
        }
    });
    let synced = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let store = store.clone();
        let synced = synced.clone();
        let readiness = readiness.clone();
        async move {
            if store.wait_until_ready().await.is_ok() {
                synced.store(true, Ordering::Release);
                readiness.set_ready(KUBERNETES);
            }
        }
    });
    Ok((store, synced))
}

/// Serves `app` on --listen-addr until `shutdown`, then for --shutdown-grace at most.
async fn serve(app: Router, config: &Config, shutdown: &Shutdown) -> Result<(), ConsoleError> {
    let addr = config.listen_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Listen { addr, source })?;
    tracing::info!(%addr, "console listening");
    let stopping = shutdown.clone();
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopping.wait().await });
    // Live streams never end by themselves: after the grace period they are dropped.
    tokio::select! {
        result = served => result.map_err(ConsoleError::Serve)?,
        () = async { shutdown.wait().await; tokio::time::sleep(config.shutdown_grace).await } => {
            tracing::info!("grace period over; dropping open streams");
        }
    }
    Ok(())
}

/// The pages and the API, with the security headers on every answer.
pub fn app(state: AppState) -> Router {
    assets::router()
        .merge(api::router(state))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in assets::security_headers() {
        headers.insert(name, value);
    }
    response
}

/// A lazy pool: the console starts (live, not ready) while PostgreSQL does not answer,
/// and every statement is bounded by --query-timeout.
fn pool(config: &Config) -> Result<PgPool, ConsoleError> {
    let options: PgConnectOptions = config
        .database_url
        .parse()
        .map_err(ConsoleError::DatabaseUrl)?;
    let timeout_ms = config.query_timeout.as_millis().to_string();
    let options = options
        .application_name("hookline-console")
        .options([("statement_timeout", timeout_ms.as_str())]);
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_lazy_with(options))
}
