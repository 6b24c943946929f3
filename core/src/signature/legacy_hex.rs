//! The Go prototype's scheme: `x-webhook-signature: <hex HMAC-SHA256 of the body>`.
//! No timestamp and no message id: kept only for senders not yet moved to Standard
//! Webhooks; a captured request verifies forever.

use super::request_headers::{self, HeaderLookup};
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, VerifyError};

pub const SIGNATURE: &str = "x-webhook-signature";

pub(super) fn read<H: HeaderLookup + ?Sized>(headers: &H) -> Result<Claim<'_>, VerifyError> {
    let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
    Ok(Claim {
        prefix: String::new(),
        signatures: vec![tag::from_hex(SIGNATURE, value)?],
        timestamp: None,
        id: None,
        id_signed: false,
    })
}

pub(super) fn sign(message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let tag = tag::compute(message.current.key(), b"", message.body);
    vec![(SIGNATURE, hex::encode(tag))]
}
