//! Simulated event source for one Webhook: signs and delivers events with retries.
#![forbid(unsafe_code)]

pub mod config;
