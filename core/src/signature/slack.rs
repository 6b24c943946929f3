//! Slack: `x-slack-request-timestamp: <ts>` and `x-slack-signature: v0=<hex HMAC-SHA256
//! of "v0:{ts}:{body}">`. Slack carries no message id in headers: the body's
//! `event_id` is the idempotency key, `event.type` (else `type`) and `event_time` the
//! event's type and time. Slash commands (form bodies) carry none of them.

use super::identity::{BodyFields, ReadIdentity, unix};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, Profile, Provider, VerifyError};

pub const TIMESTAMP: &str = "x-slack-request-timestamp";
pub const SIGNATURE: &str = "x-slack-signature";
/// Set on Slack's retries of an Events API request (1, 2, 3), with the reason.
pub const RETRY_NUM: &str = "x-slack-retry-num";
pub const RETRY_REASON: &str = "x-slack-retry-reason";

pub(crate) const PROFILE: Profile = Profile {
    name: "slack",
    has_timestamp: true,
    secret_form: SecretForm::Verbatim,
    signature_headers: &[SIGNATURE],
    kept_headers: &[TIMESTAMP, RETRY_NUM, RETRY_REASON],
};

pub(super) struct Slack;

impl Provider for Slack {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
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

    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let prefix = format!("v0:{}:", message.timestamp);
        let tag = tag::compute(message.current.key(), prefix.as_bytes(), message.body);
        vec![
            (TIMESTAMP, message.timestamp.to_string()),
            (SIGNATURE, format!("v0={}", hex::encode(tag))),
        ]
    }

    fn identify(&self, _headers: &dyn HeaderLookup, body: &[u8]) -> ReadIdentity {
        let fields = BodyFields::read(body);
        ReadIdentity {
            message_id: fields.event_id.clone(),
            event_id: fields.event_id,
            event_type: fields.inner_kind.or(fields.kind),
            occurred_at: fields.event_time.and_then(unix),
        }
    }
}
