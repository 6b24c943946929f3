//! Kafka to PostgreSQL with exactly-once effect, retry tiers, dead letters and replay.
#![forbid(unsafe_code)]

pub mod config;
pub mod db;
pub mod service;
