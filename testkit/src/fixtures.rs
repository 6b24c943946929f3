//! The domain values tests build again and again, written once. Each builder returns a
//! complete, valid value; a test changes what it is about with struct update syntax:
//! `RegistryEntry { suspended: true, ..fixtures::registry_entry("wh-1") }`.

use chrono::{TimeZone, Utc};
use hookline_core::registry::{Keyring, RateLimit, RegistryEntry, RegistrySecret};
use hookline_core::retry::DeliveryPolicy;
use hookline_core::signature::Scheme;

/// The Standard Webhooks secret the fixtures sign with.
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// An active entry of `webhook_id`: Standard Webhooks with [`SECRET`], namespace
/// `shop`, named after its id, 100 requests per second, the default delivery policy,
/// senders from anywhere, generation 1, updated at the start of 2026 (fixed, so two
/// entries built alike are equal).
pub fn registry_entry(webhook_id: &str) -> RegistryEntry {
    RegistryEntry {
        webhook_id: webhook_id.into(),
        namespace: "shop".into(),
        name: webhook_id.into(),
        customer_id: "ben@webhooksystem".into(),
        url: format!("http://hookline-handler/webhooks/{webhook_id}"),
        scheme: Scheme::Standard,
        secrets: vec![secret(SECRET)],
        suspended: false,
        rate_limit: RateLimit {
            requests_per_second: 100,
            burst: 100,
        },
        delivery: DeliveryPolicy::default(),
        allowed_source_ranges: Vec::new(),
        generation: 1,
        updated_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid date"),
    }
}

/// A secret without an expiry.
pub fn secret(value: &str) -> RegistrySecret {
    RegistrySecret {
        value: value.into(),
        expires_at: None,
    }
}

/// A keyring of one random key, `k1`.
pub fn keyring() -> Keyring {
    let key = Keyring::generate_key();
    Keyring::new("k1", [("k1", key.as_str())]).expect("a keyring of one fresh key")
}
