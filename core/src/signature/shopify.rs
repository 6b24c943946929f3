//! Shopify: `x-shopify-hmac-sha256: <base64 HMAC-SHA256 of the body>`. The id in
//! `x-shopify-webhook-id` is reported as the message id, but Shopify does not sign
//! it, and there is no signed timestamp.

use base64::Engine;

use super::headers::{self, HeaderLookup};
use super::tag::{self, BASE64};
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, VerifyError};

pub const SIGNATURE: &str = "x-shopify-hmac-sha256";
pub const WEBHOOK_ID: &str = "x-shopify-webhook-id";

pub(super) fn read<H: HeaderLookup + ?Sized>(headers: &H) -> Result<Claim<'_>, VerifyError> {
    let value = headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
    let signature = tag::from_base64(SIGNATURE, value)?;
    Ok(Claim {
        prefix: String::new(),
        signatures: vec![signature],
        timestamp: None,
        id: headers::optional_message_id(headers, WEBHOOK_ID)?,
        id_signed: false,
    })
}

pub(super) fn sign(message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let tag = tag::compute(message.current.key(), b"", message.body);
    vec![
        (SIGNATURE, BASE64.encode(tag)),
        (WEBHOOK_ID, message.id.to_owned()),
    ]
}
