//! One Pod as one local process: started with its resolved arguments, environment and
//! Secret files, probed, restarted when it dies, stopped when the Pod goes; its state is
//! reported in the Pod's status so the ReplicaSet and Deployment controllers count it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;
use crate::resolve::{environment, materialize_secrets, service_account_kubeconfig};
use crate::spec::{LocalSpec, PortRef};

/// What every supervisor shares.
pub struct Shared {
    pub client: Client,
    pub namespace: String,
    pub bin_dir: PathBuf,
    pub state_dir: PathBuf,
    pub proxy: Option<Proxy>,
    /// Pods with this `app.kubernetes.io/component` label are the proxy's upstreams.
    pub proxied_component: String,
    pub inventory: crate::inventory::Inventory,
    pub api_server: crate::resolve::ApiServer,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `spec` until `stop`, restarting it when it exits.
pub async fn supervise(
    spec: LocalSpec,
    component: Option<String>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let pod_dir = shared.state_dir.join(&spec.pod);
    let mut ports = BTreeMap::new();
    for (_, port) in &spec.ports {
        match free_port() {
            Ok(local) => {
                ports.insert(*port, local);
            }
            Err(err) => tracing::error!(%err, pod = %spec.pod, "no free local port"),
        }
    }
    let probe_port = spec
        .readiness
        .as_ref()
        .and_then(|(_, port)| spec.container_port(port))
        .and_then(|p| ports.get(&p).copied());
    // The proxy sends webhooks to the port named `http` (the Service's target); the
    // readiness probe may be on another (the handler's ops port).
    let proxied_port = (component.as_deref() == Some(shared.proxied_component.as_str()))
        .then(|| spec.container_port(&PortRef::Name("http".into())))
        .flatten()
        .and_then(|p| ports.get(&p).copied());
    shared.inventory.set(
        &spec.pod,
        component.clone(),
        spec.labels.clone(),
        ports.clone(),
    );
    let mut restarts = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let child = match start(&spec, &shared, &secrets, &ports, &pod_dir).await {
            Ok(child) => child,
            Err(err) => {
                tracing::error!(pod = %spec.pod, error = %err, "cannot start the pod's process");
                report(&pods, &spec, false, restarts, Some(&err)).await;
                if wait_or_stop(&stop, backoff(restarts)).await {
                    return;
                }
                restarts += 1;
                continue;
            }
        };
        tracing::info!(pod = %spec.pod, pid = child.id(), ?ports, "started");
        shared.inventory.set_pid(&spec.pod, child.id());
        let exited = run_until_exit_or_stop(
            child,
            &spec,
            &pods,
            &secrets,
            &pod_dir,
            probe_port,
            restarts,
            &shared,
            proxied_port,
            &stop,
        )
        .await;
        if proxied_port.is_some()
            && let Some(proxy) = &shared.proxy
        {
            proxy.set(&spec.pod, None);
        }
        match exited {
            None => {
                shared.inventory.remove(&spec.pod);
                return;
            }
            Some(status) => {
                tracing::warn!(pod = %spec.pod, %status, restarts, "the process exited; restarting");
                report(
                    &pods,
                    &spec,
                    false,
                    restarts,
                    Some(&format!("exited: {status}")),
                )
                .await;
                if wait_or_stop(&stop, backoff(restarts)).await {
                    return;
                }
                restarts += 1;
            }
        }
    }
}

fn backoff(restarts: u32) -> Duration {
    Duration::from_millis((500u64 << restarts.min(6)).min(30_000))
}

/// Sleeps `delay`; true when stop came first.
async fn wait_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = stop.cancelled() => true,
    }
}

async fn start(
    spec: &LocalSpec,
    shared: &Shared,
    secrets: &Api<Secret>,
    ports: &BTreeMap<i32, u16>,
    pod_dir: &std::path::Path,
) -> Result<Child, String> {
    std::fs::create_dir_all(pod_dir).map_err(|err| format!("{}: {err}", pod_dir.display()))?;
    let mounts = materialize_secrets(secrets, spec, pod_dir)
        .await
        .map_err(|e| e.to_string())?;
    let mut env = environment(secrets, spec, ports, &mounts)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(account) = &spec.service_account {
        let accounts: Api<ServiceAccount> =
            Api::namespaced(shared.client.clone(), &shared.namespace);
        let kubeconfig =
            service_account_kubeconfig(&accounts, &shared.api_server, spec, account, pod_dir)
                .await
                .map_err(|e| e.to_string())?;
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
    let binary = shared.bin_dir.join(&spec.binary);
    if !binary.is_file() {
        return Err(format!(
            "no binary {} for image {}",
            binary.display(),
            spec.binary
        ));
    }
    let log_path = pod_dir.join(format!("{}.log", spec.container));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|err| format!("{}: {err}", log_path.display()))?;
    let stderr = log.try_clone().map_err(|err| err.to_string())?;
    let mut command = Command::new(&binary);
    command
        .args(&spec.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // Its own process group: a Ctrl-C meant for the runner reaches it only through
        // the runner, which stops it gracefully.
        .process_group(0)
        .kill_on_drop(true);
    if let Ok(filter) = std::env::var("RUST_LOG") {
        command.env("RUST_LOG", filter);
    }
    command
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", binary.display()))
}

#[allow(clippy::too_many_arguments)]
async fn run_until_exit_or_stop(
    mut child: Child,
    spec: &LocalSpec,
    pods: &Api<Pod>,
    secrets: &Api<Secret>,
    pod_dir: &std::path::Path,
    probe_port: Option<u16>,
    restarts: u32,
    shared: &Shared,
    proxied_port: Option<u16>,
    stop: &CancellationToken,
) -> Option<std::process::ExitStatus> {
    let mut ready: Option<bool> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            status = child.wait() => {
                return Some(status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1)));
            }
            () = stop.cancelled() => {
                terminate(&mut child, spec.termination_grace_seconds).await;
                return None;
            }
            _ = tick.tick() => {}
        }
        ticks += 1;
        let now_ready = match (&spec.readiness, probe_port) {
            (Some((path, _)), Some(port)) => probe(port, path).await,
            _ => true,
        };
        if ready != Some(now_ready) {
            ready = Some(now_ready);
            report(pods, spec, now_ready, restarts, None).await;
            if proxied_port.is_some()
                && let Some(proxy) = &shared.proxy
            {
                proxy.set(&spec.pod, now_ready.then_some(proxied_port).flatten());
            }
        }
        // Secret files follow their Secrets, as a kubelet's volume sync does.
        if ticks.is_multiple_of(4)
            && let Err(err) = materialize_secrets(secrets, spec, pod_dir).await
        {
            tracing::warn!(pod = %spec.pod, error = %err, "cannot refresh the Secret files");
        }
        // Tokens last an hour; renew at half-life (the kubeconfig reads the token file).
        if ticks.is_multiple_of(TOKEN_RENEW_TICKS)
            && let Some(account) = &spec.service_account
        {
            let accounts: Api<ServiceAccount> =
                Api::namespaced(shared.client.clone(), &shared.namespace);
            if let Err(err) =
                service_account_kubeconfig(&accounts, &shared.api_server, spec, account, pod_dir)
                    .await
            {
                tracing::warn!(pod = %spec.pod, error = %err, "cannot renew the ServiceAccount token");
            }
        }
    }
}

/// 30 minutes of 500 ms ticks.
const TOKEN_RENEW_TICKS: u64 = 3_600;

/// SIGTERM, then SIGKILL after the Pod's grace period.
async fn terminate(child: &mut Child, grace_seconds: i64) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let grace = Duration::from_secs(u64::try_from(grace_seconds).unwrap_or(30));
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// GET `path` on the local port: ready on a 2xx.
async fn probe(port: u16, path: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.get(9) == Some(&b'2'))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

/// The Pod's status as a kubelet would write it.
async fn report(
    pods: &Api<Pod>,
    spec: &LocalSpec,
    ready: bool,
    restarts: u32,
    problem: Option<&str>,
) {
    let flag = if ready { "True" } else { "False" };
    let at = now();
    let state = match problem {
        None => json!({"running": {"startedAt": at}}),
        Some(message) => {
            json!({"waiting": {"reason": "LocalProcessNotRunning", "message": message}})
        }
    };
    let status = json!({"status": {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "hostIP": "127.0.0.1",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
            {"type": "Initialized", "status": "True", "lastTransitionTime": at},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": at},
            {"type": "Ready", "status": flag, "lastTransitionTime": at},
        ],
        "containerStatuses": [{
            "name": spec.container,
            "image": spec.binary,
            "imageID": "",
            "ready": ready,
            "started": problem.is_none(),
            "restartCount": restarts,
            "state": state,
        }],
    }});
    if let Err(err) = pods
        .patch_status(&spec.pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        tracing::debug!(pod = %spec.pod, %err, "cannot update the pod's status (it may be gone)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = now();
        assert_eq!(at.len(), 20, "{at}");
        assert!(at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");
        assert!(at.starts_with("20"), "{at}");
    }

    #[test]
    fn restarts_back_off_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_millis(2_000));
        assert_eq!(backoff(20), Duration::from_millis(30_000));
    }
}
