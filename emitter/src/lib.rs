//! Simulated event source for one Webhook: signs and delivers events with retries,
//! the way a careful webhook provider does.
#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
pub mod event;
pub mod metrics;
pub mod secrets;
pub mod service;
pub mod target_guard;
