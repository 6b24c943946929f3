//! Registry secrets sealed for Kafka: whoever reads the registry topic without a key
//! learns every Webhook's name and settings, but none of its signing secrets.
//!
//! The operator seals an entry's secrets under the keyring's primary key with
//! XChaCha20-Poly1305 (random 192-bit nonce). The associated data is the webhook id, the
//! key id, the record's version and the rest of the entry, so a sealed blob moved to
//! another webhook's entry does not open, and nobody without a key can change any field
//! of an entry that a keyholder (the handler) accepts, nor raise an old entry's version
//! to make a replay of it look new. Readers open
//! with any key of their keyring, so a rotation adds the new key everywhere, makes it
//! primary (the operator re-seals every entry), and only then drops the old one.
//!
//! A keyring is a directory, as a mounted Kubernetes Secret is: a file `primary` names
//! the primary key id, and every other file `<key id>` holds 32 random bytes in base64.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::RegistrySecret;

/// The file of a keyring directory that names the primary key.
pub const PRIMARY_FILE: &str = "primary";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Secrets as they travel on the registry topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedSecrets {
    pub key_id: String,
    /// Base64 of the 24-byte nonce.
    pub nonce: String,
    /// Base64 of the encrypted JSON list of secrets and its 16-byte tag.
    pub ciphertext: String,
}

#[derive(Debug, Error)]
pub enum KeyringError {
    #[error("cannot read the registry keyring {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry key id {0:?} is not 1 to 64 letters, digits, '-' or '_'")]
    BadKeyId(String),
    #[error("registry key {0} is not base64 of {KEY_BYTES} bytes")]
    BadKey(String),
    #[error("the registry keyring has no key {0}, which it names primary")]
    NoPrimary(String),
}

/// Why sealed secrets did not open. Names the key id, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("sealed under key {0}, which this keyring does not hold")]
    UnknownKey(String),
    #[error("sealed under key {0} but does not authenticate (altered, or another webhook's)")]
    NotAuthentic(String),
}

/// The registry keys of one process. `Debug` shows key ids only.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    primary: String,
    keys: BTreeMap<String, [u8; KEY_BYTES]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring of `keys` (id, base64 key); `primary` must be one of them.
    pub fn new<'a>(
        primary: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, KeyringError> {
        let mut parsed = BTreeMap::new();
        for (id, encoded) in keys {
            check_key_id(id)?;
            let bytes = BASE64
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
                .ok_or_else(|| KeyringError::BadKey(id.to_owned()))?;
            parsed.insert(id.to_owned(), bytes);
        }
        let primary = primary.trim();
        if !parsed.contains_key(primary) {
            return Err(KeyringError::NoPrimary(primary.to_owned()));
        }
        Ok(Self {
            primary: primary.to_owned(),
            keys: parsed,
        })
    }

    /// A new random key, base64, for a keyring file.
    pub fn generate_key() -> String {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        BASE64.encode(key)
    }

    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `secrets` of `webhook_id` under the primary key, bound to `version` and
    /// `context` (the entry's other fields).
    pub fn seal(
        &self,
        webhook_id: &str,
        version: u64,
        secrets: &[RegistrySecret],
        context: &[u8],
    ) -> SealedSecrets {
        let key = &self.keys[&self.primary];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let plaintext =
            serde_json::to_vec(secrets).expect("a list of strings and dates serializes");
        let ciphertext = XChaCha20Poly1305::new(Key::from_slice(key))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &associated_data(webhook_id, &self.primary, version, context),
                },
            )
            .expect("XChaCha20-Poly1305 seals any buffer under 256 GiB");
        SealedSecrets {
            key_id: self.primary.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(ciphertext),
        }
    }

    /// Opens the secrets of `webhook_id` with whichever key sealed them, if `version`
    /// and `context` are what they were sealed with.
    pub fn open(
        &self,
        webhook_id: &str,
        version: u64,
        sealed: &SealedSecrets,
        context: &[u8],
    ) -> Result<Vec<RegistrySecret>, OpenError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let not_authentic = || OpenError::NotAuthentic(sealed.key_id.clone());
        let nonce = BASE64
            .decode(&sealed.nonce)
            .ok()
            .filter(|nonce| nonce.len() == NONCE_BYTES)
            .ok_or_else(not_authentic)?;
        let ciphertext = BASE64
            .decode(&sealed.ciphertext)
            .map_err(|_| not_authentic())?;
        let plaintext = XChaCha20Poly1305::new(Key::from_slice(key))
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &associated_data(webhook_id, &sealed.key_id, version, context),
                },
            )
            .map_err(|_| not_authentic())?;
        serde_json::from_slice(&plaintext).map_err(|_| not_authentic())
    }
}

fn check_key_id(id: &str) -> Result<(), KeyringError> {
    let valid = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid && id != PRIMARY_FILE {
        Ok(())
    } else {
        Err(KeyringError::BadKeyId(id.to_owned()))
    }
}

fn associated_data(webhook_id: &str, key_id: &str, version: u64, context: &[u8]) -> Vec<u8> {
    // Version 0 is an entry sealed before records had versions: its layout is kept so
    // that what is on a topic from then still opens.
    let mut data = if version == 0 {
        format!("hookline.registry.v1\0{webhook_id}\0{key_id}\0")
    } else {
        format!("hookline.registry.v2\0{webhook_id}\0{key_id}\0{version}\0")
    }
    .into_bytes();
    data.extend_from_slice(context);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn secrets() -> Vec<RegistrySecret> {
        vec![
            RegistrySecret {
                value: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
                expires_at: None,
            },
            RegistrySecret {
                value: "whsec_old".into(),
                expires_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            },
        ]
    }

    fn keyring(primary: &str, ids: &[&str]) -> Keyring {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| ((*id).to_owned(), Keyring::generate_key()))
            .collect();
        Keyring::new(primary, keys.iter().map(|(i, k)| (i.as_str(), k.as_str()))).unwrap()
    }

    #[test]
    fn sealed_secrets_open_with_the_keyring_and_hide_the_values() {
        let ring = keyring("k1", &["k1"]);
        let sealed = ring.seal("wh-1", 1, &secrets(), b"ctx");
        assert_eq!(sealed.key_id, "k1");
        let wire = serde_json::to_string(&sealed).unwrap();
        assert!(!wire.contains("whsec_"), "{wire}");
        assert!(!wire.contains("C2FVsBQIhrscChlQIMV"), "{wire}");
        assert_eq!(ring.open("wh-1", 1, &sealed, b"ctx").unwrap(), secrets());
        // A fresh nonce each time: the same secrets never seal to the same bytes.
        assert_ne!(ring.seal("wh-1", 1, &secrets(), b"ctx"), sealed);
    }

    #[test]
    fn another_webhook_another_key_or_altered_bytes_do_not_open() {
        let ring = keyring("k1", &["k1"]);
        let sealed = ring.seal("wh-1", 1, &secrets(), b"ctx");
        assert_eq!(
            ring.open("wh-2", 1, &sealed, b"ctx"),
            Err(OpenError::NotAuthentic("k1".into()))
        );
        assert_eq!(
            ring.open("wh-1", 1, &sealed, b"suspended: false"),
            Err(OpenError::NotAuthentic("k1".into()))
        );
        for version in [0, 2, u64::MAX] {
            assert_eq!(
                ring.open("wh-1", version, &sealed, b"ctx"),
                Err(OpenError::NotAuthentic("k1".into())),
                "opened as version {version}"
            );
        }
        let stranger = keyring("k1", &["k1"]);
        assert_eq!(
            stranger.open("wh-1", 1, &sealed, b"ctx"),
            Err(OpenError::NotAuthentic("k1".into()))
        );
        let mut altered = sealed.clone();
        let mut bytes = BASE64.decode(&altered.ciphertext).unwrap();
        bytes[0] ^= 1;
        altered.ciphertext = BASE64.encode(bytes);
        assert!(ring.open("wh-1", 1, &altered, b"ctx").is_err());
        let relabelled = SealedSecrets {
            key_id: "k2".into(),
            ..sealed
        };
        assert_eq!(
            ring.open("wh-1", 1, &relabelled, b"ctx"),
            Err(OpenError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn a_rotation_keeps_old_entries_readable_until_the_old_key_goes() {
        let k1 = Keyring::generate_key();
        let k2 = Keyring::generate_key();
        let before = Keyring::new("k1", [("k1", k1.as_str())]).unwrap();
        let during = Keyring::new("k2", [("k1", k1.as_str()), ("k2", k2.as_str())]).unwrap();
        let after = Keyring::new("k2", [("k2", k2.as_str())]).unwrap();
        let old = before.seal("wh-1", 1, &secrets(), b"ctx");
        let new = during.seal("wh-1", 1, &secrets(), b"ctx");
        assert_eq!(new.key_id, "k2");
        assert!(during.open("wh-1", 1, &old, b"ctx").is_ok());
        assert!(after.open("wh-1", 1, &new, b"ctx").is_ok());
        assert_eq!(
            after.open("wh-1", 1, &old, b"ctx"),
            Err(OpenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_keyrings_are_refused_naming_the_key_not_its_value() {
        let key = Keyring::generate_key();
        assert!(matches!(
            Keyring::new("k9", [("k1", key.as_str())]),
            Err(KeyringError::NoPrimary(id)) if id == "k9"
        ));
        let err = Keyring::new("k1", [("k1", "c2hvcnQ=")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("k1") && !err.contains("c2hvcnQ"), "{err}");
        for bad in ["", "a/b", "primary", &"x".repeat(65)] {
            assert!(
                matches!(
                    Keyring::new("k1", [("k1", key.as_str()), (bad, key.as_str())]),
                    Err(KeyringError::BadKeyId(_))
                ),
                "{bad:?} accepted"
            );
        }
        let debug = format!("{:?}", Keyring::new("k1", [("k1", key.as_str())]).unwrap());
        assert!(!debug.contains(&key), "{debug}");
    }
}
