//! Shopify: `x-shopify-hmac-sha256: <base64 HMAC-SHA256 of the body>`, or the same
//! without `x-` (`shopify-hmac-sha256`, as Shopify's newer Events deliveries name their
//! headers). The id in `x-shopify-webhook-id` (`shopify-webhook-id`) is reported as
//! the message id, but Shopify does not sign it, and there is no signed timestamp.
//!
//! The event is `x-shopify-event-id` (else the webhook id), its type `x-shopify-topic`,
//! its time `x-shopify-triggered-at`; the idempotency key is `{event id}:{topic}`, else
//! the webhook id (always the webhook id for Events deliveries).

use base64::Engine;

use super::identity::{ReadIdentity, header_text, rfc3339};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag::{self, BASE64};
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, Profile, Provider, VerifyError};

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

pub(crate) const PROFILE: Profile = Profile {
    name: "shopify",
    has_timestamp: false,
    secret_form: SecretForm::Verbatim,
    signature_headers: &[SIGNATURE, EVENTS_SIGNATURE],
    kept_headers: &[
        WEBHOOK_ID,
        EVENT_ID,
        TOPIC,
        TRIGGERED_AT,
        EVENTS_WEBHOOK_ID,
        EVENTS_EVENT_ID,
        EVENTS_TOPIC,
        EVENTS_TRIGGERED_AT,
    ],
};

pub(super) struct Shopify;

impl Provider for Shopify {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
        let (signature_name, id_name) = if uses_events_names(headers) {
            (EVENTS_SIGNATURE, EVENTS_WEBHOOK_ID)
        } else {
            (SIGNATURE, WEBHOOK_ID)
        };
        let value = request_headers::required(headers, signature_name, MAX_SIGNATURE_HEADER_LEN)?;
        let signature = tag::from_base64(signature_name, value)?;
        let id = request_headers::optional_message_id(headers, id_name)?;
        Ok(Claim::of_body(signature, id))
    }

    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let tag = tag::compute(message.current.key(), b"", message.body);
        vec![
            (SIGNATURE, BASE64.encode(tag)),
            (WEBHOOK_ID, message.id.to_owned()),
        ]
    }

    fn identify(&self, headers: &dyn HeaderLookup, _body: &[u8]) -> ReadIdentity {
        let events = uses_events_names(headers);
        let [webhook_id, event_id, topic, triggered_at] = if events {
            [
                EVENTS_WEBHOOK_ID,
                EVENTS_EVENT_ID,
                EVENTS_TOPIC,
                EVENTS_TRIGGERED_AT,
            ]
        } else {
            [WEBHOOK_ID, EVENT_ID, TOPIC, TRIGGERED_AT]
        }
        .map(|name| header_text(headers, name));
        // Shopify's webhooks documentation keys duplicates on the event id (one per
        // subscription and topic); its Events documentation on the webhook id.
        let message_id = match (&event_id, &topic) {
            (Some(event), Some(topic)) if !events => Some(format!("{event}:{topic}")),
            _ => webhook_id.clone(),
        };
        ReadIdentity {
            message_id,
            event_id: event_id.or(webhook_id),
            event_type: topic,
            occurred_at: triggered_at.as_deref().and_then(rfc3339),
        }
    }
}
