//! What Hookline's processes agree on, written once: a change here is a compile error
//! (or a failing contract test) on both sides.
//!
//! - [`webhook`]: the `Webhook` custom resource (feature `crd`), between users, the
//!   operator and everything that reads Webhooks.
//! - [`topics`]: the Kafka topic layout the operator creates and the handler, the
//!   consumer and `replay` use.
//! - [`emitter`]: what the operator writes into an emitter's Deployment and signing
//!   Secret, and the emitter reads.
//! - [`env`]: the environment variables of the flags every service shares.
//!
//! The Kafka event record (`hookline_core::event_record`) and the registry entry
//! (`hookline_core::registry`) stay in core with the code that reads and writes them.
//! This crate depends on the domain crate only (for `Scheme` and the delivery policy,
//! fields of the CRD) and on kube with `crd`: `cargo tree -p hookline-api` shows no
//! Kafka, HTTP server or SQL client.
#![forbid(unsafe_code)]

pub mod emitter;
pub mod env;
pub mod topics;
#[cfg(feature = "crd")]
pub mod webhook;
