//! Hookline's PostgreSQL side, written once for every process that uses it: the schema
//! and its migrations, connecting and readiness, and the statements over each table.
//! The consumer writes events, dead letters, day partitions and the Webhook mirror; the
//! console reads them; both re-drive dead letters.
#![forbid(unsafe_code)]

pub mod database;
pub mod day_partitions;
pub mod dead_letter_replay;
pub mod dead_letters;
pub mod events;
pub mod schema;
pub mod webhooks;
