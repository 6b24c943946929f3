//! The system under test, as `make run` starts it (`dev/run.sh up` in a namespace of
//! its own), and ways to look at it and to hurt it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hookline_api::webhook::Webhook;
use hookline_core::signature::{self, Scheme, SigningSecret};
use hookline_emitter::metrics;
use hookline_testkit::eventually;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;
use sqlx::PgPool;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives below the repository root")
        .to_owned()
}

/// HOOKLINE_RUN_BIN_DIR, else the debug binaries `cargo build --bins` made here and in
/// dev/ (make test builds them first; dev/'s workspace builds into the same target/).
fn bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let dir = std::env::var_os("HOOKLINE_RUN_BIN_DIR")
        .map_or_else(|| target.join("debug"), PathBuf::from);
    const WORKSPACE: &str = "cargo build --workspace --bins";
    // dev-pod-runner is a development tool, in dev/'s workspace of its own.
    const DEV_TOOLS: &str = "cd dev && cargo build --bins";
    for (binary, build) in [
        ("hookline-operator", WORKSPACE),
        ("hookline-handler", WORKSPACE),
        ("hookline-consumer", WORKSPACE),
        ("hookline-emitter", WORKSPACE),
        ("hookline-console", WORKSPACE),
        ("dev-pod-runner", DEV_TOOLS),
    ] {
        assert!(
            dir.join(binary).is_file(),
            "{} is missing: run `{build}` (make test does)",
            dir.join(binary).display()
        );
    }
    dir
}

/// The headers of a JSON delivery signed with the Standard Webhooks `secret` (the
/// `whsec_` text a Webhook's Secret holds) now.
pub fn standard_signed_json_headers(
    secret: &str,
    message_id: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let signing = SigningSecret::parse(Scheme::Standard, secret).expect("the secret parses");
    let mut headers: Vec<(String, String)> = signature::sign(
        Scheme::Standard,
        std::slice::from_ref(&signing),
        message_id,
        chrono::Utc::now(),
        body,
    )
    .expect("sign")
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    headers.push(("Content-Type".into(), "application/json".into()));
    headers
}

pub struct System {
    pub namespace: String,
    pub webhooks: Api<Webhook>,
    pub db: PgPool,
    pub proxy_port: u16,
    pub pods_dir: PathBuf,
    bin_dir: PathBuf,
}

fn run_script(
    args: &[&str],
    namespace: &str,
    proxy_port: u16,
    bin_dir: &Path,
    env: &[(&str, String)],
) -> String {
    let output = Command::new(repo_root().join("dev/run.sh"))
        .args(args)
        .env("HOOKLINE_RUN_NAMESPACE", namespace)
        .env("HOOKLINE_PROXY_PORT", proxy_port.to_string())
        .env("HOOKLINE_RUN_BIN_DIR", bin_dir)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .output()
        .expect("run dev/run.sh");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "dev/run.sh {args:?} failed:\n{log}"
    );
    log
}

impl System {
    /// Starts everything (`dev/run.sh up`) in `namespace`.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with_env(namespace, &[]).await
    }

    /// Starts everything with `env` added to `dev/run.sh up`'s environment, e.g.
    /// HOOKLINE_OTLP_ENDPOINT.
    pub async fn start_with_env(namespace: &str, env: &[(&str, String)]) -> Self {
        let stack = hookline_testkit::stack();
        let bin_dir = bin_dir();
        let proxy_port = hookline_testkit::http::free_port();
        run_script(&["down"], namespace, proxy_port, &bin_dir, &[]);
        run_script(&["up"], namespace, proxy_port, &bin_dir, env);
        let kubeconfig = Kubeconfig::read_from(&stack.kubeconfig).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        let db = PgPool::connect(&stack.database_url)
            .await
            .expect("PostgreSQL");
        let pods_dir = stack_dir().join(format!("run-{namespace}/pods"));
        Self {
            namespace: namespace.to_owned(),
            webhooks: Api::namespaced(client, namespace),
            db,
            proxy_port,
            pods_dir,
            bin_dir,
        }
    }

    /// Posts a delivery to Webhook `webhook_id` through the proxy until a handler answers
    /// 202; a 5xx (no handler ready yet) is sent again, the same message, which is stored
    /// once. Panics on any other answer.
    pub async fn post_until_accepted(
        &self,
        webhook_id: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) {
        let path = format!("/webhooks/{webhook_id}");
        let mut last = (0, String::new());
        for _ in 0..10 {
            last = hookline_testkit::http::post(self.proxy_port, &path, headers, body)
                .unwrap_or_default();
            match last.0 {
                202 => return,
                status if status >= 500 || status == 0 => {
                    eprintln!("the proxy answered {status} ({}); sending again", last.1);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => break,
            }
        }
        panic!("the proxy answered {}: {}", last.0, last.1);
    }

    pub fn stop(&self) {
        run_script(
            &["down"],
            &self.namespace,
            self.proxy_port,
            &self.bin_dir,
            &[],
        );
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Applies a Webhook and returns its id once the operator has registered it.
    pub async fn create_webhook(&self, name: &str, spec: Value) -> String {
        let spec = serde_json::from_value(spec).expect("valid spec");
        self.webhooks
            .create(&PostParams::default(), &Webhook::new(name, spec))
            .await
            .expect("create Webhook");
        eventually(
            &format!("{name} registered"),
            Duration::from_secs(60),
            || async {
                let status = self.webhooks.get(name).await.ok()?.status?;
                let registered = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Registered" && c.status == "True");
                registered.then_some(status.webhook_id?)
            },
        )
        .await
    }

    /// A Secret holding `value` under the key `secret`, lent to Webhooks for their `secretRef`.
    pub async fn create_secret(&self, name: &str, value: &str) {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.webhooks.clone().into_client(), &self.namespace);
        let mut secret = k8s_openapi::api::core::v1::Secret::default();
        secret.metadata.name = Some(name.to_owned());
        secret.metadata.labels = Some(
            [(
                hookline_api::webhook::LENT_SECRET_LABEL.to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
        secret.string_data = Some([("secret".to_owned(), value.to_owned())].into());
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the Secret");
    }

    pub async fn patch_webhook(&self, name: &str, spec: Value) {
        self.webhooks
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patch Webhook");
    }

    /// The emitter processes' metrics of one Webhook, summed: (emitted, delivered, failed).
    pub fn emitter_counts(&self, webhook: &str) -> (f64, f64, f64) {
        let mut totals = (0.0, 0.0, 0.0);
        for port in self.ports_of(|labels| labels["hookline.io/webhook"] == webhook, "9090") {
            if let Some((_, body)) = hookline_testkit::http::get(port, "/metrics") {
                let sum = |name: &str| hookline_testkit::prometheus::family_sum(&body, name);
                totals.0 += sum(&metrics::EMITTED.exported());
                totals.1 += sum(&metrics::DELIVERED.exported());
                totals.2 += sum(&metrics::FAILED.exported());
            }
        }
        totals
    }

    /// The running pods (dev-pod-runner's pods.json) whose labels match.
    pub fn pods(&self, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let text = std::fs::read_to_string(self.pods_dir.join("pods.json")).unwrap_or_default();
        let pods: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        pods["pods"]
            .as_object()
            .map(|pods| {
                pods.values()
                    .filter(|p| matches(&p["labels"]))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Local ports (for `container_port`) of the running pods whose labels match.
    pub fn ports_of(&self, matches: impl Fn(&Value) -> bool, container_port: &str) -> Vec<u16> {
        self.pods(matches)
            .iter()
            .filter_map(|p| p["ports"][container_port].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect()
    }

    /// Process ids of the running pods of a component (`app.kubernetes.io/component`).
    pub fn pids_of(&self, component: &str) -> Vec<u32> {
        self.pods(|labels| labels["app.kubernetes.io/component"] == component)
            .iter()
            .filter_map(|p| p["pid"].as_u64())
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }

    /// Every signing secret of the namespace's Webhooks (current and previous keys).
    pub async fn signing_secrets(&self) -> Vec<String> {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.webhooks.clone().into_client(), &self.namespace);
        let list = secrets
            .list(&kube::api::ListParams::default())
            .await
            .expect("list Secrets");
        list.items
            .into_iter()
            .filter(|s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-signing"))
            })
            .flat_map(|s| s.data.unwrap_or_default())
            .filter(|(key, _)| key == "current" || key == "previous")
            .map(|(_, value)| String::from_utf8_lossy(&value.0).into_owned())
            .collect()
    }

    /// The /metrics pages of every running pod: (pod name, page).
    pub fn metrics_pages(&self) -> Vec<(String, String)> {
        metrics_ports(&self.pods_dir)
            .into_iter()
            .filter_map(|(name, _, port)| {
                let (_, body) = hookline_testkit::http::get(port, "/metrics")?;
                Some((name, body))
            })
            .collect()
    }

    /// The directory of dev-pod-runner's pods.json, for [`scrape_targets`] on another thread.
    pub fn pods_dir(&self) -> &Path {
        &self.pods_dir
    }

    /// The directory of the run's state (nginx, pods).
    pub fn run_dir(&self) -> PathBuf {
        stack_dir().join(format!("run-{}", self.namespace))
    }

    /// Waits until the Webhook's emitters delivered at least `n` events.
    pub async fn wait_delivered(&self, webhook: &str, n: f64) {
        eventually(
            &format!("{n} events delivered by {webhook}'s emitter"),
            Duration::from_secs(120),
            || async { (self.emitter_counts(webhook).1 >= n).then_some(()) },
        )
        .await;
    }

    /// Disables the emitter and returns what every emitter process of the Webhook
    /// reported when it stopped: (emitted, delivered, failed, abandoned).
    pub async fn disable_and_collect(&self, webhook: &str) -> Summary {
        self.patch_webhook(webhook, serde_json::json!({"emitter": {"enabled": false}}))
            .await;
        eventually(
            &format!("{webhook}'s emitters stopped"),
            Duration::from_secs(60),
            || async {
                self.ports_of(|labels| labels["hookline.io/webhook"] == webhook, "9090")
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        self.stopped_summaries(webhook)
    }

    /// Sums the "emitter stopped" lines in the logs of the Webhook's emitter pods.
    fn stopped_summaries(&self, webhook: &str) -> Summary {
        let mut summary = Summary::default();
        let prefix = format!("{webhook}-emitter-");
        for entry in std::fs::read_dir(&self.pods_dir)
            .expect("pods dir")
            .flatten()
        {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let log = std::fs::read_to_string(entry.path().join("emitter.log")).unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("emitter stopped")) {
                let fields: Value = serde_json::from_str(line).expect("JSON log line");
                summary.add_stopped_line(&fields);
            }
        }
        assert!(
            summary.processes > 0,
            "no emitter of {webhook} reported how it stopped"
        );
        summary
    }

    pub async fn count(&self, sql: &str, webhook_id: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(webhook_id)
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    pub async fn stored(&self, webhook_id: &str) -> i64 {
        self.count(
            "select count(*) from events where webhook_id = $1",
            webhook_id,
        )
        .await
    }

    pub async fn dead_lettered(&self, webhook_id: &str) -> i64 {
        self.count(
            "select count(*) from dead_letters where webhook_id = $1 and replayed_at is null",
            webhook_id,
        )
        .await
    }

    /// Runs the stack's kubectl or helm and asserts success.
    pub fn tool(&self, tool: &str, args: &[&str]) -> String {
        let stack = hookline_testkit::stack();
        let program = if tool == "helm" {
            &stack.helm
        } else {
            &stack.kubectl
        };
        let output = Command::new(program)
            .args(args)
            .env("KUBECONFIG", &stack.kubeconfig)
            .output()
            .expect("run tool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{tool} {args:?}: {text}");
        text
    }

    /// The topics of the release: dev/run.sh prefixes them with the namespace.
    pub fn topics(&self) -> hookline_api::topics::TopicNames {
        hookline_api::topics::TopicNames::with_prefix(&self.namespace)
    }

    /// Sets Helm values (`key=<JSON>`) on the running release and waits for the rollout.
    pub fn helm_set(&self, values: &[&str], deployment: &str) {
        let chart = repo_root().join("helm/hookline");
        let mut args = vec![
            "upgrade",
            "hookline",
            chart.to_str().expect("path"),
            "-n",
            &self.namespace,
            "--reuse-values",
        ];
        for value in values {
            args.extend(["--set-json", value]);
        }
        self.tool("helm", &args);
        self.tool(
            "kubectl",
            &[
                "-n",
                &self.namespace,
                "rollout",
                "status",
                &format!("deployment/{deployment}"),
                "--timeout=120s",
            ],
        );
    }
}

/// (pod name, component, local port of /metrics) of every running pod in `pods_dir`.
fn metrics_ports(pods_dir: &Path) -> Vec<(String, String, u16)> {
    let text = std::fs::read_to_string(pods_dir.join("pods.json")).unwrap_or_default();
    let pods: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    pods["pods"]
        .as_object()
        .map(|pods| {
            pods.iter()
                .filter_map(|(name, pod)| {
                    // Every component serves /metrics on its ops port.
                    let port = pod["ports"]["9090"].as_u64()?;
                    let component = pod["labels"]["app.kubernetes.io/component"]
                        .as_str()
                        .unwrap_or("emitter")
                        .to_owned();
                    Some((name.clone(), component, u16::try_from(port).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every running pod of `pods_dir` as a Prometheus target, labelled as a PodMonitor
/// labels a pod: namespace, pod, container (the component).
pub fn scrape_targets(
    pods_dir: &Path,
    namespace: &str,
) -> Vec<hookline_testkit::prometheus::Target> {
    metrics_ports(pods_dir)
        .into_iter()
        .map(
            |(pod, component, port)| hookline_testkit::prometheus::Target {
                port,
                labels: vec![
                    ("namespace".to_owned(), namespace.to_owned()),
                    ("pod".to_owned(), pod),
                    ("container".to_owned(), component),
                ],
            },
        )
        .collect()
}

/// The stack's state directory (.stack unless HOOKLINE_STACK_DIR says otherwise).
pub fn stack_dir() -> PathBuf {
    hookline_testkit::stack()
        .vars
        .get("HOOKLINE_STACK_DIR")
        .map_or_else(|| repo_root().join(".stack"), PathBuf::from)
}

impl Drop for System {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs stay in {} for a look", self.pods_dir.display());
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub processes: u64,
    pub emitted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub abandoned: u64,
}

impl Summary {
    /// Adds what one emitter process's "emitter stopped" log line reports.
    pub fn add_stopped_line(&mut self, fields: &Value) {
        let n = |k: &str| fields[k].as_u64().unwrap_or(0);
        self.processes += 1;
        self.emitted += n("emitted");
        self.delivered += n("delivered");
        self.failed += n("failed");
        self.abandoned += n("abandoned");
    }
}
