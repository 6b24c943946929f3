//! Signing secrets: parsing them per scheme, generating new ones, never printing them.

use std::fmt;

use base64::Engine;
use thiserror::Error;

use super::Scheme;
use super::tag::BASE64;

/// The prefix of Standard Webhooks secrets.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";

/// How a scheme writes its secrets (each [`Provider`](super::Provider) says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretForm {
    /// `whsec_` and the base64 of the key, as Standard Webhooks writes them.
    PrefixedBase64,
    /// The text's own bytes are the key.
    Verbatim,
}

/// An HMAC key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SigningSecret {
    key: Box<[u8]>,
}

/// Why a secret is refused. No variant carries any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("the signing secret is empty")]
    Empty,
    #[error("a Standard Webhooks secret must start with whsec_")]
    MissingPrefix,
    #[error("a Standard Webhooks secret must be whsec_ followed by base64")]
    NotBase64,
    /// For the schemes whose key is the secret's own bytes: a newline or space at
    /// either end (what `kubectl create secret --from-file` of an `echo`ed file gives)
    /// would be part of the key, so the provider's signatures could never match.
    #[error(
        "the signing secret starts or ends with whitespace (a trailing newline?); {0} uses the secret's bytes as they are, so remove it"
    )]
    SurroundingWhitespace(Scheme),
}

impl SigningSecret {
    /// The key `secret` stands for under `scheme`.
    ///
    /// - Standard Webhooks: `whsec_<base64>`, the key is the decoded bytes (padding
    ///   optional). Whitespace around it is dropped: it cannot be part of base64, and
    ///   the official Python library's decoder drops it too.
    /// - Every other scheme: the string's own bytes, as their libraries use them (so a
    ///   Stripe `whsec_...` secret is used whole, prefix included). Whitespace at
    ///   either end is refused, not trimmed: the library would sign with it, the
    ///   provider never does, so it can only be a mistake, and guessing would hide it.
    pub fn parse(scheme: Scheme, secret: &str) -> Result<Self, SecretError> {
        match scheme.provider().profile().secret_form {
            SecretForm::PrefixedBase64 => {
                let encoded = secret
                    .trim_ascii()
                    .strip_prefix(STANDARD_SECRET_PREFIX)
                    .ok_or(SecretError::MissingPrefix)?;
                let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
                Self::from_bytes(key)
            }
            SecretForm::Verbatim => {
                if secret.trim_ascii().len() != secret.len() {
                    return Err(SecretError::SurroundingWhitespace(scheme));
                }
                Self::from_bytes(secret.as_bytes())
            }
        }
    }

    /// A secret made of these key bytes, which must not be empty.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            key: key.into_boxed_slice(),
        })
    }

    pub(super) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// A new Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes from
/// the operating system's generator (through rand's thread-local CSPRNG).
pub fn generate_standard_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{STANDARD_SECRET_PREFIX}{}", BASE64.encode(key))
}
