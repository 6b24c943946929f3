//! GitHub: `x-hub-signature-256: sha256=<hex HMAC-SHA256 of the body>`. The delivery
//! id in `x-github-delivery` is reported as the message id, but GitHub does not sign
//! it, and there is no timestamp.
//!
//! The event's id is the delivery id, its type `x-github-event`; the idempotency key
//! is `{hook id}:{delivery id}`, as one event delivered to several hooks shares its
//! delivery id.

use super::identity::{ReadIdentity, header_text};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag;
use super::{Claim, MAX_SIGNATURE_HEADER_LEN, Outgoing, Profile, Provider, VerifyError};

pub const SIGNATURE: &str = "x-hub-signature-256";
pub const DELIVERY: &str = "x-github-delivery";
pub const EVENT: &str = "x-github-event";
/// Which of the sender's hooks delivered: one event delivered to several hooks shares
/// its delivery id.
pub const HOOK_ID: &str = "x-github-hook-id";

pub(crate) const PROFILE: Profile = Profile {
    name: "github",
    has_timestamp: false,
    secret_form: SecretForm::Verbatim,
    signature_headers: &[SIGNATURE],
    kept_headers: &[DELIVERY, EVENT, HOOK_ID],
};

pub(super) struct Github;

impl Provider for Github {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
        let value = request_headers::required(headers, SIGNATURE, MAX_SIGNATURE_HEADER_LEN)?;
        let hex = value
            .strip_prefix("sha256=")
            .ok_or(VerifyError::MalformedHeader {
                name: SIGNATURE,
                why: "does not start with sha256=",
            })?;
        let signature = tag::from_hex(SIGNATURE, hex)?;
        let id = request_headers::optional_message_id(headers, DELIVERY)?;
        Ok(Claim::of_body(signature, id))
    }

    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let tag = tag::compute(message.current.key(), b"", message.body);
        vec![
            (SIGNATURE, format!("sha256={}", hex::encode(tag))),
            (DELIVERY, message.id.to_owned()),
        ]
    }

    fn identify(&self, headers: &dyn HeaderLookup, _body: &[u8]) -> ReadIdentity {
        let delivery = header_text(headers, DELIVERY);
        let message_id = match (header_text(headers, HOOK_ID), &delivery) {
            (Some(hook), Some(delivery)) => Some(format!("{hook}:{delivery}")),
            (None, delivery) => delivery.clone(),
            (Some(_), None) => None,
        };
        ReadIdentity {
            message_id,
            event_id: delivery,
            event_type: header_text(headers, EVENT),
            occurred_at: None,
        }
    }
}
