//! The webhook registry: what the handler and consumer know about each Webhook.
//!
//! The operator is the only writer of the log-compacted topic `hookline.registry`
//! (key = webhook id, value = a JSON [`RegistryEntry`] whose secrets are sealed, see
//! [`sealing`], or a deletion record). Readers load it fully before they report ready,
//! then follow it, so the hot path never makes a network round-trip to look a webhook up.
//!
//! Every record carries a version, sealed with it, that grows with each publish of its
//! webhook id; a reader applies a record only if it is newer than the one it holds (see
//! `hookline_runtime::registry_view::RegistryView::apply`), so a replay of an older sealed record (a secret rotated
//! out, a Webhook un-suspended, a deleted Webhook revived) is refused. A deletion is a
//! record of its own, `{"webhookId", "deleted": true, "version", "secrets"}` with an
//! empty sealed list, not Kafka's null: compaction keeps it as the newest record of its
//! key, so a reader starting later still knows the id is deleted, at which version.

mod active;
pub mod sealing;

pub use active::ActiveEntry;

pub use sealing::{Keyring, KeyringError, OpenError, SealedSecrets};

/// The `error` code of the handler's 404 for a webhook id it does not know. An entry
/// reaches the handlers a moment after the operator publishes it, so a sender told
/// about a new webhook retries this answer for a while instead of giving up.
pub const UNKNOWN_WEBHOOK_ERROR: &str = "unknown_webhook";

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::WebhookId;
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

/// Everything the handler and consumer need to know about one Webhook. `S` is how its
/// secrets are held: in the clear in memory, [`WireSecrets`] on the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryEntry<S = Vec<RegistrySecret>> {
    pub webhook_id: WebhookId,
    pub namespace: String,
    pub name: String,
    pub customer_id: String,
    /// Where the emitter delivers (for the `webhooks` table; the handler does not use it).
    pub url: String,
    pub scheme: Scheme,
    /// Current secret first, then the previous one during a rotation's grace period.
    pub secrets: S,
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

impl<S> RegistryEntry<S> {
    /// The same fields with `secrets` instead.
    pub fn with_secrets<T>(&self, secrets: T) -> RegistryEntry<T> {
        RegistryEntry {
            webhook_id: self.webhook_id.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            customer_id: self.customer_id.clone(),
            url: self.url.clone(),
            scheme: self.scheme,
            secrets,
            suspended: self.suspended,
            rate_limit: self.rate_limit,
            delivery: self.delivery.clone(),
            allowed_source_ranges: self.allowed_source_ranges.clone(),
            generation: self.generation,
            updated_at: self.updated_at,
        }
    }
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
    /// An entry whose secrets are not sealed: refused, so nobody who can write the topic
    /// without a key can install secrets of their choosing.
    #[error("registry value for {key} carries its secrets unsealed")]
    Unsealed { key: String },
    #[error("registry value for {key}: its secrets are {source}")]
    Sealed {
        key: String,
        #[source]
        source: OpenError,
    },
}

impl RegistryDecodeError {
    /// Sealed under a key this reader does not hold (yet): worth trying again once its
    /// keyring changes, unlike a malformed record.
    pub fn is_unknown_key(&self) -> bool {
        matches!(
            self,
            Self::Sealed {
                source: OpenError::UnknownKey(_),
                ..
            }
        )
    }
}

impl RegistryDecodeError {
    /// The `reason` label a reader counts this refusal under.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsealed { .. } => "unsealed",
            Self::Sealed {
                source: OpenError::UnknownKey(_),
                ..
            } => "unknown_key",
            Self::Sealed { .. } => "not_authentic",
            Self::MissingKey
            | Self::KeyNotUtf8
            | Self::BadValue { .. }
            | Self::KeyMismatch { .. } => "malformed",
        }
    }
}

/// What one record of the registry topic says about its webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryUpdate {
    Upsert(Box<RegistryEntry>),
    Deleted { webhook_id: WebhookId },
}

impl RegistryUpdate {
    pub fn webhook_id(&self) -> &WebhookId {
        match self {
            Self::Upsert(entry) => &entry.webhook_id,
            Self::Deleted { webhook_id } => webhook_id,
        }
    }
}

/// One record of the registry topic, decoded: an update and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    /// Grows with every record the operator publishes for the webhook id. 0 is a record
    /// from before versions existed (or Kafka's null tombstone): any versioned record
    /// wins over it.
    pub version: u64,
    pub update: RegistryUpdate,
}

/// An update without a version: what the topic held before records had versions.
impl From<RegistryUpdate> for RegistryRecord {
    fn from(update: RegistryUpdate) -> Self {
        Self { version: 0, update }
    }
}

/// The version a record published at `now` gets at least: the time in microseconds,
/// so versions keep growing across restarts of whoever publishes.
pub fn version_at(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_micros()).unwrap_or(0)
}

/// What a deletion record's (empty) sealed list is bound to besides its id and version.
const DELETION_CONTEXT: &[u8] = b"deleted";

/// An entry's secrets as they travel: sealed. A plain list is what records held before
/// sealing, and what someone without a key would write: read only to be refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireSecrets {
    Sealed(SealedSecrets),
    #[serde(skip_serializing)]
    Unsealed(Vec<serde::de::IgnoredAny>),
}

/// The value of an entry's record: the entry with its secrets sealed, and the version
/// they are sealed with (absent before records had versions).
#[derive(Debug, Serialize, Deserialize)]
struct WireEntry {
    #[serde(flatten)]
    entry: RegistryEntry<WireSecrets>,
    #[serde(default, skip_serializing_if = "is_unversioned")]
    version: u64,
}

/// The value of a deletion record, sealed like an entry so that nobody without a key
/// can delete a Webhook or raise a deletion's version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDeletion {
    webhook_id: WebhookId,
    deleted: Deleted,
    #[serde(default)]
    version: u64,
    secrets: WireSecrets,
}

/// `"deleted": true`, what marks a deletion record; any other value is not one.
#[derive(Debug)]
struct Deleted;

impl Serialize for Deleted {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for Deleted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if bool::deserialize(deserializer)? {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom("a deletion says `deleted: true`"))
        }
    }
}

/// A registry record's value: a deletion, or else an entry.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireRecord {
    Deletion(WireDeletion),
    Entry(WireEntry),
}

fn is_unversioned(version: &u64) -> bool {
    *version == 0
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("strings, numbers, dates and maps of them serialize")
}

/// Encodes an entry as the topic's value at `version`, its secrets sealed under the
/// keyring's primary key.
pub fn encode(entry: &RegistryEntry, version: u64, keyring: &Keyring) -> Vec<u8> {
    let sealed = keyring.seal(
        &entry.webhook_id,
        version,
        &entry.secrets,
        &sealing_context(entry),
    );
    to_json(&WireEntry {
        entry: entry.with_secrets(WireSecrets::Sealed(sealed)),
        version,
    })
}

/// Encodes the deletion of `webhook_id` at `version`.
pub fn encode_deletion(webhook_id: &WebhookId, version: u64, keyring: &Keyring) -> Vec<u8> {
    to_json(&WireDeletion {
        webhook_id: webhook_id.clone(),
        deleted: Deleted,
        version,
        secrets: WireSecrets::Sealed(keyring.seal(webhook_id, version, &[], DELETION_CONTEXT)),
    })
}

/// What an entry's sealed secrets are bound to: every other field, as JSON.
fn sealing_context<S>(entry: &RegistryEntry<S>) -> Vec<u8> {
    to_json(&entry.with_secrets(Vec::<RegistrySecret>::new()))
}

/// Decodes a record of the registry topic; `value = None` (Kafka's tombstone, written
/// before deletions were records) is a deletion at version 0. With a keyring the
/// secrets are opened and the version and every field authenticated; without one
/// (readers that need no secrets, like the consumer) the entry comes with none.
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    keyring: Option<&Keyring>,
) -> Result<RegistryRecord, RegistryDecodeError> {
    let key = key.ok_or(RegistryDecodeError::MissingKey)?;
    let key = std::str::from_utf8(key).map_err(|_| RegistryDecodeError::KeyNotUtf8)?;
    let Some(value) = value else {
        return Ok(RegistryUpdate::Deleted {
            webhook_id: key.into(),
        }
        .into());
    };
    let record: WireRecord = serde_json::from_slice(value).map_err(|err| bad_value(key, &err))?;
    let open = |version: u64, sealed: &SealedSecrets, context: &[u8]| match keyring {
        Some(keyring) => keyring
            .open(key, version, sealed, context)
            .map(Some)
            .map_err(|source| RegistryDecodeError::Sealed {
                key: key.to_owned(),
                source,
            }),
        None => Ok(None),
    };
    match record {
        WireRecord::Deletion(deletion) => {
            let sealed = sealed(key, &deletion.secrets)?;
            check_id(key, &deletion.webhook_id)?;
            open(deletion.version, sealed, DELETION_CONTEXT)?;
            Ok(RegistryRecord {
                version: deletion.version,
                update: RegistryUpdate::Deleted {
                    webhook_id: deletion.webhook_id,
                },
            })
        }
        WireRecord::Entry(WireEntry { entry, version }) => {
            let sealed = sealed(key, &entry.secrets)?;
            check_id(key, &entry.webhook_id)?;
            let secrets = open(version, sealed, &sealing_context(&entry))?.unwrap_or_default();
            Ok(RegistryRecord {
                version,
                update: RegistryUpdate::Upsert(Box::new(entry.with_secrets(secrets))),
            })
        }
    }
}

/// Says where a value is malformed, never what it holds: a value can carry secrets.
fn bad_value(key: &str, err: &serde_json::Error) -> RegistryDecodeError {
    RegistryDecodeError::BadValue {
        key: key.to_owned(),
        kind: match err.classify() {
            serde_json::error::Category::Io => "read",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "truncation",
        },
        line: err.line(),
        column: err.column(),
    }
}

/// Secrets that are not sealed are refused, so nobody who can write the topic without a
/// key can install secrets of their choosing.
fn sealed<'s>(
    key: &str,
    secrets: &'s WireSecrets,
) -> Result<&'s SealedSecrets, RegistryDecodeError> {
    match secrets {
        WireSecrets::Sealed(sealed) => Ok(sealed),
        WireSecrets::Unsealed(_) => Err(RegistryDecodeError::Unsealed {
            key: key.to_owned(),
        }),
    }
}

fn check_id(key: &str, inner: &str) -> Result<(), RegistryDecodeError> {
    if inner == key {
        Ok(())
    } else {
        Err(RegistryDecodeError::KeyMismatch {
            key: key.to_owned(),
            inner: inner.to_owned(),
        })
    }
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

    pub(crate) fn keyring() -> Keyring {
        let key = Keyring::generate_key();
        Keyring::new("k1", [("k1", key.as_str())]).unwrap()
    }

    #[test]
    fn round_trips_and_tombstones_mean_deleted() {
        let e = entry();
        let ring = keyring();
        let value = encode(&e, 7, &ring);
        let text = String::from_utf8(value.clone()).unwrap();
        assert!(!text.contains("whsec_"), "a secret in clear: {text}");
        let decoded = decode(Some(b"9b2f"), Some(&value), Some(&ring)).unwrap();
        assert_eq!(
            decoded,
            RegistryRecord {
                version: 7,
                update: RegistryUpdate::Upsert(Box::new(e.clone()))
            }
        );
        let without_keys = decode(Some(b"9b2f"), Some(&value), None).unwrap();
        assert_eq!(
            without_keys.update,
            RegistryUpdate::Upsert(Box::new(RegistryEntry {
                secrets: vec![],
                ..e
            }))
        );
        let deleted = RegistryUpdate::Deleted {
            webhook_id: "9b2f".into(),
        };
        assert_eq!(
            decode(Some(b"9b2f"), None, Some(&ring)).unwrap(),
            RegistryRecord {
                version: 0,
                update: deleted.clone()
            }
        );
        let deletion = encode_deletion(&"9b2f".into(), 8, &ring);
        for keyring in [Some(&ring), None] {
            assert_eq!(
                decode(Some(b"9b2f"), Some(&deletion), keyring).unwrap(),
                RegistryRecord {
                    version: 8,
                    update: deleted.clone()
                }
            );
        }
    }

    #[test]
    fn bad_records_are_named_errors() {
        let ring = keyring();
        assert!(matches!(
            decode(None, Some(b"{}"), Some(&ring)),
            Err(RegistryDecodeError::MissingKey)
        ));
        assert!(matches!(
            decode(Some(&[0xff]), None, Some(&ring)),
            Err(RegistryDecodeError::KeyNotUtf8)
        ));
        assert!(matches!(
            decode(Some(b"x"), Some(b"not json"), Some(&ring)),
            Err(RegistryDecodeError::BadValue { .. })
        ));
        assert!(matches!(
            decode(
                Some(b"other"),
                Some(&encode(&entry(), 7, &ring)),
                Some(&ring)
            ),
            Err(RegistryDecodeError::KeyMismatch { .. })
        ));
        let unsealed = serde_json::to_vec(&entry()).unwrap();
        assert!(matches!(
            decode(Some(b"9b2f"), Some(&unsealed), None),
            Err(RegistryDecodeError::Unsealed { .. })
        ));
        let err = decode(
            Some(b"9b2f"),
            Some(&encode(&entry(), 7, &ring)),
            Some(&keyring()),
        )
        .unwrap_err();
        assert!(!err.is_unknown_key(), "{err}");
        let other_id = Keyring::new("k2", [("k2", Keyring::generate_key().as_str())]).unwrap();
        let err = decode(
            Some(b"9b2f"),
            Some(&encode(&entry(), 7, &ring)),
            Some(&other_id),
        )
        .unwrap_err();
        assert!(err.is_unknown_key(), "{err}");
        let mut altered: serde_json::Value =
            serde_json::from_slice(&encode(&entry(), 7, &ring)).unwrap();
        altered["suspended"] = serde_json::json!(true);
        let altered = serde_json::to_vec(&altered).unwrap();
        assert!(
            matches!(
                decode(Some(b"9b2f"), Some(&altered), Some(&ring)),
                Err(RegistryDecodeError::Sealed { .. })
            ),
            "a field changed without the key is refused"
        );
    }

    #[test]
    fn a_malformed_value_is_described_without_quoting_it() {
        let mut value = serde_json::to_value(entry()).unwrap();
        value["secrets"] = serde_json::json!("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let err = decode(
            Some(b"9b2f"),
            Some(&serde_json::to_vec(&value).unwrap()),
            None,
        )
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

    /// What a reader of the previous release's topic finds: entries without a version,
    /// sealed under the version-less associated data.
    #[test]
    fn an_entry_from_before_versions_opens_as_version_0() {
        let ring = keyring();
        let legacy = encode(&entry(), 0, &ring);
        let fields: serde_json::Value = serde_json::from_slice(&legacy).unwrap();
        assert!(fields.get("version").is_none(), "{fields}");
        let decoded = decode(Some(b"9b2f"), Some(&legacy), Some(&ring)).unwrap();
        assert_eq!(decoded.version, 0);
        assert_eq!(decoded.update, RegistryUpdate::Upsert(Box::new(entry())));
    }

    /// Why `value`, changed by `change`, is refused for webhook 9b2f by `ring`.
    fn refusal(
        ring: &Keyring,
        value: &[u8],
        change: impl FnOnce(&mut serde_json::Value),
    ) -> &'static str {
        let mut fields: serde_json::Value = serde_json::from_slice(value).unwrap();
        change(&mut fields);
        let changed = serde_json::to_vec(&fields).unwrap();
        decode(Some(b"9b2f"), Some(&changed), Some(ring))
            .unwrap_err()
            .reason()
    }

    #[test]
    fn a_version_changed_without_the_key_breaks_the_seal() {
        let ring = keyring();
        for (value, what) in [
            (encode(&entry(), 3, &ring), "an entry"),
            (encode_deletion(&"9b2f".into(), 3, &ring), "a deletion"),
        ] {
            for forged in [serde_json::json!(4), serde_json::json!(u64::MAX)] {
                let reason = refusal(&ring, &value, |fields| fields["version"] = forged);
                assert_eq!(reason, "not_authentic", "{what}");
            }
            let reason = refusal(&ring, &value, |fields| {
                fields.as_object_mut().unwrap().remove("version");
            });
            assert_eq!(reason, "not_authentic", "{what} as version 0");
        }
        let reason = refusal(&ring, &encode(&entry(), 3, &ring), |fields| {
            fields["version"] = "3".into();
        });
        assert_eq!(reason, "malformed");
    }

    #[test]
    fn a_deletion_is_refused_under_another_id_or_unsealed() {
        let ring = keyring();
        let deletion = encode_deletion(&"9b2f".into(), 3, &ring);
        assert!(matches!(
            decode(Some(b"other"), Some(&deletion), Some(&ring)),
            Err(RegistryDecodeError::KeyMismatch { .. })
        ));
        let forged = serde_json::to_vec(&serde_json::json!({
            "webhookId": "9b2f", "deleted": true, "version": 4, "secrets": [],
        }))
        .unwrap();
        assert!(matches!(
            decode(Some(b"9b2f"), Some(&forged), None),
            Err(RegistryDecodeError::Unsealed { .. })
        ));
        // An entry's seal does not make a deletion of the same webhook and version.
        let reason = refusal(&ring, &encode(&entry(), 3, &ring), |fields| {
            fields["deleted"] = true.into();
        });
        assert_eq!(reason, "not_authentic");
    }
}
