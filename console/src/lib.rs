//! Hookline's web console: the pages (embedded) and the JSON API under them
//! (`/api/v1`, described by the OpenAPI document it serves). It reads the consumer's
//! tables and the Webhooks of the Kubernetes API, and re-drives dead letters through
//! the same replay as `hookline-consumer replay`; it never writes events.
#![forbid(unsafe_code)]

pub mod api;
pub mod assets;
pub mod auth;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod live;
pub mod metrics;
pub mod pagination;
pub mod params;
pub mod password;
pub mod service;
pub mod state;
pub mod stats;
pub mod throttle;
pub mod webhooks;
