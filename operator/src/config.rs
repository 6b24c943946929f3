//! The operator's configuration: flags with environment fallbacks, validated at start-up.

use clap::{Parser, Subcommand};
use hookline_core::config::{CommonArgs, KafkaArgs, OpsArgs};

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
    /// Reconcile Webhook resources until SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}
