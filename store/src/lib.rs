//! Hookline's PostgreSQL side that more than one process uses: the consumer writes
//! events and dead letters, the console reads them, and both re-drive dead letters.
#![forbid(unsafe_code)]

pub mod dead_letter_replay;
