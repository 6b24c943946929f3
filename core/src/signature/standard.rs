//! Standard Webhooks v1 (<https://www.standardwebhooks.com>), Hookline's own scheme:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`, a space-separated list
//! of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` entries (one per live
//! secret during a rotation; entries of other versions are skipped).
//!
//! Svix, which sends Standard Webhooks unless an account is white-labelled, names the
//! same three headers `svix-id`, `svix-timestamp` and `svix-signature`. Like Svix's
//! own verifier, each of the three is read from its `svix-` name when the request has
//! it, else from its `webhook-` name.
//!
//! The message id is the event's id and idempotency key; the body's `type` and
//! `timestamp` are the event's type and time.

use base64::Engine;

use super::identity::{BodyFields, ReadIdentity, header_text, rfc3339};
use super::request_headers::{self, HeaderLookup};
use super::secret::SecretForm;
use super::tag::{self, BASE64};
use super::{
    Claim, MAX_SIGNATURE_HEADER_LEN, MAX_SIGNATURES, Outgoing, Profile, Provider, VerifyError,
};

pub const ID: &str = "webhook-id";
pub const TIMESTAMP: &str = "webhook-timestamp";
pub const SIGNATURE: &str = "webhook-signature";

/// The names Svix gives the same headers.
pub const SVIX_ID: &str = "svix-id";
pub const SVIX_TIMESTAMP: &str = "svix-timestamp";
pub const SVIX_SIGNATURE: &str = "svix-signature";

/// The three header names a request is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderNames {
    pub id: &'static str,
    pub timestamp: &'static str,
    pub signature: &'static str,
}

/// Svix's own rule, header by header: the `svix-` name when the request has it, else
/// the `webhook-` one.
pub fn names_of<H: HeaderLookup + ?Sized>(headers: &H) -> HeaderNames {
    let pick = |svix: &'static str, standard: &'static str| {
        if headers.header(svix).is_some() {
            svix
        } else {
            standard
        }
    };
    HeaderNames {
        id: pick(SVIX_ID, ID),
        timestamp: pick(SVIX_TIMESTAMP, TIMESTAMP),
        signature: pick(SVIX_SIGNATURE, SIGNATURE),
    }
}

pub(crate) const PROFILE: Profile = Profile {
    name: "standard",
    has_timestamp: true,
    secret_form: SecretForm::PrefixedBase64,
    signature_headers: &[SIGNATURE, SVIX_SIGNATURE],
    kept_headers: &[ID, TIMESTAMP, SVIX_ID, SVIX_TIMESTAMP],
};

pub(super) struct Standard;

impl Provider for Standard {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError> {
        let names = names_of(headers);
        let id = request_headers::optional_message_id(headers, names.id)?
            .ok_or(VerifyError::MissingHeader { name: names.id })?;
        let timestamp_text = request_headers::required(headers, names.timestamp, 32)?;
        let timestamp = request_headers::parse_timestamp(names.timestamp, timestamp_text)?;
        let list = request_headers::required(headers, names.signature, MAX_SIGNATURE_HEADER_LEN)?;
        let malformed = |why| VerifyError::MalformedHeader {
            name: names.signature,
            why,
        };
        let mut signatures = Vec::new();
        for (count, entry) in list
            .split(' ')
            .filter(|entry| !entry.is_empty())
            .enumerate()
        {
            if count == MAX_SIGNATURES {
                return Err(malformed("more than 10 signatures"));
            }
            let (version, signature) = entry
                .split_once(',')
                .ok_or_else(|| malformed("entry is not <version>,<signature>"))?;
            if version == "v1" {
                signatures.push(tag::from_base64(names.signature, signature)?);
            }
        }
        Ok(Claim {
            prefix: format!("{id}.{timestamp_text}."),
            signatures,
            timestamp: Some(timestamp),
            id: Some(id),
            id_signed: true,
        })
    }

    /// One `v1,` entry per secret (the first [`MAX_SIGNATURES`]).
    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let prefix = format!("{}.{}.", message.id, message.timestamp);
        let signatures: Vec<String> = message
            .secrets
            .iter()
            .take(MAX_SIGNATURES)
            .map(|secret| {
                let tag = tag::compute(secret.key(), prefix.as_bytes(), message.body);
                format!("v1,{}", BASE64.encode(tag))
            })
            .collect();
        vec![
            (ID, message.id.to_owned()),
            (TIMESTAMP, message.timestamp.to_string()),
            (SIGNATURE, signatures.join(" ")),
        ]
    }

    fn identify(&self, headers: &dyn HeaderLookup, body: &[u8]) -> ReadIdentity {
        let fields = BodyFields::read(body);
        let id = header_text(headers, names_of(headers).id);
        ReadIdentity {
            message_id: id.clone(),
            event_id: id,
            event_type: fields.kind,
            occurred_at: fields.timestamp.as_deref().and_then(rfc3339),
        }
    }
}
