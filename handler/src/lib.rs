//! The HTTP edge: verify, rate-limit, produce to Kafka, answer only after Kafka has the event.
#![forbid(unsafe_code)]

pub mod concurrency;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod produce;
pub mod rate_limit;
pub mod rejection;
pub mod repeats;
pub mod server;
pub mod service;
pub mod unknown_ids;
