//! The webhook registry: what the handler and consumer know about each Webhook.
//!
//! The operator is the only writer of the log-compacted topic `hookline.registry`
//! (key = webhook id, value = a JSON [`RegistryEntry`], tombstone = deleted). Readers
//! load it fully before they report ready, then follow it, so the hot path never
//! makes a network round-trip to look a webhook up.

mod view;

pub use view::{CatchUpError, FollowError, Lookup, READINESS_CONDITION, RegistryView, follow};

/// The `error` code of the handler's 404 for a webhook id it does not know. An entry
/// reaches the handlers a moment after the operator publishes it, so a sender told
/// about a new webhook retries this answer for a while instead of giving up.
pub const UNKNOWN_WEBHOOK_ERROR: &str = "unknown_webhook";

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::retry::DeliveryPolicy;
use crate::signature::Scheme;

/// A signing secret the handler accepts, with the time it stops being accepted
/// (set on the previous secret during a rotation's grace period).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySecret {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for RegistrySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySecret")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Requests per second and burst the handler allows one Webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// Everything the handler and consumer need to know about one Webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryEntry {
    pub webhook_id: String,
    pub namespace: String,
    pub name: String,
    pub customer_id: String,
    /// Where the emitter delivers (for the `webhooks` table; the handler does not use it).
    pub url: String,
    pub scheme: Scheme,
    /// Current secret first, then the previous one during a rotation's grace period.
    pub secrets: Vec<RegistrySecret>,
    pub suspended: bool,
    pub rate_limit: RateLimit,
    pub delivery: DeliveryPolicy,
    /// CIDRs senders must come from; empty means anywhere.
    #[serde(default)]
    pub allowed_source_ranges: Vec<String>,
    /// `metadata.generation` of the Webhook this entry was built from.
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

impl RegistryEntry {
    /// The secrets still accepted at `now`.
    pub fn live_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &RegistrySecret> {
        self.secrets
            .iter()
            .filter(move |secret| secret.expires_at.is_none_or(|at| at > now))
    }
}

#[derive(Debug, Error)]
pub enum RegistryDecodeError {
    #[error("registry record has no key")]
    MissingKey,
    #[error("registry key is not UTF-8")]
    KeyNotUtf8,
    /// Says where the value is malformed, never what it holds: a value can carry secrets.
    #[error(
        "registry value for {key} is not a valid entry ({kind} error at line {line}, column {column})"
    )]
    BadValue {
        key: String,
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("registry value for {key} names webhook {inner} instead")]
    KeyMismatch { key: String, inner: String },
}

/// One record of the registry topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryUpdate {
    Upsert(Box<RegistryEntry>),
    Deleted { webhook_id: String },
}

/// Encodes an entry as the topic's value.
pub fn encode(entry: &RegistryEntry) -> Vec<u8> {
    // Serializing a struct of strings, numbers and dates cannot fail.
    serde_json::to_vec(entry).unwrap_or_default()
}

/// Decodes a record of the registry topic; `value = None` is a tombstone.
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<RegistryUpdate, RegistryDecodeError> {
    let key = key.ok_or(RegistryDecodeError::MissingKey)?;
    let key = std::str::from_utf8(key).map_err(|_| RegistryDecodeError::KeyNotUtf8)?;
    let Some(value) = value else {
        return Ok(RegistryUpdate::Deleted {
            webhook_id: key.to_owned(),
        });
    };
    let entry: RegistryEntry =
        serde_json::from_slice(value).map_err(|err| RegistryDecodeError::BadValue {
            key: key.to_owned(),
            kind: match err.classify() {
                serde_json::error::Category::Io => "read",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "truncation",
            },
            line: err.line(),
            column: err.column(),
        })?;
    if entry.webhook_id != key {
        return Err(RegistryDecodeError::KeyMismatch {
            key: key.to_owned(),
            inner: entry.webhook_id,
        });
    }
    Ok(RegistryUpdate::Upsert(Box::new(entry)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn entry() -> RegistryEntry {
        RegistryEntry {
            webhook_id: "9b2f".into(),
            namespace: "shop".into(),
            name: "invoices".into(),
            customer_id: "ben@webhooksystem".into(),
            url: "http://hookline-handler/webhooks/9b2f".into(),
            scheme: Scheme::Standard,
            secrets: vec![
                RegistrySecret {
                    value: "whsec_new".into(),
                    expires_at: None,
                },
                RegistrySecret {
                    value: "whsec_old".into(),
                    expires_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
                },
            ],
            suspended: false,
            rate_limit: RateLimit {
                requests_per_second: 100,
                burst: 200,
            },
            delivery: DeliveryPolicy::default(),
            allowed_source_ranges: vec!["10.0.0.0/8".into()],
            generation: 3,
            updated_at: Utc.with_ymd_and_hms(2025, 12, 31, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn round_trips_and_tombstones_mean_deleted() {
        let e = entry();
        let decoded = decode(Some(b"9b2f"), Some(&encode(&e))).unwrap();
        assert_eq!(decoded, RegistryUpdate::Upsert(Box::new(e)));
        assert_eq!(
            decode(Some(b"9b2f"), None).unwrap(),
            RegistryUpdate::Deleted {
                webhook_id: "9b2f".into()
            }
        );
    }

    #[test]
    fn bad_records_are_named_errors() {
        assert!(matches!(
            decode(None, Some(b"{}")),
            Err(RegistryDecodeError::MissingKey)
        ));
        assert!(matches!(
            decode(Some(&[0xff]), None),
            Err(RegistryDecodeError::KeyNotUtf8)
        ));
        assert!(matches!(
            decode(Some(b"x"), Some(b"not json")),
            Err(RegistryDecodeError::BadValue { .. })
        ));
        assert!(matches!(
            decode(Some(b"other"), Some(&encode(&entry()))),
            Err(RegistryDecodeError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn a_malformed_value_is_described_without_quoting_it() {
        let mut value = serde_json::to_value(entry()).unwrap();
        value["secrets"] = serde_json::json!("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let err = decode(Some(b"9b2f"), Some(&serde_json::to_vec(&value).unwrap()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("data error"), "{err}");
        assert!(
            !err.contains("whsec_"),
            "the error quotes the secret: {err}"
        );
    }

    #[test]
    fn expired_secrets_are_not_live_and_debug_hides_values() {
        let e = entry();
        let before = Utc.with_ymd_and_hms(2025, 12, 31, 12, 0, 0).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
        assert_eq!(e.live_secrets(before).count(), 2);
        let live: Vec<_> = e.live_secrets(after).map(|s| s.value.as_str()).collect();
        assert_eq!(live, ["whsec_new"]);
        assert!(!format!("{e:?}").contains("whsec_"));
    }
}
