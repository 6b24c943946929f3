//! dev-pod-runner: a development tool, not part of Hookline. On a machine with a
//! Kubernetes API server but no kubelets it plays the kubelet for Hookline's Pods: each
//! Pod the ReplicaSet controller creates becomes a local process of the matching binary,
//! with its arguments, environment and Secret files resolved; it is probed, restarted
//! when it dies, stopped when the Pod goes (`kubectl scale` works), and its readiness is
//! written to the Pod's status so Deployments report ready replicas. Optionally it keeps
//! nginx's upstream list equal to the ready handler replicas.
#![forbid(unsafe_code)]

mod inventory;
mod proxy;
mod resolve;
mod spec;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::config::Kubeconfig;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::resolve::ApiServer;

use crate::inventory::Inventory;
use crate::proxy::Proxy;
use crate::supervisor::{Shared, supervise};

/// Development tool (not part of Hookline): runs the Pods of Hookline's Deployments as
/// local processes on a machine without kubelets.
#[derive(Parser)]
#[command(name = "dev-pod-runner", version)]
struct Args {
    /// Namespace whose Pods to run.
    #[arg(long, env = "POD_RUNNER_NAMESPACE")]
    namespace: String,
    /// Label selector of the Pods to run.
    #[arg(
        long,
        env = "POD_RUNNER_SELECTOR",
        default_value = "app.kubernetes.io/part-of=hookline"
    )]
    selector: String,
    /// Directory of the binaries: image `hookline-handler:0.1.0` runs `<bin-dir>/hookline-handler`.
    #[arg(long, env = "POD_RUNNER_BIN_DIR", default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where Secret files, logs and pods.json go.
    #[arg(long, env = "POD_RUNNER_STATE_DIR", default_value = ".stack/pods")]
    state_dir: PathBuf,
    /// nginx upstream file to keep equal to the ready handler replicas.
    #[arg(long, env = "POD_RUNNER_PROXY_UPSTREAMS")]
    proxy_upstreams: Option<PathBuf>,
    /// Command that makes the proxy read its upstreams again (split on spaces).
    #[arg(long, env = "POD_RUNNER_PROXY_RELOAD", default_value = "")]
    proxy_reload: String,
    /// `app.kubernetes.io/component` of the Pods behind the proxy.
    #[arg(long, default_value = "handler")]
    proxied_component: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Text lines on stderr (dev/run.sh keeps them in .stack/logs), filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&args.state_dir)?;
    let client = Client::try_default().await?;
    let api_server = api_server()?;
    let shared = Arc::new(Shared {
        client: client.clone(),
        namespace: args.namespace.clone(),
        bin_dir: std::fs::canonicalize(&args.bin_dir)?,
        state_dir: std::fs::canonicalize(&args.state_dir)?,
        proxy: args.proxy_upstreams.clone().map(|file| {
            let proxy = Proxy::new(
                file,
                args.proxy_reload
                    .split_whitespace()
                    .map(String::from)
                    .collect(),
            );
            proxy.publish();
            proxy
        }),
        proxied_component: args.proxied_component.clone(),
        inventory: Inventory::new(args.state_dir.join("pods.json")),
        api_server,
    });
    let shutdown = cancel_on_signal()?;
    let pods: Api<Pod> = Api::namespaced(client, &args.namespace);
    let mut running: HashMap<String, (String, CancellationToken, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    // Backoff: without it an unreachable API server turns the watch into a busy loop.
    let mut events = watcher(pods, watcher::Config::default().labels(&args.selector))
        .default_backoff()
        .boxed();
    tracing::info!(namespace = %args.namespace, selector = %args.selector, "running pods locally");
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = shutdown.cancelled() => break,
        };
        match event {
            None => break,
            Some(Err(err)) => tracing::warn!(%err, "pod watch error; retrying"),
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                listed.insert(pod.name_any());
                ensure(&mut running, &pod, &shared);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let gone: Vec<String> = running
                    .keys()
                    .filter(|name| !listed.contains(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    stop(&mut running, &name).await;
                }
            }
            Some(Ok(watcher::Event::Apply(pod))) => ensure(&mut running, &pod, &shared),
            Some(Ok(watcher::Event::Delete(pod))) => stop(&mut running, &pod.name_any()).await,
        }
    }
    tracing::info!(pods = running.len(), "stopping every local process");
    for (_, stop, _) in running.values() {
        stop.cancel();
    }
    for (name, (_, _, task)) in running.drain() {
        let _ = task.await;
        tracing::info!(pod = %name, "stopped");
    }
    Ok(())
}

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C): the runner then stops every process.
fn cancel_on_signal() -> std::io::Result<CancellationToken> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("received SIGTERM, shutting down"),
            _ = sigint.recv() => tracing::info!("received Ctrl-C, shutting down"),
        }
        cancel.cancel();
    });
    Ok(token)
}

/// The server and CA of the runner's own kubeconfig: processes reach the same server.
fn api_server() -> anyhow::Result<ApiServer> {
    let kubeconfig = Kubeconfig::read()?;
    let context = kubeconfig.current_context.clone().unwrap_or_default();
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| anyhow::anyhow!("the kubeconfig's current context has no cluster"))?;
    Ok(ApiServer {
        server: cluster
            .server
            .ok_or_else(|| anyhow::anyhow!("the kubeconfig's cluster has no server"))?,
        certificate_authority_data: cluster.certificate_authority_data,
    })
}

/// Starts a supervisor for `pod` unless one runs for it (a new uid under the same name
/// replaces the old process); a Pod being deleted is stopped.
fn ensure(
    running: &mut HashMap<String, (String, CancellationToken, tokio::task::JoinHandle<()>)>,
    pod: &Pod,
    shared: &Arc<Shared>,
) {
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        if let Some((_, stop, _)) = running.get(&name) {
            stop.cancel();
        }
        return;
    }
    if running
        .get(&name)
        .is_some_and(|(known, _, _)| *known == uid)
    {
        return;
    }
    let spec = match spec::local_spec(pod) {
        Ok(spec) => spec,
        Err(err) => {
            tracing::error!(pod = %name, %err, "cannot run this pod");
            return;
        }
    };
    let component = pod.labels().get("app.kubernetes.io/component").cloned();
    let stop = CancellationToken::new();
    let task = tokio::spawn(supervise(spec, component, shared.clone(), stop.clone()));
    if let Some((_, old, _)) = running.insert(name, (uid, stop, task)) {
        old.cancel();
    }
}

async fn stop(
    running: &mut HashMap<String, (String, CancellationToken, tokio::task::JoinHandle<()>)>,
    name: &str,
) {
    if let Some((_, stop, task)) = running.remove(name) {
        stop.cancel();
        let _ = task.await;
        tracing::info!(pod = %name, "stopped");
    }
}
