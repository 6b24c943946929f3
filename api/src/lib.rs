//! What Hookline's processes agree on, written once: a change here is a compile error
//! (or a failing contract test) on both sides.
//!
//! - [`webhook`]: the `Webhook` custom resource (feature `crd`), between users, the
//!   operator and everything that reads Webhooks.
//! - [`topics`]: the Kafka topic layout the operator creates and the handler, the
//!   consumer and `replay` use.
//! - [`emitter`]: what the operator writes into an emitter's Deployment and signing
//!   Secret, and the emitter reads.
//!
//! The Kafka record headers (`hookline_core::record_headers`) and the registry entry
//! (`hookline_core::registry`) stay in core with the code that reads and writes them.
//!
//! `core` keeps its `schemars` and `axum` dependencies: `Scheme` is both the signing
//! code's enum and a field of the CRD, and one list of schemes (with its JSON schema)
//! beats two kept in step; `axum` serves the ops endpoints every service shares and
//! its `HeaderMap` is what the handler verifies. Neither pulls in Kubernetes.
#![forbid(unsafe_code)]

pub mod emitter;
pub mod env;
pub mod topics;
#[cfg(feature = "crd")]
pub mod webhook;
