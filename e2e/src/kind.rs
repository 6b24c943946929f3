//! Hookline on the kind cluster of `make kind-up`, reached as a user reaches it: kubectl
//! and helm for the cluster, the Ingress on the host's loopback port for senders, psql in
//! the cluster's PostgreSQL pod for the rows. `dev/kind.sh test` sets the environment.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use hookline_core::signature::{Scheme, SigningSecret, sign};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::system::Summary;
use hookline_testkit::eventually;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the test with make kind-test"))
}

/// The cluster and the release under test.
pub struct KindCluster {
    pub namespace: String,
    pub release: String,
    /// host:port of the Ingress on the host (kind's port mapping).
    pub ingress: String,
    /// The Host header the Ingress routes on.
    pub ingress_host: String,
    /// The Host header of the console's Ingress.
    pub console_host: String,
    pub chart: String,
    /// The `--set=...` arguments `make kind-up` installed the chart with.
    pub chart_values: Vec<String>,
    /// The console's sign-ins `make kind-up` made (`user:role:password` lines); the
    /// cluster holds only their hashes.
    pub console_sign_ins: PathBuf,
    pub client: Client,
}

impl KindCluster {
    pub async fn from_env() -> Self {
        let client = Client::try_default()
            .await
            .expect("a kube client from KUBECONFIG (make kind-test sets it)");
        Self {
            namespace: env("HOOKLINE_KIND_NAMESPACE"),
            release: env("HOOKLINE_KIND_RELEASE"),
            ingress: env("HOOKLINE_KIND_INGRESS"),
            ingress_host: env("HOOKLINE_KIND_INGRESS_HOST"),
            console_host: env("HOOKLINE_KIND_CONSOLE_HOST"),
            chart: env("HOOKLINE_KIND_CHART"),
            chart_values: env("HOOKLINE_KIND_CHART_VALUES")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            console_sign_ins: PathBuf::from(env("HOOKLINE_KIND_CONSOLE_SIGN_INS")),
            client,
        }
    }

    /// Runs a command (kubectl or helm from PATH), feeding it `stdin`; panics with its
    /// output when it fails.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{program}: {err}"));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let output = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        self.run("kubectl", &all, None)
    }

    /// `kubectl apply -f -` of a Webhook, then its id once it is Ready.
    pub async fn apply_webhook(&self, name: &str, spec: &Value) -> String {
        let manifest = serde_json::json!({
            "apiVersion": "hookline.io/v1alpha1",
            "kind": "Webhook",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        });
        self.run(
            "kubectl",
            &["apply", "-f", "-"],
            Some(&manifest.to_string()),
        );
        self.kubectl(&[
            "wait",
            &format!("webhook/{name}"),
            "--for=condition=Ready",
            "--timeout=180s",
        ]);
        self.kubectl(&["get", "webhook", name, "-o", "jsonpath={.status.webhookId}"])
    }

    /// The Webhook's current signing secret, from the Secret the operator keeps.
    pub async fn signing_secret(&self, name: &str) -> SigningSecret {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = secrets
            .get(&format!("{name}-signing"))
            .await
            .expect("the Webhook's signing Secret");
        let current = secret
            .data
            .unwrap_or_default()
            .remove("current")
            .expect("a current key in the signing Secret");
        SigningSecret::parse(Scheme::Standard, &String::from_utf8_lossy(&current.0))
            .expect("a valid Standard Webhooks secret")
    }

    /// Runs SQL in the cluster's PostgreSQL (psql in its pod) and returns the rows.
    pub fn sql(&self, query: &str) -> Vec<String> {
        self.kubectl(&[
            "exec",
            &format!("statefulset/{}-postgres", self.release),
            "--",
            "psql",
            "-U",
            "hookline",
            "-d",
            "hookline",
            "-tAc",
            query,
        ])
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
    }

    /// The message ids stored for a Webhook (one row each: the primary key forbids more).
    pub fn stored_ids(&self, webhook_id: &str) -> Vec<String> {
        assert!(
            webhook_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        self.sql(&format!(
            "select message_id from events where webhook_id = '{webhook_id}' order by 1"
        ))
    }

    pub fn helm(&self, args: &[&str]) -> String {
        self.run("helm", args, None)
    }

    /// Waits for a rollout of `kind/name` (deployment or statefulset) to finish.
    pub fn rollout(&self, target: &str) {
        self.kubectl(&["rollout", "status", target, "--timeout=300s"]);
    }

    pub fn pod_names(&self, selector: &str) -> Vec<String> {
        self.kubectl(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    }
}

/// Signs and POSTs events through the Ingress until stopped; each message is retried with
/// the same id (re-signed) until the handler accepts it. Keeps the ids that were accepted.
pub struct Sender {
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<BTreeSet<String>>>,
    statuses: Arc<Mutex<HashMap<u16, u64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sender {
    /// `workers` threads, each sending one request every `interval`.
    pub fn start(
        cluster: &KindCluster,
        webhook_id: &str,
        secret: SigningSecret,
        workers: usize,
        interval: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(BTreeSet::new()));
        let statuses = Arc::new(Mutex::new(HashMap::new()));
        let secret = Arc::new(secret);
        let tasks = (0..workers)
            .map(|worker| {
                let (stop, accepted, statuses, secret) = (
                    stop.clone(),
                    accepted.clone(),
                    statuses.clone(),
                    secret.clone(),
                );
                let path = format!("/webhooks/{webhook_id}");
                let (ingress, host) = (cluster.ingress.clone(), cluster.ingress_host.clone());
                tokio::task::spawn_blocking(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("msg_kind_{worker}_{n}");
                        n += 1;
                        let body = serde_json::json!({
                            "event_id": id, "event_type": "CREATED",
                            "timestamp": chrono::Utc::now().to_rfc3339(),
                            "data": {"invoice_id": format!("inv-{worker}-{n}")},
                        })
                        .to_string();
                        // Retried until accepted: a 503 during a scale-down or a reset
                        // connection is what a real sender retries too.
                        for _ in 0..120 {
                            let status = post_signed(&ingress, &host, &path, &secret, &id, &body);
                            *statuses.lock().expect("lock").entry(status).or_default() += 1;
                            if (200..300).contains(&status) {
                                accepted.lock().expect("lock").insert(id.clone());
                                break;
                            }
                            assert!(
                                status == 0 || status == 429 || status >= 500,
                                "{id}: the handler answered {status}, which a sender does not retry"
                            );
                            std::thread::sleep(Duration::from_millis(250));
                        }
                        std::thread::sleep(interval);
                    }
                })
            })
            .collect();
        Self {
            stop,
            accepted,
            statuses,
            tasks,
        }
    }

    /// Stops sending; returns the accepted ids and how often each status was answered.
    pub async fn stop(self) -> (BTreeSet<String>, HashMap<u16, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("sender thread");
        }
        let accepted = self.accepted.lock().expect("lock").clone();
        let statuses = self.statuses.lock().expect("lock").clone();
        (accepted, statuses)
    }
}

impl KindCluster {
    /// `GET path` of the console through its Ingress, with HTTP Basic when given:
    /// (status, body), status 0 when the connection failed.
    pub fn console_get(&self, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
        use base64::Engine;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.console_host
        );
        if let Some((user, password)) = basic {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        let Ok(mut stream) = TcpStream::connect(&self.ingress) else {
            return (0, String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        if stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

/// One signed POST over a fresh connection; the status, or 0 when the connection failed.
fn post_signed(
    ingress: &str,
    host: &str,
    path: &str,
    secret: &SigningSecret,
    id: &str,
    body: &str,
) -> u16 {
    let headers = sign(
        Scheme::Standard,
        std::slice::from_ref(secret),
        id,
        chrono::Utc::now(),
        body.as_bytes(),
    )
    .expect("sign");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    exchange(ingress, &request)
}

/// Sends a whole HTTP/1.1 `request` (with `Connection: close`) to `ingress` on a fresh
/// connection; the status it answered, or 0 when the connection failed.
pub fn exchange(ingress: &str, request: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(ingress) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Follows the logs of a Webhook's emitter pods, old and new, and keeps each pod's
/// "emitter stopped" line: what it emitted, delivered, failed and abandoned.
pub struct EmitterLogs {
    stop: Arc<AtomicBool>,
    followed: Arc<Mutex<BTreeSet<String>>>,
    stopped_lines: Arc<Mutex<Vec<Value>>>,
}

impl EmitterLogs {
    pub fn follow(cluster: &KindCluster, webhook: &str) -> Self {
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        let selector = format!("app.kubernetes.io/component=emitter,hookline.io/webhook={webhook}");
        let logs = Self {
            stop: Arc::new(AtomicBool::new(false)),
            followed: Arc::new(Mutex::new(BTreeSet::new())),
            stopped_lines: Arc::new(Mutex::new(Vec::new())),
        };
        let (stop, followed, lines) = (
            logs.stop.clone(),
            logs.followed.clone(),
            logs.stopped_lines.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let list = pods.list(&ListParams::default().labels(&selector)).await;
                for pod in list.map(|l| l.items).unwrap_or_default() {
                    let running = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|p| p == "Running");
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if !running || !followed.lock().expect("lock").insert(name.clone()) {
                        continue;
                    }
                    let (pods, lines) = (pods.clone(), lines.clone());
                    tokio::spawn(async move {
                        let params = LogParams {
                            follow: true,
                            ..LogParams::default()
                        };
                        let Ok(stream) = pods.log_stream(&name, &params).await else {
                            return;
                        };
                        let mut stream = stream.lines();
                        while let Some(Ok(line)) = stream.next().await {
                            if line.contains("emitter stopped")
                                && let Ok(fields) = serde_json::from_str::<Value>(&line)
                            {
                                lines.lock().expect("lock").push(fields);
                            }
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        logs
    }

    /// Waits until every followed pod has said how it stopped, and sums what they said.
    pub async fn summary(self) -> Summary {
        let summary = eventually(
            "every emitter pod's \"emitter stopped\" line",
            Duration::from_secs(90),
            || async {
                let followed = self.followed.lock().expect("lock").len();
                let lines = self.stopped_lines.lock().expect("lock").clone();
                (followed > 0 && lines.len() >= followed).then_some(lines)
            },
        )
        .await;
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Summary::default();
        for fields in &summary {
            total.add_stopped_line(fields);
        }
        total
    }
}
