//! Webhook signatures: signing and verifying every scheme Hookline speaks, as pure
//! functions (no I/O; the clock is an argument).
//!
//! | scheme | signature header | signed content | encoding | timestamp | message id |
//! | --- | --- | --- | --- | --- | --- |
//! | `standard` | `webhook-signature: v1,<sig> v1,<sig>` (or `svix-signature`) | `{id}.{timestamp}.{body}` | base64 | `webhook-timestamp` (`svix-timestamp`) | `webhook-id` (`svix-id`), signed |
//! | `github` | `x-hub-signature-256: sha256=<sig>` | body | hex | - | `x-github-delivery` (not signed) |
//! | `stripe` | `stripe-signature: t=<ts>,v1=<sig>,v1=<sig>` | `{t}.{body}` | hex | `t` | - |
//! | `shopify` | `x-shopify-hmac-sha256: <sig>` (or `shopify-hmac-sha256`) | body | base64 | - | `x-shopify-webhook-id` (not signed) |
//! | `slack` | `x-slack-signature: v0=<sig>` | `v0:{ts}:{body}` | hex | `x-slack-request-timestamp` | - |
//! | `legacy-hex` | `x-webhook-signature: <sig>` | body | hex | - | - |
//!
//! Each scheme is one `Provider`, implemented in the scheme's module: its headers,
//! its secrets' form, how it is read, signed and identified. `Scheme::provider` is
//! the only place a scheme meets its code. The id a provider keeps across its retries,
//! and the event's type, are read through [`crate::provider`].
//!
//! Every signature is an HMAC-SHA256. [`verify`] reads and checks the headers first
//! (missing or malformed), then compares every signature of the request with the
//! signature of every secret in constant time, and checks the timestamp window last:
//! a forged request is reported as [`VerifyError::NoMatchingSignature`] whatever its
//! timestamp, and the window is only reported for requests the secret signed.
//! Errors never carry a secret, a signature or any other header text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod github;
pub(crate) mod identity;
pub mod legacy_hex;
mod request_headers;
mod secret;
pub mod shopify;
pub mod slack;
pub mod standard;
pub mod stripe;
mod tag;
#[cfg(test)]
mod tests;

pub use request_headers::HeaderLookup;
pub use secret::{STANDARD_SECRET_PREFIX, SecretError, SigningSecret, generate_standard_secret};

use identity::ReadIdentity;
use secret::SecretForm;
use tag::Tag;

/// How far a signed timestamp may be from the verifier's clock, in both directions.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// At most this many signatures are read from one header (a longer list is malformed).
pub const MAX_SIGNATURES: usize = 10;
/// The longest signature header read; longer ones are malformed before being parsed.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 2048;
/// The longest message id accepted or produced.
pub use crate::ids::MAX_MESSAGE_ID_LEN;

/// A signature scheme. Its name (`standard`, `github`, `stripe`, `shopify`, `slack`,
/// `legacy-hex`) is the same in serde, [`FromStr`] and [`Display`](fmt::Display): the
/// Webhook resource, the `hookline-scheme` Kafka header and flags all use it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Standard Webhooks v1, Hookline's own (the emitter signs with it).
    #[default]
    Standard,
    /// GitHub's `X-Hub-Signature-256`.
    Github,
    /// Stripe's `Stripe-Signature`.
    Stripe,
    /// Shopify's `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Slack's `X-Slack-Signature`.
    Slack,
    /// The Go prototype's `x-webhook-signature`: hex HMAC-SHA256 of the body.
    LegacyHex,
}

impl Scheme {
    pub const ALL: [Scheme; 6] = [
        Scheme::Standard,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::Shopify,
        Scheme::Slack,
        Scheme::LegacyHex,
    ];

    /// The code of the scheme: the one place a scheme is matched. A `&'static dyn`
    /// keeps the dispatch free of allocation on the handler's path.
    pub(crate) fn provider(self) -> &'static dyn Provider {
        match self {
            Scheme::Standard => &standard::Standard,
            Scheme::Github => &github::Github,
            Scheme::Stripe => &stripe::Stripe,
            Scheme::Shopify => &shopify::Shopify,
            Scheme::Slack => &slack::Slack,
            Scheme::LegacyHex => &legacy_hex::LegacyHex,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.provider().profile().name
    }

    /// Whether the scheme signs a timestamp (and so is checked against a tolerance).
    pub fn has_timestamp(self) -> bool {
        self.provider().profile().has_timestamp
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == name)
            .ok_or_else(|| UnknownScheme(name.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown signature scheme {0:?}: expected standard, github, stripe, shopify, slack or legacy-hex"
)]
pub struct UnknownScheme(pub String);

/// What a successful verification vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The message id, for replay protection: `webhook-id` (Standard Webhooks),
    /// `x-github-delivery` (GitHub) or `x-shopify-webhook-id` (Shopify) when present;
    /// `None` for Stripe, Slack and legacy-hex, which carry none.
    pub id: Option<String>,
    /// Whether the signature covers `id`. Only Standard Webhooks signs it; anyone who
    /// replays a GitHub or Shopify request can change its id.
    pub id_signed: bool,
    /// The signed timestamp, for the schemes that have one.
    pub timestamp: Option<DateTime<Utc>>,
    /// Which of the given secrets matched (the first that did): during a rotation,
    /// `0` means the sender already signs with the current secret.
    pub secret_index: usize,
}

/// Why a request's signature was refused. No variant carries header text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("no signing secret to verify with")]
    NoSecrets,
    #[error("missing header {name}")]
    MissingHeader { name: &'static str },
    #[error("malformed header {name}: {why}")]
    MalformedHeader {
        name: &'static str,
        why: &'static str,
    },
    #[error("no signature matches")]
    NoMatchingSignature,
    /// The signature is good but its timestamp is too old (`age_secs` > 0) or from
    /// the future (`age_secs` < 0).
    #[error(
        "timestamp {timestamp} is {age_secs} s old at {now} (negative: in the future), beyond the tolerance of {tolerance_secs} s"
    )]
    TimestampOutOfTolerance {
        timestamp: i64,
        now: i64,
        age_secs: i64,
        tolerance_secs: u64,
    },
}

impl VerifyError {
    /// Every value `reason` can return, e.g. for removing a label set's series.
    pub const REASONS: [&'static str; 5] = [
        "no_secrets",
        "missing_header",
        "malformed_header",
        "no_matching_signature",
        "timestamp_out_of_tolerance",
    ];

    /// A short stable label for metrics and logs (one of [`Self::REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::NoSecrets => "no_secrets",
            VerifyError::MissingHeader { .. } => "missing_header",
            VerifyError::MalformedHeader { .. } => "malformed_header",
            VerifyError::NoMatchingSignature => "no_matching_signature",
            VerifyError::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    #[error("no signing secret to sign with")]
    NoSecrets,
    #[error("invalid message id: {why}")]
    InvalidMessageId { why: &'static str },
    #[error("timestamp {0} is before 1970")]
    TimestampBeforeEpoch(i64),
}

/// Verifies a request signed with `scheme` by one of `secrets` (the current one
/// first, then those still accepted during a rotation).
///
/// `headers` are the request's headers, `body` its raw bytes. For the schemes with a
/// timestamp, it must be within `tolerance` (whole seconds, inclusive, both ways) of
/// `now`; [`DEFAULT_TOLERANCE`] is the usual one. Other schemes ignore `now`.
pub fn verify<H: HeaderLookup + ?Sized>(
    scheme: Scheme,
    headers: &H,
    body: &[u8],
    secrets: &[SigningSecret],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Verified, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let claim = scheme.provider().read(&headers)?;
    let secret_index =
        tag::matching_secret(secrets, claim.prefix.as_bytes(), body, &claim.signatures)
            .ok_or(VerifyError::NoMatchingSignature)?;
    if let Some(timestamp) = claim.timestamp {
        check_window(timestamp, now, tolerance)?;
    }
    Ok(Verified {
        id: claim.id.map(str::to_owned),
        id_signed: claim.id_signed,
        timestamp: claim.timestamp,
        secret_index,
    })
}

/// The headers a sender puts on a request: signatures by every secret for Standard
/// Webhooks (one `v1,` entry each) and Stripe (one `v1=` each), by the first
/// (current) secret for the others; plus the id and timestamp headers the scheme
/// carries. `msg_id` must be 1 to [`MAX_MESSAGE_ID_LEN`] visible ASCII characters
/// (it is checked for every scheme, even those that do not send it).
pub fn sign(
    scheme: Scheme,
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: DateTime<Utc>,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SignError> {
    let (current, _) = secrets.split_first().ok_or(SignError::NoSecrets)?;
    crate::ids::MessageId::check(msg_id)
        .map_err(|err| SignError::InvalidMessageId { why: err.reason() })?;
    let seconds = timestamp.timestamp();
    if seconds < 0 {
        return Err(SignError::TimestampBeforeEpoch(seconds));
    }
    let message = Outgoing {
        current,
        secrets,
        id: msg_id,
        timestamp: seconds,
        body,
    };
    Ok(scheme.provider().sign(&message))
}

/// Everything one provider's requests need: implemented once per [`Scheme`], in the
/// scheme's module. Headers are read through `&dyn` so the trait stays object-safe.
pub(crate) trait Provider: Sync {
    /// What the provider's requests are made of.
    fn profile(&self) -> &'static Profile;
    /// Reads the signatures and what they cover from the headers, checking their form.
    fn read<'h>(&self, headers: &'h dyn HeaderLookup) -> Result<Claim<'h>, VerifyError>;
    /// The headers a sender puts on `message`.
    fn sign(&self, message: &Outgoing<'_>) -> Vec<(&'static str, String)>;
    /// What the request says about its event, before [`ReadIdentity::checked`].
    fn identify(&self, headers: &dyn HeaderLookup, body: &[u8]) -> ReadIdentity;
}

/// The facts of a [`Provider`], as data.
pub(crate) struct Profile {
    /// The scheme's name in serde, [`FromStr`] and [`Display`](fmt::Display).
    pub(crate) name: &'static str,
    /// Whether it signs a timestamp (and so is checked against a tolerance).
    pub(crate) has_timestamp: bool,
    /// How its secrets are written.
    pub(crate) secret_form: SecretForm,
    /// The headers its signature travels in, the usual one first; never empty.
    pub(crate) signature_headers: &'static [&'static str],
    /// The request headers kept with its events (see [`crate::provider::kept_headers`]).
    pub(crate) kept_headers: &'static [&'static str],
}

/// What a scheme read from the headers, before any cryptography.
pub(crate) struct Claim<'h> {
    /// What the sender signed before the body, e.g. `{id}.{timestamp}.`.
    prefix: String,
    /// The candidate signatures, at most [`MAX_SIGNATURES`].
    signatures: Vec<Tag>,
    timestamp: Option<DateTime<Utc>>,
    id: Option<&'h str>,
    id_signed: bool,
}

impl<'h> Claim<'h> {
    /// One signature of the body alone, with an id the signature does not cover.
    fn of_body(signature: Tag, id: Option<&'h str>) -> Self {
        Self {
            prefix: String::new(),
            signatures: vec![signature],
            timestamp: None,
            id,
            id_signed: false,
        }
    }
}

/// A message to sign, already checked.
pub(crate) struct Outgoing<'a> {
    current: &'a SigningSecret,
    /// Every live secret, `current` first; never empty.
    secrets: &'a [SigningSecret],
    id: &'a str,
    /// Seconds since 1970, not negative.
    timestamp: i64,
    body: &'a [u8],
}

fn check_window(
    timestamp: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let (timestamp, now) = (timestamp.timestamp(), now.timestamp());
    let age = i128::from(now) - i128::from(timestamp);
    if age.unsigned_abs() <= u128::from(tolerance.as_secs()) {
        return Ok(());
    }
    Err(VerifyError::TimestampOutOfTolerance {
        timestamp,
        now,
        age_secs: i64::try_from(age).unwrap_or(if age < 0 { i64::MIN } else { i64::MAX }),
        tolerance_secs: tolerance.as_secs(),
    })
}
