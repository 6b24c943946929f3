//! The operator-to-emitter contract: the environment an emitter's Deployment sets and
//! the files of the signing Secret mounted into it. The operator writes them
//! (`operator/src/desired.rs`), the emitter reads them (`emitter/src/config.rs`,
//! `emitter/src/secrets.rs`); `operator/tests/emitter_contract.rs` parses what the
//! operator writes with the emitter's own command line.

/// Keys of the signing Secret, and so file names in the mounted directory.
pub mod secret {
    /// The secret senders sign with now.
    pub const CURRENT: &str = "current";
    /// The one before it, still accepted during a rotation's grace period.
    pub const PREVIOUS: &str = "previous";
    /// When `PREVIOUS` stops being accepted (RFC 3339).
    pub const PREVIOUS_EXPIRES_AT: &str = "previous-expires-at";
}

/// Environment variables of the emitter (its flags' fallbacks).
pub mod env {
    pub const WEBHOOK_ID: &str = "WEBHOOK_ID";
    pub const TARGET_URL: &str = "WEBHOOK_TARGET_URL";
    pub const ALLOW_PRIVATE_TARGETS: &str = "EMITTER_ALLOW_PRIVATE_TARGETS";
    /// The directory the signing Secret is mounted at (files named as in [`super::secret`]).
    pub const SECRET_DIR: &str = "WEBHOOK_SECRET_DIR";
    pub const SCHEME: &str = "WEBHOOK_SCHEME";
    pub const RATE_PER_SECOND: &str = "EMITTER_RATE_PER_SECOND";
    pub const EVENT_TYPES: &str = "EMITTER_EVENT_TYPES";
    pub const DELIVERY_RETRIES: &str = "DELIVERY_RETRIES";
    pub const DELIVERY_BACKOFF_POLICY: &str = "DELIVERY_BACKOFF_POLICY";
    pub const DELIVERY_BACKOFF_DELAY_MS: &str = "DELIVERY_BACKOFF_DELAY_MS";
    pub const DELIVERY_MAX_BACKOFF_DELAY_MS: &str = "DELIVERY_MAX_BACKOFF_DELAY_MS";
    /// Shared by every service, declared in [`crate::env`].
    pub use crate::env::{LOG_FORMAT_ENV as LOG_FORMAT, OPS_ADDR_ENV as OPS_ADDR};
}
