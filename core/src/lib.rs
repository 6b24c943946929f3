//! Hookline's domain, without I/O: signature schemes and what each provider's request
//! says about its event, the registry entry and its sealing, the Kafka record's header
//! names, delivery and retry policies, and source address rules. Every function here is
//! a function of its arguments; the processes around it live in `hookline-runtime`.
#![forbid(unsafe_code)]

pub mod event_record;
pub mod ids;
pub mod provider;
pub mod record_headers;
pub mod registry;
pub mod retry;
pub mod signature;
pub mod source;
