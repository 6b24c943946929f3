//! Which JSON documents PostgreSQL's `jsonb` can hold, decided before the insert so a
//! batch is not refused for one event's body. `jsonb` is stricter than JSON: it
//! refuses the escape `\u0000`, a surrogate escape that is not part of a pair, and a
//! number `numeric` cannot represent. Whatever else it refuses, the store's row by row
//! path catches (`hookline_store::events::insert_one_by_one`).

use serde::de::IgnoredAny;

/// `numeric`'s limits (PostgreSQL's `NUMERIC_WEIGHT_MAX` in base-10000 digits, and
/// `NUMERIC_DSCALE_MAX`): at most 131072 decimal digits before the point and 16383
/// after it.
const MAX_DIGITS_BEFORE_POINT: i64 = 131_072;
const MAX_DIGITS_AFTER_POINT: i64 = 16_383;
/// `numeric_in` refuses any exponent this large, even on zero (`INT_MAX / 2`).
const MAX_EXPONENT: i64 = (i32::MAX / 2) as i64;

/// `bytes` as text when they are one JSON document that `jsonb` accepts.
pub fn storable(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    // Syntax, and nesting no deeper than serde_json's 128 levels, well inside what
    // PostgreSQL's stack allows.
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    jsonb_accepts(text.as_bytes()).then_some(text)
}

/// Whether `jsonb` accepts `json`, a document already known to be valid JSON.
fn jsonb_accepts(json: &[u8]) -> bool {
    let mut at = 0;
    while at < json.len() {
        match json[at] {
            b'"' => match string_end(json, at + 1) {
                Some(end) => at = end,
                None => return false,
            },
            b'-' | b'0'..=b'9' => {
                let (number, end) = Number::read(json, at);
                if !number.fits_numeric() {
                    return false;
                }
                at = end;
            }
            _ => at += 1,
        }
    }
    true
}

/// The index just past the string whose text starts at `at`, or `None` when it holds
/// an escape `jsonb` refuses.
fn string_end(json: &[u8], mut at: usize) -> Option<usize> {
    // A high surrogate escape waiting for its low half.
    let mut pending_high = false;
    while at < json.len() {
        match json[at] {
            b'"' if !pending_high => return Some(at + 1),
            b'\\' if json.get(at + 1) == Some(&b'u') => {
                let unit = json
                    .get(at + 2..at + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())?;
                match unit {
                    0 => return None,
                    0xD800..=0xDBFF if !pending_high => pending_high = true,
                    0xDC00..=0xDFFF if pending_high => pending_high = false,
                    0xD800..=0xDFFF => return None,
                    _ if pending_high => return None,
                    _ => {}
                }
                at += 6;
            }
            _ if pending_high => return None,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    None
}

/// A JSON number's digits and exponent, as `numeric` reads them.
#[derive(Debug, PartialEq)]
struct Number<'j> {
    integer: &'j [u8],
    fraction: &'j [u8],
    /// Saturated: an exponent of more digits than an `i64` holds is out of range anyway.
    exponent: i64,
}

impl<'j> Number<'j> {
    /// Reads the valid JSON number starting at `at`; returns it and the index past it.
    fn read(json: &'j [u8], mut at: usize) -> (Self, usize) {
        let digits_from = |from: usize| {
            let len = json[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            (&json[from..from + len], from + len)
        };
        if json[at] == b'-' {
            at += 1;
        }
        let (integer, mut at) = digits_from(at);
        let mut fraction: &[u8] = &[];
        if json.get(at) == Some(&b'.') {
            (fraction, at) = digits_from(at + 1);
        }
        let mut exponent = 0i64;
        if matches!(json.get(at), Some(b'e' | b'E')) {
            at += 1;
            let negative = json.get(at) == Some(&b'-');
            if matches!(json.get(at), Some(b'-' | b'+')) {
                at += 1;
            }
            let digits;
            (digits, at) = digits_from(at);
            let magnitude = digits.iter().fold(0i64, |value, digit| {
                value
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'))
            });
            exponent = if negative { -magnitude } else { magnitude };
        }
        (
            Self {
                integer,
                fraction,
                exponent,
            },
            at,
        )
    }

    fn fits_numeric(&self) -> bool {
        if self.exponent >= MAX_EXPONENT || self.exponent <= -MAX_EXPONENT {
            return false;
        }
        let fraction_len = i64::try_from(self.fraction.len()).unwrap_or(i64::MAX);
        let digits_after_point = fraction_len.saturating_sub(self.exponent).max(0);
        if digits_after_point > MAX_DIGITS_AFTER_POINT {
            return false;
        }
        // Where the first significant digit stands, counted as digits before the
        // point (zero or less when it stands after it); zero has none.
        let significant_integer = self.integer.iter().skip_while(|d| **d == b'0').count();
        let digits_before_point = if significant_integer > 0 {
            i64::try_from(significant_integer).unwrap_or(i64::MAX)
        } else {
            match self.fraction.iter().position(|d| *d != b'0') {
                Some(zeros) => -i64::try_from(zeros).unwrap_or(i64::MAX),
                None => return true,
            }
        };
        digits_before_point.saturating_add(self.exponent) <= MAX_DIGITS_BEFORE_POINT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_numeric_are_refused() {
        for refused in [
            "1e999999",
            "[1e131072]",
            "{\"a\":10e131071}",
            "1e-16384",
            "1.5e-16383",
            "0e-16384",
            "-1e200000",
            "0e1073741823",
            "1e99999999999999999999999",
        ] {
            assert_eq!(storable(refused.as_bytes()), None, "{refused}");
        }
        for accepted in [
            "1e131071",
            "9.9e131071",
            "0.1e131072",
            "1e-16383",
            "1.0e-16382",
            "0e999999",
            "-0.5",
            "[1E+2, 3e-2, 0]",
        ] {
            assert_eq!(storable(accepted.as_bytes()), Some(accepted), "{accepted}");
        }
    }

    #[test]
    fn escapes_jsonb_cannot_hold_are_refused() {
        for refused in [
            r#""\u0000""#,
            r#"{"a":"\ud800"}"#,
            r#""\udc00x""#,
            r#""\ud800\u0041""#,
            r#""\ud800\ud800""#,
        ] {
            assert_eq!(storable(refused.as_bytes()), None, "{refused}");
        }
        for accepted in [
            r#""\ud83d\ude00""#,
            r#""a\\u0000 is text""#,
            r#"{"1e999999":"1e999999"}"#,
            r#""\"""#,
        ] {
            assert_eq!(storable(accepted.as_bytes()), Some(accepted), "{accepted}");
        }
    }

    #[test]
    fn what_is_not_json_is_not_storable() {
        for body in ["", "{", "<xml/>", "{\"a\":1} trailing", "\"\u{7f}"] {
            assert_eq!(storable(body.as_bytes()), None, "{body:?}");
        }
        assert_eq!(storable(&[b'"', 0xff, b'"']), None);
    }
}
