//! Slack: `x-slack-request-timestamp: <ts>` and `x-slack-signature: v0=<hex HMAC-SHA256
//! of "v0:{ts}:{body}">`. Slack carries no message id.

use super::request_headers::{self, HeaderLookup};
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, VerifyError};

pub const TIMESTAMP: &str = "x-slack-request-timestamp";
pub const SIGNATURE: &str = "x-slack-signature";
/// Set on Slack's retries of an Events API request (1, 2, 3), with the reason.
pub const RETRY_NUM: &str = "x-slack-retry-num";
pub const RETRY_REASON: &str = "x-slack-retry-reason";

pub(super) fn read<H: HeaderLookup + ?Sized>(headers: &H) -> Result<Claim<'_>, VerifyError> {
    let timestamp_text = request_headers::required(headers, TIMESTAMP, 32)?;
    let timestamp = request_headers::parse_timestamp(TIMESTAMP, timestamp_text)?;
    let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
    let hex = value
        .strip_prefix("v0=")
        .ok_or(VerifyError::MalformedHeader {
            name: SIGNATURE,
            why: "does not start with v0=",
        })?;
    let signature = tag::from_hex(SIGNATURE, hex)?;
    Ok(Claim {
        prefix: format!("v0:{timestamp_text}:"),
        signatures: vec![signature],
        timestamp: Some(timestamp),
        id: None,
        id_signed: false,
    })
}

pub(super) fn sign(message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let prefix = format!("v0:{}:", message.timestamp);
    let tag = tag::compute(message.current.key(), prefix.as_bytes(), message.body);
    vec![
        (TIMESTAMP, message.timestamp.to_string()),
        (SIGNATURE, format!("v0={}", hex::encode(tag))),
    ]
}
