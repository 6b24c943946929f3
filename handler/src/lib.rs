//! The HTTP edge: verify, rate-limit, produce to Kafka, answer only after Kafka has the event.
#![forbid(unsafe_code)]

pub mod config;
pub mod service;
