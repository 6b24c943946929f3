//! The operator's configuration: flags with environment fallbacks, validated at start-up.

use std::time::Duration;

use clap::{Parser, Subcommand};
use hookline_api::topics::{self, TopicNames};
use hookline_runtime::config::{CommonArgs, KafkaArgs, OpsArgs, RegistryKeysArgs, parse_http_url};

use crate::desired::Settings;
use crate::limits::Limits;

/// Hookline's operator: reconciles Webhook resources into signing Secrets, emitter
/// Deployments, registry entries and status conditions. The Kubernetes API server is
/// found the usual way (KUBECONFIG, ~/.kube/config, or the in-cluster service account).
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-operator", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the Webhook CustomResourceDefinition as YAML (what crds/webhook.yaml holds).
    Crd,
    /// Reconcile Webhook resources until SIGTERM.
    Run(Box<RunArgs>),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub registry_keys: RegistryKeysArgs,
    /// Container image of the emitter Deployments the operator creates.
    #[arg(
        long,
        env = "HOOKLINE_EMITTER_IMAGE",
        default_value = "hookline-emitter:dev"
    )]
    pub emitter_image: String,
    /// Base URL senders use to reach the handler (the Ingress); endpoints are
    /// `<this>/webhooks/<id>`.
    #[arg(long, env = "HOOKLINE_PUBLIC_BASE_URL", value_parser = parse_base_url)]
    pub public_base_url: String,
    /// The handler Service's URL inside the cluster: the emitters' default target.
    #[arg(long, env = "HOOKLINE_HANDLER_URL", value_parser = parse_base_url)]
    pub in_cluster_handler_url: String,
    #[command(flatten)]
    pub limits: Limits,
    /// Write a NetworkPolicy beside each emitter Deployment: its pods may leave only for
    /// DNS (53) and the port of the Webhook's target. Off: none is written (the ones
    /// written before stay until their Webhook goes).
    #[arg(long, env = "HOOKLINE_EMITTER_NETWORK_POLICY", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub emitter_network_policy: bool,
    /// The port the handler's pods listen on behind the Service of --in-cluster-handler-url:
    /// an emitter NetworkPolicy allows it beside the Service's port, because policy
    /// engines see Service traffic at the pod's port.
    #[arg(long, env = "HOOKLINE_HANDLER_POD_PORT", default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub handler_pod_port: u16,
    /// The log-compacted topic the registry is published to.
    #[arg(long, env = "HOOKLINE_REGISTRY_TOPIC", default_value = topics::REGISTRY)]
    pub registry_topic: String,
    /// The events topic created at start (its retry tiers are `<this>.retry.<n>`).
    #[arg(long, env = "HOOKLINE_EVENTS_TOPIC", default_value = topics::EVENTS)]
    pub events_topic: String,
    /// The dead-letter topic created at start.
    #[arg(long, env = "HOOKLINE_DEAD_LETTER_TOPIC", default_value = topics::DEAD_LETTERS)]
    pub dead_letter_topic: String,
    /// Partitions of the events, retry and dead-letter topics created at start.
    #[arg(long, env = "HOOKLINE_TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub topic_partitions: i32,
    /// Replication factor of the topics created at start.
    #[arg(long, env = "HOOKLINE_TOPIC_REPLICATION", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: i32,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "HOOKLINE_LEASE_NAME", default_value = "hookline-operator")]
    pub lease_name: String,
    /// The Deployment (in the Lease's namespace) that owns the Lease, so that deleting the
    /// operator (helm uninstall) garbage-collects it too, even one a stopping replica
    /// re-created at the last moment. Unset: the Lease has no owner.
    #[arg(long, env = "HOOKLINE_LEASE_OWNER_DEPLOYMENT")]
    pub lease_owner_deployment: Option<String>,
    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a leader may go without renewing before another replica takes over.
    #[arg(long, env = "HOOKLINE_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    pub lease_seconds: u64,
    /// Reconcile Webhooks of this namespace only (default: all namespaces).
    #[arg(long, env = "HOOKLINE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Reconciles running at once; 0: no limit. With 1,000 Webhooks (one HTTP/2
    /// connection to the API server) no limit made a cold start take 9 s at a 96 MB
    /// peak, a limit of 100 about 50 s at 56 MB.
    #[arg(long, env = "HOOKLINE_RECONCILE_CONCURRENCY", default_value_t = 0)]
    pub reconcile_concurrency: u16,
    /// Seconds between re-checks of a Webhook when nothing changes.
    #[arg(long, env = "HOOKLINE_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub resync_seconds: u64,
}

impl RunArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            emitter_image: self.emitter_image.clone(),
            public_base_url: self.public_base_url.clone(),
            in_cluster_handler_url: self.in_cluster_handler_url.clone(),
            limits: self.limits.clone(),
            emitter_network_policy: self.emitter_network_policy,
            handler_pod_port: self.handler_pod_port,
        }
    }

    pub fn topic_names(&self) -> TopicNames {
        TopicNames {
            events: self.events_topic.clone(),
            dead_letters: self.dead_letter_topic.clone(),
            registry: self.registry_topic.clone(),
        }
    }

    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }
}

/// An absolute http(s) URL with a host and no query; a trailing slash is dropped.
pub fn parse_base_url(value: &str) -> Result<String, String> {
    let url = parse_http_url(value)?;
    if url.contains(['?', '#']) {
        return Err("the URL must not have a query or fragment".into());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_absolute_and_lose_their_trailing_slash() {
        assert_eq!(
            parse_base_url("https://hooks.example.com/").unwrap(),
            "https://hooks.example.com"
        );
        assert_eq!(
            parse_base_url("http://h:8080/x").unwrap(),
            "http://h:8080/x"
        );
        for bad in ["hooks.example.com", "http://", "https://h/?a=1", "ftp://h"] {
            assert!(parse_base_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn run_args(extra: &[&str]) -> Result<Box<RunArgs>, clap::Error> {
        let base = [
            "hookline-operator",
            "run",
            "--kafka-bootstrap-servers=k:9092",
            "--public-base-url=https://hooks.example.com",
            "--in-cluster-handler-url=http://h.ns.svc:80",
            "--registry-keys-dir=/etc/hookline/registry-keys",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(extra))?;
        match cli.command {
            Command::Run(args) => Ok(args),
            Command::Crd => unreachable!("run was given"),
        }
    }

    #[test]
    fn emitter_network_policies_are_on_unless_turned_off() {
        let default = run_args(&[]).expect("parses").settings();
        assert!(default.emitter_network_policy);
        assert_eq!(default.handler_pod_port, 8080);
        let off = run_args(&["--emitter-network-policy=false", "--handler-pod-port=9000"])
            .expect("parses")
            .settings();
        assert!(!off.emitter_network_policy);
        assert_eq!(off.handler_pod_port, 9000);
        assert!(run_args(&["--handler-pod-port=0"]).is_err());
    }

    #[test]
    fn the_admins_limits_default_to_the_charts_and_are_validated_at_start() {
        assert_eq!(
            run_args(&[]).expect("parses").settings().limits,
            Limits::default()
        );
        let set = run_args(&[
            "--max-emitter-replicas=2",
            "--max-emitter-rate-per-second=0.5",
            "--allow-private-targets",
        ])
        .expect("parses")
        .settings()
        .limits;
        assert_eq!(
            (
                set.max_emitter_replicas,
                set.max_emitter_rate_per_second,
                set.allow_private_targets
            ),
            (2, 0.5, true)
        );
        for bad in [
            "--max-emitter-replicas=101",
            "--max-rate-limit-per-second=0",
            "--max-emitter-rate-per-second=0",
            "--max-rate-limit-burst=1000001",
        ] {
            assert!(run_args(&[bad]).is_err(), "{bad} accepted");
        }
    }
}
