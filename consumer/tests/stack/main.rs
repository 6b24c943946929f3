//! The consumer against the stack's real Kafka and PostgreSQL (and, for the outage
//! test, a private PostgreSQL it may stop). Each test has topics and a database of
//! its own.

mod bad_records;
mod common;
mod faults;
mod registry;
mod replay;
mod retries;
mod storage;
