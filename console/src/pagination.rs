//! Keyset pagination: a page ends with an opaque cursor holding the sort key of its
//! last row, and the next page starts strictly after it, so a page costs the same on
//! the first screen and deep in tens of millions of rows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The page size asked for, checked.
pub fn limit(asked: Option<u32>) -> Result<i64, ApiError> {
    match asked.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(i64::from(limit)),
        other => Err(ApiError::BadRequest(format!(
            "limit {other} is out of range: 1 to {MAX_LIMIT}"
        ))),
    }
}

pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(key).expect("a page key of strings, numbers and times serializes"),
    )
}

pub fn decode<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::BadRequest("the cursor is not one this API gave".into()))
}

/// Splits `limit + 1` fetched rows into the page and the next cursor (when there are more).
pub fn page<T, K: Serialize>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|last| encode(&key(last)));
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = encode(&("2026-01-01T00:00:00Z", "wh", "m-1"));
        let back: (String, String, String) = decode(&cursor).expect("round trip");
        assert_eq!(back.2, "m-1");
        assert!(decode::<(String, String, String)>("not a cursor").is_err());
        assert!(decode::<i64>(&encode(&"text")).is_err());
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let (rows, next) = page(vec![1, 2, 3], 2, |n| *n);
        assert_eq!((rows, next.is_some()), (vec![1, 2], true));
        let (rows, next) = page(vec![1, 2], 2, |n| *n);
        assert_eq!((rows, next), (vec![1, 2], None));
        assert!(limit(Some(0)).is_err() && limit(Some(201)).is_err());
        assert_eq!(limit(None).ok(), Some(50));
    }
}
