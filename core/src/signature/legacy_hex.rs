//! The Go prototype's scheme: `x-webhook-signature: <hex HMAC-SHA256 of the body>`.
//! No timestamp and no message id: kept only for senders not yet moved to Standard
//! Webhooks; a captured request verifies forever. The body's `event_id` is the
//! idempotency key, `event_type` and `timestamp` the event's type and time.

use super::identity::{BodyFields, ReadIdentity, rfc3339};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, Profile, Provider, VerifyError};

pub const SIGNATURE: &str = "x-webhook-signature";

pub(crate) const PROFILE: Profile = Profile {
    name: "legacy-hex",
    has_timestamp: false,
    secret_form: SecretForm::Verbatim,
    signature_headers: &[SIGNATURE],
    kept_headers: &[],
};

pub(super) struct LegacyHex;

impl Provider for LegacyHex {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
        let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
        Ok(Claim::of_body(tag::from_hex(SIGNATURE, value)?, None))
    }

    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let tag = tag::compute(message.current.key(), b"", message.body);
        vec![(SIGNATURE, hex::encode(tag))]
    }

    fn identify(&self, _headers: &dyn HeaderLookup, body: &[u8]) -> ReadIdentity {
        let fields = BodyFields::read(body);
        ReadIdentity {
            message_id: fields.event_id.clone(),
            event_id: fields.event_id,
            event_type: fields.event_type,
            occurred_at: fields.timestamp.as_deref().and_then(rfc3339),
        }
    }
}
