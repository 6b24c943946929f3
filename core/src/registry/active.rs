//! An entry as a reader holds it: its secrets parsed for its scheme once, when the
//! entry is applied, instead of for every request that uses them.

use std::borrow::Cow;
use std::ops::Deref;

use chrono::{DateTime, Utc};

use super::RegistryEntry;
use crate::signature::{SecretError, SigningSecret};

/// A registry entry with its secrets parsed. It reads as its entry (`active.scheme`).
#[derive(Debug, Clone)]
pub struct ActiveEntry {
    entry: RegistryEntry,
    /// The usable secrets in the entry's order, and the expiry of each.
    signing: Vec<SigningSecret>,
    expiries: Vec<Option<DateTime<Utc>>>,
    /// Why each unusable secret was left out (the rest still verify).
    unusable: Vec<SecretError>,
}

impl ActiveEntry {
    pub fn new(entry: RegistryEntry) -> Self {
        let mut signing = Vec::with_capacity(entry.secrets.len());
        let mut expiries = Vec::with_capacity(entry.secrets.len());
        let mut unusable = Vec::new();
        for secret in &entry.secrets {
            match SigningSecret::parse(entry.scheme, &secret.value) {
                Ok(parsed) => {
                    signing.push(parsed);
                    expiries.push(secret.expires_at);
                }
                Err(err) => unusable.push(err),
            }
        }
        Self {
            entry,
            signing,
            expiries,
            unusable,
        }
    }

    pub fn entry(&self) -> &RegistryEntry {
        &self.entry
    }

    /// The secrets accepted at `now`, current first; borrowed unless one has expired
    /// (a rotation's grace period ended), so a request costs no copy.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Cow<'_, [SigningSecret]> {
        let live = |expires_at: &Option<DateTime<Utc>>| expires_at.is_none_or(|at| at > now);
        if self.expiries.iter().all(live) {
            return Cow::Borrowed(&self.signing);
        }
        Cow::Owned(
            self.signing
                .iter()
                .zip(&self.expiries)
                .filter(|(_, expires_at)| live(expires_at))
                .map(|(secret, _)| secret.clone())
                .collect(),
        )
    }

    /// Why secrets of the entry cannot be used for its scheme.
    pub fn unusable_secrets(&self) -> &[SecretError] {
        &self.unusable
    }
}

impl Deref for ActiveEntry {
    type Target = RegistryEntry;

    fn deref(&self) -> &RegistryEntry {
        &self.entry
    }
}

/// Two active entries are the same when their entries are: the parsed secrets follow.
impl PartialEq for ActiveEntry {
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistrySecret;
    use crate::registry::tests::entry;
    use chrono::TimeZone;

    #[test]
    fn secrets_are_parsed_once_and_expired_ones_left_out_at_use() {
        let at = |year| Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
        let active = ActiveEntry::new(RegistryEntry {
            secrets: vec![
                RegistrySecret {
                    value: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
                    expires_at: None,
                },
                RegistrySecret {
                    value: "not base64 at all!".into(),
                    expires_at: None,
                },
                RegistrySecret {
                    value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                    expires_at: Some(at(2026)),
                },
            ],
            ..entry()
        });
        assert_eq!(active.unusable_secrets().len(), 1);
        assert!(matches!(active.signing_secrets(at(2025)), Cow::Borrowed(s) if s.len() == 2));
        assert_eq!(active.signing_secrets(at(2027)).len(), 1);
        assert_eq!(
            active.customer_id,
            entry().customer_id,
            "it reads as its entry"
        );
    }
}
