//! The whole system as `make run` starts it (`dev/run.sh up` in a namespace of the
//! stage's own, release binaries), for the stages that measure it: its pods and other
//! processes, its Webhooks, and waiting until a Webhook's traffic can flow.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hookline_api::webhook::Webhook;
use hookline_runtime::kafka::{KafkaConnection, client_config};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

use crate::local::{Process, ThreadSwitches, cpu_seconds, http_get, http_post, thread_switches};

/// The replicas `dev/run.sh` gives the chart.
pub const HANDLERS: usize = 3;
pub const CONSUMERS: usize = 2;
/// Container ports of the chart's pods (dev-pod-runner maps each to a local port).
const HANDLER_PORT: &str = "8080";
const OPS_PORT: &str = "9090";

/// `dev/run.sh up` (or `down`) in `namespace`, with the release binaries next to this one
/// and `RUST_LOG=warn`.
pub fn run_script(command: &str, namespace: &str, proxy_port: u16) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the bench binary has no directory")?
        .to_owned();
    let status = Command::new(root.join("dev/run.sh"))
        .arg(command)
        .env("HOOKLINE_RUN_NAMESPACE", namespace)
        .env("HOOKLINE_PROXY_PORT", proxy_port.to_string())
        .env("HOOKLINE_RUN_BIN_DIR", &bin_dir)
        .env("RUST_LOG", "warn")
        .status()
        .context("cannot run dev/run.sh")?;
    if !status.success() {
        bail!("dev/run.sh {command} failed ({status})");
    }
    Ok(())
}

/// The running system of one namespace.
pub struct System {
    pub namespace: &'static str,
    pub webhooks: Api<Webhook>,
    stack: PathBuf,
    /// Partitions of the events topic, which the consumers must hold between them.
    partitions: i64,
}

impl System {
    pub async fn connect(namespace: &'static str, kafka: &KafkaConnection) -> anyhow::Result<Self> {
        let client = Client::try_default().await?;
        Ok(Self {
            namespace,
            webhooks: Api::namespaced(client, namespace),
            stack: std::env::var("HOOKLINE_STACK_DIR")
                .unwrap_or_else(|_| ".stack".into())
                .into(),
            partitions: partitions(kafka, &events_topic(namespace)).await?,
        })
    }

    /// Creates Webhook `name` of `spec`; its id once the operator gave it one.
    pub async fn create_webhook(&self, name: &str, spec: Value) -> anyhow::Result<String> {
        self.webhooks
            .create(
                &PostParams::default(),
                &Webhook::new(name, serde_json::from_value(spec)?),
            )
            .await?;
        for _ in 0..240 {
            let webhook = self.webhooks.get(name).await?;
            if let Some(id) = webhook.status.and_then(|s| s.webhook_id) {
                return Ok(id);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("Webhook {name} got no id within 60 s")
    }

    pub async fn set_emitter(&self, name: &str, enabled: bool) -> anyhow::Result<()> {
        self.webhooks
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"emitter": {"enabled": enabled}}})),
            )
            .await?;
        Ok(())
    }

    /// Waits until every handler knows Webhook `id` and the consumers hold every
    /// partition of the events topic between them: its events would flow.
    pub async fn wait_until_loaded(
        &self,
        name: &str,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_until(
            &format!("every handler knows Webhook {name}"),
            timeout,
            || self.handlers_know(id),
        )
        .await?;
        wait_until(
            &format!(
                "the consumers hold all {} partitions of {}",
                self.partitions,
                events_topic(self.namespace)
            ),
            timeout,
            || self.consumers_assigned(),
        )
        .await
    }

    /// An unsigned POST straight to each handler: 401 (a bad signature) only once the
    /// handler has the Webhook; 404 while it has not read it from the registry yet.
    /// It produces nothing and spends no rate limit (only verified requests do).
    async fn handlers_know(&self, id: &str) -> anyhow::Result<Result<(), String>> {
        let handlers = self.pods("handler")?;
        if handlers.len() != HANDLERS {
            return Ok(Err(format!("{} handler pods run", handlers.len())));
        }
        for pod in handlers {
            let port = pod.port(HANDLER_PORT)?;
            match http_post(port, &format!("/webhooks/{id}"), "{}").await {
                Ok((401, _)) => {}
                Ok((status, body)) => {
                    return Ok(Err(format!("{} answers {status} {body}", pod.name)));
                }
                Err(err) => return Ok(Err(format!("{}: {err}", pod.name))),
            }
        }
        Ok(Ok(()))
    }

    async fn consumers_assigned(&self) -> anyhow::Result<Result<(), String>> {
        let consumers = self.pods("consumer")?;
        if consumers.len() != CONSUMERS {
            return Ok(Err(format!("{} consumer pods run", consumers.len())));
        }
        let mut held = Vec::new();
        for pod in consumers {
            let metrics = match http_get(pod.port(OPS_PORT)?, "/metrics").await {
                Ok((200, body)) => body,
                Ok((status, _)) => return Ok(Err(format!("{} /metrics: {status}", pod.name))),
                Err(err) => return Ok(Err(format!("{} /metrics: {err}", pod.name))),
            };
            held.push(
                sample(
                    &metrics,
                    "hookline_consumer_assigned_partitions{source=\"events\"}",
                )
                .unwrap_or(0.0) as i64,
            );
        }
        // Every consumer holds some (a rebalance is over) and together they hold all.
        if held.iter().sum::<i64>() == self.partitions && held.iter().all(|n| *n > 0) {
            Ok(Ok(()))
        } else {
            Ok(Err(format!("they hold {held:?}")))
        }
    }

    /// Waits until the emitter of Webhook `name` runs `replicas` ready pods.
    pub async fn wait_for_emitters(
        &self,
        name: &str,
        replicas: u32,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_until(
            &format!("the emitter replicas of {name} ({replicas}) are ready"),
            timeout,
            || self.emitters_ready(name, replicas),
        )
        .await
    }

    async fn emitters_ready(
        &self,
        name: &str,
        replicas: u32,
    ) -> anyhow::Result<Result<(), String>> {
        let emitters = self.emitter_pods(name)?;
        if emitters.len() != replicas as usize {
            return Ok(Err(format!("{} emitter pods run", emitters.len())));
        }
        for pod in emitters {
            if !matches!(http_get(pod.port(OPS_PORT)?, "/readyz").await, Ok((200, _))) {
                return Ok(Err(format!("{} is not ready", pod.name)));
            }
        }
        Ok(Ok(()))
    }

    /// The processes of each kind: `emitter` (of Webhook `webhook`) and the chart's
    /// components are pods from dev-pod-runner's inventory; `proxy` (nginx), `kafka`,
    /// `postgres`, `kube-apiserver` and `etcd` come from the pid files of `dev/run.sh`
    /// and `dev/stack.sh`.
    pub fn processes(
        &self,
        kinds: &[&'static str],
        webhook: Option<&str>,
    ) -> anyhow::Result<Kinds> {
        let pids = |pods: Vec<Pod>| -> Vec<u32> { pods.iter().map(|p| p.pid).collect() };
        let mut found_kinds = Vec::new();
        for &kind in kinds {
            let found = match kind {
                "emitter" => pids(self.emitter_pods(webhook.unwrap_or_default())?),
                "proxy" => vec![self.pid_file(&format!("nginx-{}", self.namespace))?],
                "kafka" | "postgres" | "kube-apiserver" | "etcd" => vec![self.pid_file(kind)?],
                component => pids(self.pods(component)?),
            };
            if found.is_empty() {
                bail!("no {kind} process found");
            }
            let processes = found
                .into_iter()
                .map(Process::find)
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("a {kind} process"))?;
            found_kinds.push((kind, processes));
        }
        Ok(Kinds(found_kinds))
    }

    fn pid_file(&self, name: &str) -> anyhow::Result<u32> {
        let path = self.stack.join("run").join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} holds no pid", path.display()))
    }

    /// The running pods (with a process) of one component, from dev-pod-runner's
    /// inventory.
    fn pods(&self, component: &str) -> anyhow::Result<Vec<Pod>> {
        let path = self
            .stack
            .join(format!("run-{}", self.namespace))
            .join("pods/pods.json");
        pods_of(&path, component)
    }

    fn emitter_pods(&self, webhook: &str) -> anyhow::Result<Vec<Pod>> {
        let mut pods = self.pods("emitter")?;
        pods.retain(|p| p.webhook.as_deref() == Some(webhook));
        Ok(pods)
    }
}

fn pods_of(inventory_path: &Path, component: &str) -> anyhow::Result<Vec<Pod>> {
    let text = std::fs::read_to_string(inventory_path)
        .with_context(|| format!("cannot read {}", inventory_path.display()))?;
    let inventory: Value = serde_json::from_str(&text)
        .with_context(|| format!("malformed {}", inventory_path.display()))?;
    Ok(inventory["pods"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, pod)| pod["component"] == component)
        .filter_map(|(name, pod)| {
            Some(Pod {
                name: name.clone(),
                pid: u32::try_from(pod["pid"].as_u64()?).ok()?,
                webhook: pod["labels"]["hookline.io/webhook"]
                    .as_str()
                    .map(str::to_owned),
                ports: pod["ports"].clone(),
            })
        })
        .collect())
}

/// A pod of the inventory.
struct Pod {
    name: String,
    pid: u32,
    webhook: Option<String>,
    /// Container port -> local port.
    ports: Value,
}

impl Pod {
    fn port(&self, container_port: &str) -> anyhow::Result<u16> {
        self.ports[container_port]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("{} has no port {container_port}", self.name))
    }
}

/// The processes of each kind.
pub struct Kinds(pub Vec<(&'static str, Vec<Process>)>);

impl Kinds {
    /// CPU seconds so far, by kind.
    pub fn cpu_seconds(&self) -> anyhow::Result<Vec<f64>> {
        self.0
            .iter()
            .map(|(kind, processes)| {
                cpu_seconds(processes).with_context(|| format!("a {kind} process"))
            })
            .collect()
    }

    /// Every thread's context switches so far, by kind.
    pub fn thread_switches(&self) -> anyhow::Result<Vec<Vec<ThreadSwitches>>> {
        self.0
            .iter()
            .map(|(kind, processes)| {
                thread_switches(processes).with_context(|| format!("a {kind} process"))
            })
            .collect()
    }
}

/// Calls `check` every 250 ms until it says done (`Ok(())`), and says how long that
/// took; fails after `timeout` with the last reason it gave.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<(), String>>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    loop {
        let reason = match check().await? {
            Ok(()) => {
                println!("{what} ({:.1} s)", started.elapsed().as_secs_f64());
                return Ok(());
            }
            Err(reason) => reason,
        };
        if tokio::time::Instant::now() > deadline {
            bail!(
                "not within {} s: {what} (last: {reason})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the Prometheus sample `name` (with its labels, as exposed).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The events topic of a release: dev/run.sh prefixes the topics with its namespace.
fn events_topic(namespace: &str) -> String {
    hookline_api::topics::TopicNames::with_prefix(namespace).events
}

/// Partitions of `topic`.
async fn partitions(kafka: &KafkaConnection, topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = client_config(kafka, "hookline-bench").create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(30))?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            bail!("topic {topic} has no partitions");
        }
        Ok(i64::try_from(count)?)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let metrics = "# TYPE x gauge\n\
                       hookline_consumer_assigned_partitions{source=\"events\"} 3\n\
                       hookline_consumer_assigned_partitions{source=\"retries\"} 12\n";
        let name = "hookline_consumer_assigned_partitions{source=\"events\"}";
        assert_eq!(sample(metrics, name), Some(3.0));
        assert_eq!(
            sample(metrics, "hookline_consumer_assigned_partitions"),
            None
        );
    }

    #[test]
    fn pods_of_a_component_come_from_the_inventory() {
        let dir = std::env::temp_dir().join(format!("bench-pods-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pods.json");
        let inventory = json!({"pods": {
            "hookline-handler-a": {"component": "handler", "pid": 11, "ports": {"8080": 30001}},
            "bench-emitter-b": {"component": "emitter", "pid": 12, "ports": {},
                                "labels": {"hookline.io/webhook": "bench"}},
            "hookline-handler-c": {"component": "handler", "ports": {}},
        }});
        std::fs::write(&path, inventory.to_string()).unwrap();
        let handlers = pods_of(&path, "handler").unwrap();
        let emitters = pods_of(&path, "emitter").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // A pod without a process (not started yet) is not one of them.
        assert_eq!(handlers.len(), 1);
        assert_eq!(handlers[0].port(HANDLER_PORT).unwrap(), 30001);
        assert!(handlers[0].port(OPS_PORT).is_err());
        assert_eq!(emitters[0].webhook.as_deref(), Some("bench"));
        assert_eq!(emitters[0].pid, 12);
    }
}
