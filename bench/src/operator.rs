//! The operator stage: how fast a Webhook's emitter Deployment appears after
//! `kubectl apply`, how long a cold start with many Webhooks takes, the operator's
//! resident memory meanwhile, and its CPU at rest afterwards. Runs the release binary against the stack's
//! kube-apiserver and Kafka, in a namespace of its own that it deletes afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use hookline_api::webhook::Webhook;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::process::Child;

use crate::local::BenchKeys;
use crate::report::{Report, rss_mb};

#[derive(clap::Args)]
pub struct Args {
    /// Webhooks present when the operator cold-starts.
    #[arg(long, default_value_t = 1000)]
    webhooks: usize,
    /// Webhooks applied one at a time to measure apply-to-Deployment latency.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Seconds the operator's CPU is measured at rest once every Webhook is ready
    /// (between resyncs: the first comes `--resync-seconds` after the cold start).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_seconds: u64,
    /// Port of the operator's /metrics during the run.
    #[arg(long, default_value_t = 19190)]
    ops_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    if args.latency_samples > args.webhooks {
        bail!("--latency-samples must not exceed --webhooks");
    }
    let client = Client::try_default()
        .await
        .context("no Kubernetes client: source .stack/env (make stack-up) first")?;
    install_crd(&client).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let suffix = &id[..8];
    let namespace = format!("bench-operator-{suffix}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.clone());
    namespaces.create(&PostParams::default(), &ns).await?;
    let webhooks: Api<Webhook> = Api::namespaced(client.clone(), &namespace);
    let mut report = Report::new("operator");
    report.figure("webhooks", args.webhooks);
    // The keyring the operator seals registry secrets with, the same across its restarts.
    let keys = BenchKeys::generate()?;

    // Apply-to-Deployment latency, one Webhook at a time with the operator running.
    let mut operator = Operator::start(&namespace, suffix, &keys.dir, args.ops_port).await?;
    let seen = watch_deployments(client.clone(), &namespace);
    let mut applied = HashMap::new();
    for i in 0..args.latency_samples {
        let name = format!("wh-{i:05}");
        applied.insert(format!("{name}-emitter"), Instant::now());
        webhooks
            .create(&PostParams::default(), &webhook(&name))
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latencies = loop {
        let seen = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("watch state poisoned"))?
            .clone();
        if applied.keys().all(|name| seen.contains_key(name)) {
            break applied
                .iter()
                .map(|(name, at)| seen[name].saturating_duration_since(*at))
                .collect::<Vec<_>>();
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} emitter Deployments appeared within 120 s",
                seen.len(),
                applied.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    report.latencies("apply_to_deployment", &mut latencies);
    operator.stop().await?;

    // Cold start: the rest of the Webhooks arrive while no operator runs.
    stream::iter(args.latency_samples..args.webhooks)
        .map(|i| {
            let webhooks = webhooks.clone();
            async move {
                webhooks
                    .create(&PostParams::default(), &webhook(&format!("wh-{i:05}")))
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let started = Instant::now();
    let mut operator = Operator::start(&namespace, suffix, &keys.dir, args.ops_port).await?;
    let deadline = started + Duration::from_secs(600);
    let mut peak_rss: f64 = 0.0;
    loop {
        let (rss, _) = rss_mb(operator.pid()?)?;
        peak_rss = peak_rss.max(rss);
        let list = webhooks.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|w| is_current_and_ready(w))
            .count();
        if ready >= args.webhooks {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {ready} of {} Webhooks ready within 600 s",
                args.webhooks
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cold = started.elapsed();
    report.figure(
        "cold_start_all_ready_s",
        crate::report::round(cold.as_secs_f64()),
    );
    let (rss, high_water) = rss_mb(operator.pid()?)?;
    report
        .figure("operator_rss_mb", rss)
        .figure("operator_peak_rss_mb", high_water.max(peak_rss));

    // At rest: every Webhook ready and nothing changing.
    let process = crate::local::Process::find(operator.pid()?)?;
    let cpu_before = process.cpu_seconds()?;
    let idle = Duration::from_secs(args.idle_seconds);
    tokio::time::sleep(idle).await;
    report.figure(
        "operator_idle_cpu_cores",
        crate::report::round((process.cpu_seconds()? - cpu_before) / idle.as_secs_f64()),
    );

    // Clean up while the operator runs, so finalizers remove the registry entries.
    let deleting = Instant::now();
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    let gone = tokio::time::timeout(Duration::from_secs(300), async {
        while namespaces
            .get_opt(&namespace)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    match gone {
        Ok(()) => {
            report.figure(
                "delete_all_finalized_s",
                crate::report::round(deleting.elapsed().as_secs_f64()),
            );
        }
        Err(_) => eprintln!("namespace {namespace} still terminating after 300 s"),
    }
    operator.stop().await?;
    Ok(report)
}

/// Reconciled at its current generation and Ready.
fn is_current_and_ready(webhook: &Webhook) -> bool {
    webhook.status.as_ref().is_some_and(|s| {
        s.observed_generation == webhook.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn webhook(name: &str) -> Webhook {
    // The emitter is disabled: the bench measures the operator, not pod churn in the
    // controller-manager of a cluster without kubelets.
    let spec = serde_json::json!({"customerId": "bench", "emitter": {"enabled": false}});
    Webhook::new(
        name,
        serde_json::from_value(spec).unwrap_or_else(|err| panic!("bench spec: {err}")),
    )
}

async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "webhooks.hookline.io",
        &PatchParams::apply("hookline-bench").force(),
        &Patch::Apply(hookline_api::webhook::definition()),
    )
    .await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            crds,
            "webhooks.hookline.io",
            conditions::is_crd_established(),
        ),
    )
    .await??;
    Ok(())
}

/// The first moment each Deployment of the namespace was seen.
fn watch_deployments(client: Client, namespace: &str) -> Arc<Mutex<HashMap<String, Instant>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(deployment)) = events.next().await {
            if let Ok(mut seen) = record.lock() {
                seen.entry(deployment.name_any())
                    .or_insert_with(Instant::now);
            }
        }
    });
    seen
}

/// The release operator binary, started next to this one.
struct Operator {
    child: Child,
}

impl Operator {
    async fn start(
        namespace: &str,
        suffix: &str,
        keys_dir: &std::path::Path,
        ops_port: u16,
    ) -> anyhow::Result<Self> {
        let child = crate::local::start_ready(
            "operator",
            |command| {
                command
                    .args(["--log-format", "text", "run"])
                    .args(["--watch-namespace", namespace])
                    // The Lease lives outside the bench namespace, which is deleted at
                    // the end while the operator still has finalizers to remove.
                    .args(["--lease-namespace", "default"])
                    .args(["--lease-name", &format!("bench-{suffix}")])
                    .args(["--public-base-url", "http://hooks.bench.local"])
                    .args([
                        "--in-cluster-handler-url",
                        "http://hookline-handler.bench.svc:8080",
                    ])
                    .args(["--ops-addr", &format!("127.0.0.1:{ops_port}")])
                    .arg("--registry-keys-dir")
                    .arg(keys_dir);
            },
            ops_port,
        )
        .await?;
        Ok(Self { child })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the operator exited")
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        // SIGTERM: the operator's graceful shutdown releases its Lease.
        crate::local::terminate(&mut self.child, Duration::from_secs(30)).await
    }
}
