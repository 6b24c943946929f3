//! The Webhook operator: CRD types, pure builders of desired objects, the reconciler and
//! the registry publisher.
#![forbid(unsafe_code)]

pub mod config;
pub mod service;
