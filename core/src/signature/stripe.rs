//! Stripe: `stripe-signature: t=<timestamp>,v1=<hex>[,v1=<hex>...]`, each `v1` a hex
//! HMAC-SHA256 of `"{t}.{body}"` keyed with the whole `whsec_...` string. Items of
//! other schemes (`v0=`) are skipped. Stripe carries no message id in headers: the
//! body's event `id` is the idempotency key, its `type` and `created` the event's type
//! and time.

use super::identity::{BodyFields, ReadIdentity, unix};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag;
use super::{
    Claim, MAX_SIGNATURE_HEADER_LEN, MAX_SIGNATURES, Outgoing, Profile, Provider, VerifyError,
};

pub const SIGNATURE: &str = "stripe-signature";
/// Items read from one header, signatures of every scheme included.
const MAX_ITEMS: usize = 2 * MAX_SIGNATURES + 1;

pub(crate) const PROFILE: Profile = Profile {
    name: "stripe",
    has_timestamp: true,
    secret_form: SecretForm::Verbatim,
    signature_headers: &[SIGNATURE],
    kept_headers: &[],
};

pub(super) struct Stripe;

impl Provider for Stripe {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
        let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
        let malformed = |why| VerifyError::MalformedHeader {
            name: SIGNATURE,
            why,
        };
        let mut timestamp_text = None;
        let mut signatures = Vec::new();
        for (count, item) in value.split(',').enumerate() {
            if count == MAX_ITEMS {
                return Err(malformed("more than 21 items"));
            }
            let (key, value) = item
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("item is not key=value"))?;
            match key {
                "t" if timestamp_text.is_some() => return Err(malformed("more than one t=")),
                "t" => timestamp_text = Some(value),
                "v1" if signatures.len() == MAX_SIGNATURES => {
                    return Err(malformed("more than 10 signatures"));
                }
                "v1" => signatures.push(tag::from_hex(SIGNATURE, value)?),
                _ => {}
            }
        }
        let timestamp_text = timestamp_text.ok_or_else(|| malformed("no t= timestamp"))?;
        let timestamp = request_headers::parse_timestamp(SIGNATURE, timestamp_text)?;
        Ok(Claim {
            prefix: format!("{timestamp_text}."),
            signatures,
            timestamp: Some(timestamp),
            id: None,
            id_signed: false,
        })
    }

    /// `t=` and one `v1=` per secret (the first [`MAX_SIGNATURES`]).
    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let prefix = format!("{}.", message.timestamp);
        let mut value = format!("t={}", message.timestamp);
        for secret in message.secrets.iter().take(MAX_SIGNATURES) {
            let tag = tag::compute(secret.key(), prefix.as_bytes(), message.body);
            value.push_str(",v1=");
            value.push_str(&hex::encode(tag));
        }
        vec![(SIGNATURE, value)]
    }

    fn identify(&self, _headers: &dyn HeaderLookup, body: &[u8]) -> ReadIdentity {
        let fields = BodyFields::read(body);
        ReadIdentity {
            message_id: fields.id.clone(),
            event_id: fields.id,
            event_type: fields.kind,
            occurred_at: fields.created.and_then(unix),
        }
    }
}
