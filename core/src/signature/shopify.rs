//! Shopify: `x-shopify-hmac-sha256: <base64 HMAC-SHA256 of the body>`, or the same
//! without `x-` (`shopify-hmac-sha256`, as Shopify's newer Events deliveries name their
//! headers). The id in `x-shopify-webhook-id` (`shopify-webhook-id`) is reported as
//! the message id, but Shopify does not sign it, and there is no signed timestamp.

use base64::Engine;

use super::request_headers::{self, HeaderLookup};
use super::tag::{self, BASE64};
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, VerifyError};

pub const SIGNATURE: &str = "x-shopify-hmac-sha256";
pub const WEBHOOK_ID: &str = "x-shopify-webhook-id";
pub const EVENT_ID: &str = "x-shopify-event-id";
pub const TOPIC: &str = "x-shopify-topic";
pub const TRIGGERED_AT: &str = "x-shopify-triggered-at";

/// The unprefixed names of Shopify's Events deliveries.
pub const EVENTS_SIGNATURE: &str = "shopify-hmac-sha256";
pub const EVENTS_WEBHOOK_ID: &str = "shopify-webhook-id";
pub const EVENTS_EVENT_ID: &str = "shopify-event-id";
pub const EVENTS_TOPIC: &str = "shopify-topic";
pub const EVENTS_TRIGGERED_AT: &str = "shopify-triggered-at";

/// Whether the request names its headers the Events way (no `x-` signature header).
pub fn uses_events_names<H: HeaderLookup + ?Sized>(headers: &H) -> bool {
    headers.header(SIGNATURE).is_none() && headers.header(EVENTS_SIGNATURE).is_some()
}

pub(super) fn read<H: HeaderLookup + ?Sized>(headers: &H) -> Result<Claim<'_>, VerifyError> {
    let (signature_name, id_name) = if uses_events_names(headers) {
        (EVENTS_SIGNATURE, EVENTS_WEBHOOK_ID)
    } else {
        (SIGNATURE, WEBHOOK_ID)
    };
    let value = request_headers::required(headers, signature_name, MAX_SIGNATURE_HEADER_LEN)?;
    let signature = tag::from_base64(signature_name, value)?;
    Ok(Claim {
        prefix: String::new(),
        signatures: vec![signature],
        timestamp: None,
        id: request_headers::optional_message_id(headers, id_name)?,
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
