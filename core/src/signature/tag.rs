//! HMAC-SHA256 tags: computing, decoding from headers, and matching in constant time.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::{SigningSecret, VerifyError};

/// An HMAC-SHA256 output.
pub(super) type Tag = [u8; 32];

/// Standard base64 that writes padding and reads it with or without (senders differ).
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// HMAC-SHA256 of `prefix || body` under `key`.
pub(super) fn compute(key: &[u8], prefix: &[u8], body: &[u8]) -> Tag {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(prefix);
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The index of the first secret whose tag equals one of `candidates`.
///
/// Every secret's tag is compared with every candidate in full, in constant time,
/// whatever the earlier comparisons gave: the time taken depends on the number of
/// secrets and candidates only, never on where a candidate differs.
pub(super) fn matching_secret(
    secrets: &[SigningSecret],
    prefix: &[u8],
    body: &[u8],
    candidates: &[Tag],
) -> Option<usize> {
    let mut matched = None;
    for (index, secret) in secrets.iter().enumerate() {
        let expected = compute(secret.key(), prefix, body);
        let hit = candidates.iter().fold(Choice::from(0), |hit, candidate| {
            hit | expected[..].ct_eq(&candidate[..])
        });
        if matched.is_none() && bool::from(hit) {
            matched = Some(index);
        }
    }
    matched
}

/// A tag written as 64 hex digits (either case).
pub(super) fn from_hex(name: &'static str, text: &str) -> Result<Tag, VerifyError> {
    let mut tag = [0; 32];
    hex::decode_to_slice(text, &mut tag).map_err(|_| VerifyError::MalformedHeader {
        name,
        why: "signature is not 64 hex digits",
    })?;
    Ok(tag)
}

/// A tag written in base64.
pub(super) fn from_base64(name: &'static str, text: &str) -> Result<Tag, VerifyError> {
    let malformed = |why| VerifyError::MalformedHeader { name, why };
    let bytes = BASE64
        .decode(text)
        .map_err(|_| malformed("signature is not base64"))?;
    bytes
        .try_into()
        .map_err(|_| malformed("signature is not 32 bytes"))
}
