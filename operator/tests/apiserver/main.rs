//! The operator against the real kube-apiserver (and Kafka) of the local stack.

mod common;
mod leader;
mod rbac;
mod reconcile;
mod smoke;
mod tenancy;
