//! Reading request headers: the lookup trait and the bounded, checked readers the
//! schemes share.

use chrono::{DateTime, Utc};
use http::HeaderMap;

use super::VerifyError;
use crate::ids::{MAX_MESSAGE_ID_LEN, MessageId};

/// Request headers as the verifier reads them.
///
/// Implemented for the `http` crate's [`HeaderMap`] (axum's) and for lists of `(name, value)` pairs (slices,
/// arrays, `Vec`s, such as [`sign`](super::sign)'s output), so handlers and tests pass
/// what they have.
pub trait HeaderLookup {
    /// The raw value of the header `name` (given in lowercase), matching names
    /// case-insensitively; with several headers of that name, the first.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl HeaderLookup for HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|value| value.as_bytes())
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for &T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }
}

/// The header `name` as ASCII text of at most `max_len` bytes, if present.
pub(super) fn optional<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    name: &'static str,
    max_len: usize,
) -> Result<Option<&'h str>, VerifyError> {
    let Some(raw) = headers.header(name) else {
        return Ok(None);
    };
    let malformed = |why| VerifyError::MalformedHeader { name, why };
    if raw.is_empty() {
        return Err(malformed("empty"));
    }
    if raw.len() > max_len {
        return Err(malformed("too long"));
    }
    match std::str::from_utf8(raw) {
        Ok(text) if text.is_ascii() => Ok(Some(text)),
        _ => Err(malformed("not ASCII")),
    }
}

/// The header `name` as ASCII text of at most `max_len` bytes.
pub(super) fn required<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    name: &'static str,
    max_len: usize,
) -> Result<&'h str, VerifyError> {
    optional(headers, name, max_len)?.ok_or(VerifyError::MissingHeader { name })
}

/// The message id in header `name`, if present; see [`MessageId::check`].
pub(super) fn optional_message_id<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    name: &'static str,
) -> Result<Option<&'h str>, VerifyError> {
    let id = optional(headers, name, MAX_MESSAGE_ID_LEN)?;
    if let Some(id) = id {
        MessageId::check(id).map_err(|err| VerifyError::MalformedHeader {
            name,
            why: err.reason(),
        })?;
    }
    Ok(id)
}

/// Seconds since 1970 as plain decimal digits (no sign, no fraction, no spaces).
pub(super) fn parse_timestamp(
    name: &'static str,
    value: &str,
) -> Result<DateTime<Utc>, VerifyError> {
    let malformed = |why| VerifyError::MalformedHeader { name, why };
    // 18 digits always fit an i64.
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("timestamp is not whole seconds since 1970"));
    }
    let seconds: i64 = value
        .parse()
        .map_err(|_| malformed("timestamp is not whole seconds since 1970"))?;
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| malformed("timestamp out of range"))
}
