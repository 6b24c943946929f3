//! The Webhook operator: CRD types, pure builders of desired objects, the reconciler and
//! the registry publisher.
#![forbid(unsafe_code)]

pub mod api_client;
pub mod conditions;
pub mod config;
pub mod desired;
pub mod egress;
pub mod leader;
pub mod limits;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod service;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
