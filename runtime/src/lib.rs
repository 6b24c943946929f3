//! The I/O every Hookline service shares, over the domain types of `hookline-core`:
//! Kafka connections and their security, the acknowledged producer, the registry
//! follower and keyring files, the ops HTTP server with readiness and metrics, logs and
//! traces, the flags every service takes, shutdown, and the service skeleton that ties
//! them together for each binary.
#![forbid(unsafe_code)]

/// For [`use_mimalloc!`]: the binaries name the allocator through this crate.
pub use mimalloc;

pub mod config;
pub mod kafka;
pub mod keyring_files;
pub mod metrics;
pub mod ops;
pub mod process_metrics;
pub mod producer;
pub mod registry_view;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod traces;
pub mod webhook_labels;
