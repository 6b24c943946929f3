//! Kafka to PostgreSQL with exactly-once effect, retry tiers, dead letters and replay.
#![forbid(unsafe_code)]

mod columns;
pub mod config;
pub mod event;
pub mod failure_routing;
pub mod gate;
pub mod jsonb;
pub mod metrics;
pub mod mirror;
pub mod pipeline;
pub mod processor;
pub mod replay;
pub mod service;
pub mod store_spans;
