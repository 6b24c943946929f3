//! GitHub: `x-hub-signature-256: sha256=<hex HMAC-SHA256 of the body>`. The delivery
//! id in `x-github-delivery` is reported as the message id, but GitHub does not sign
//! it, and there is no timestamp.

use super::request_headers::{self, HeaderLookup};
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, VerifyError};

pub const SIGNATURE: &str = "x-hub-signature-256";
pub const DELIVERY: &str = "x-github-delivery";
pub const EVENT: &str = "x-github-event";
/// Which of the sender's hooks delivered: one event delivered to several hooks shares
/// its delivery id.
pub const HOOK_ID: &str = "x-github-hook-id";

pub(super) fn read<H: HeaderLookup + ?Sized>(headers: &H) -> Result<Claim<'_>, VerifyError> {
    let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
    let hex = value
        .strip_prefix("sha256=")
        .ok_or(VerifyError::MalformedHeader {
            name: SIGNATURE,
            why: "does not start with sha256=",
        })?;
    let signature = tag::from_hex(SIGNATURE, hex)?;
    Ok(Claim {
        prefix: String::new(),
        signatures: vec![signature],
        timestamp: None,
        id: request_headers::optional_message_id(headers, DELIVERY)?,
        id_signed: false,
    })
}

pub(super) fn sign(message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let tag = tag::compute(message.current.key(), b"", message.body);
    vec![
        (SIGNATURE, format!("sha256={}", hex::encode(tag))),
        (DELIVERY, message.id.to_owned()),
    ]
}
