//! Kubernetes-free code shared by every Hookline service: signatures and what each
//! provider's request says about its event, Kafka header names, telemetry and trace set-up, the operational HTTP endpoints and shutdown handling.
#![forbid(unsafe_code)]

pub mod config;
pub mod kafka;
pub mod ops;
pub mod process_metrics;
pub mod producer;
pub mod provider;
pub mod record_headers;
pub mod registry;
#[cfg(feature = "replay")]
pub mod replay;
pub mod retry;
pub mod shutdown;
pub mod signature;
pub mod source;
pub mod telemetry;
pub mod traces;
