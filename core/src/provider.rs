//! What a provider's request says about its event, per signature scheme: the id that
//! stays the same across the provider's own retries and redeliveries (Hookline's
//! idempotency key), the provider's event id and type, and when the event happened.
//!
//! | scheme | message id (idempotency key) | event id | event type | occurred at |
//! | --- | --- | --- | --- | --- |
//! | `standard` | `webhook-id` (or `svix-id`) | the same | body `type` | body `timestamp` |
//! | `github` | `x-github-hook-id`:`x-github-delivery` | `x-github-delivery` | `x-github-event` | - |
//! | `stripe` | body `id` | body `id` | body `type` | body `created` |
//! | `shopify` | `x-shopify-event-id`:`x-shopify-topic`, else `x-shopify-webhook-id`; Events: `shopify-webhook-id` | `x-shopify-event-id`, else the webhook id | `x-shopify-topic` | `x-shopify-triggered-at` |
//! | `slack` | body `event_id` | body `event_id` | body `event.type`, else `type` | body `event_time` |
//! | `legacy-hex` | body `event_id` | body `event_id` | body `event_type` | body `timestamp` |
//!
//! Where the table has no message id for a request (a Slack slash command, a body
//! that is not JSON), the handler derives one from the signature and the body.
//! Nothing here fails: a field that is missing, too long or not text is `None`.
//! Call it on verified requests only; the ids are not checked against anything.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::signature::{HeaderLookup, Scheme, github, shopify, slack, standard, stripe};
use crate::signature::{check_message_id, legacy_hex};

/// The longest event id or type kept (longer ones are dropped, not cut).
pub const MAX_FIELD_LEN: usize = 256;

/// What the provider says about the event of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventIdentity {
    /// The idempotency key: the same on every retry of the event by its provider.
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Reads the identity of a (verified) request signed with `scheme`.
pub fn identify<H: HeaderLookup + ?Sized>(
    scheme: Scheme,
    headers: &H,
    body: &[u8],
) -> EventIdentity {
    let header = |name: &str| text(headers.header(name));
    match scheme {
        Scheme::Standard => {
            let fields = BodyFields::read(body);
            let id = header(standard::names_of(headers).id);
            EventIdentity {
                message_id: id.clone(),
                event_id: id,
                event_type: fields.kind,
                occurred_at: fields.timestamp.as_deref().and_then(rfc3339),
            }
        }
        Scheme::Github => {
            let delivery = header(github::DELIVERY);
            let message_id = match (header(github::HOOK_ID), &delivery) {
                (Some(hook), Some(delivery)) => Some(format!("{hook}:{delivery}")),
                (None, delivery) => delivery.clone(),
                (Some(_), None) => None,
            };
            EventIdentity {
                message_id,
                event_id: delivery,
                event_type: header(github::EVENT),
                occurred_at: None,
            }
        }
        Scheme::Stripe => {
            let fields = BodyFields::read(body);
            EventIdentity {
                message_id: fields.id.clone(),
                event_id: fields.id,
                event_type: fields.kind,
                occurred_at: fields.created.and_then(unix),
            }
        }
        Scheme::Shopify => {
            let events = shopify::uses_events_names(headers);
            let [webhook_id, event_id, topic, triggered_at] = if events {
                [
                    shopify::EVENTS_WEBHOOK_ID,
                    shopify::EVENTS_EVENT_ID,
                    shopify::EVENTS_TOPIC,
                    shopify::EVENTS_TRIGGERED_AT,
                ]
            } else {
                [
                    shopify::WEBHOOK_ID,
                    shopify::EVENT_ID,
                    shopify::TOPIC,
                    shopify::TRIGGERED_AT,
                ]
            }
            .map(header);
            // Shopify's webhooks documentation keys duplicates on the event id (one per
            // subscription and topic); its Events documentation on the webhook id.
            let message_id = match (&event_id, &topic) {
                (Some(event), Some(topic)) if !events => Some(format!("{event}:{topic}")),
                _ => webhook_id.clone(),
            };
            EventIdentity {
                message_id,
                event_id: event_id.or(webhook_id),
                event_type: topic,
                occurred_at: triggered_at.as_deref().and_then(rfc3339),
            }
        }
        Scheme::Slack => {
            let fields = BodyFields::read(body);
            EventIdentity {
                message_id: fields.event_id.clone(),
                event_id: fields.event_id,
                event_type: fields.inner_kind.or(fields.kind),
                occurred_at: fields.event_time.and_then(unix),
            }
        }
        Scheme::LegacyHex => {
            let fields = BodyFields::read(body);
            EventIdentity {
                message_id: fields.event_id.clone(),
                event_id: fields.event_id,
                event_type: fields.event_type,
                occurred_at: fields.timestamp.as_deref().and_then(rfc3339),
            }
        }
    }
    .checked()
}

/// The `challenge` of a Slack `url_verification` request: Slack sends one, signed,
/// when an Events API URL is set, and accepts the URL only if the answer echoes it.
/// It is a handshake, not an event.
pub fn slack_challenge(body: &[u8]) -> Option<String> {
    let fields = BodyFields::read(body);
    (fields.kind.as_deref() == Some("url_verification"))
        .then_some(fields.challenge)
        .flatten()
}

/// The request headers kept with an event of `scheme`: those its identity is read
/// from, so a stored event can be explained. No signature header is kept: for schemes
/// without a signed timestamp (GitHub, Shopify, legacy hex) a signature with its body
/// is a request that verifies for ever, so whoever reads the events topic or the
/// `events` table could send it again. A stored event's origin rests on the handler's
/// check when it was received.
pub fn kept_headers(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::Standard => &[
            standard::ID,
            standard::TIMESTAMP,
            standard::SVIX_ID,
            standard::SVIX_TIMESTAMP,
        ],
        Scheme::Github => &[github::DELIVERY, github::EVENT, github::HOOK_ID],
        Scheme::Stripe => &[],
        Scheme::Shopify => &[
            shopify::WEBHOOK_ID,
            shopify::EVENT_ID,
            shopify::TOPIC,
            shopify::TRIGGERED_AT,
            shopify::EVENTS_WEBHOOK_ID,
            shopify::EVENTS_EVENT_ID,
            shopify::EVENTS_TOPIC,
            shopify::EVENTS_TRIGGERED_AT,
        ],
        Scheme::Slack => &[slack::TIMESTAMP, slack::RETRY_NUM, slack::RETRY_REASON],
        Scheme::LegacyHex => &[],
    }
}

/// Every header a signature travels in, under any scheme: never kept with an event,
/// and never shown to people (the console redacts them from rows stored before
/// signatures stopped being kept).
pub const SIGNATURE_HEADERS: &[&str] = &[
    standard::SIGNATURE,
    standard::SVIX_SIGNATURE,
    github::SIGNATURE,
    stripe::SIGNATURE,
    shopify::SIGNATURE,
    shopify::EVENTS_SIGNATURE,
    slack::SIGNATURE,
    legacy_hex::SIGNATURE,
];

/// Whether `name` (any case) carries a signature.
pub fn is_signature_header(name: &str) -> bool {
    SIGNATURE_HEADERS
        .iter()
        .any(|signature| signature.eq_ignore_ascii_case(name))
}

impl EventIdentity {
    /// Drops what cannot serve: a message id that is not 1 to 256 visible ASCII
    /// characters (the handler then derives one), fields that are too long or hold
    /// control characters.
    fn checked(self) -> Self {
        let field = |value: Option<String>| {
            value.filter(|v| {
                !v.is_empty() && v.len() <= MAX_FIELD_LEN && !v.chars().any(char::is_control)
            })
        };
        Self {
            message_id: self.message_id.filter(|id| check_message_id(id).is_ok()),
            event_id: field(self.event_id),
            event_type: field(self.event_type),
            occurred_at: self.occurred_at,
        }
    }
}

fn text(raw: Option<&[u8]>) -> Option<String> {
    raw.and_then(|raw| std::str::from_utf8(raw).ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn rfc3339(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn unix(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// The top-level body fields providers put their identity in, read in one pass
/// without building a tree; values of another JSON type than expected are ignored,
/// and a body that is not a JSON object gives none.
#[derive(Debug, Default, PartialEq)]
struct BodyFields {
    id: Option<String>,
    kind: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    timestamp: Option<String>,
    created: Option<i64>,
    event_time: Option<i64>,
    /// Slack's `event.type`.
    inner_kind: Option<String>,
    /// Slack's `url_verification` challenge.
    challenge: Option<String>,
}

impl BodyFields {
    fn read(body: &[u8]) -> Self {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        match de::Deserializer::deserialize_any(&mut deserializer, FieldsVisitor { nested: false })
        {
            Ok(fields) if deserializer.end().is_ok() => fields,
            _ => Self::default(),
        }
    }
}

/// Visits the top-level document (`nested: false`) or Slack's `event` object.
struct FieldsVisitor {
    nested: bool,
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = BodyFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = BodyFields::default();
        while let Some(Scalar(key)) = map.next_key::<Scalar<'de>>()? {
            let key = match key {
                Some(ScalarValue::Text(key)) => key,
                _ => Cow::Borrowed(""),
            };
            if self.nested {
                match key.as_ref() {
                    "type" => fields.kind = map.next_value::<Scalar<'de>>()?.text(),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                continue;
            }
            match key.as_ref() {
                "id" => fields.id = map.next_value::<Scalar<'de>>()?.text(),
                "type" => fields.kind = map.next_value::<Scalar<'de>>()?.text(),
                "event_id" => fields.event_id = map.next_value::<Scalar<'de>>()?.text(),
                "event_type" => fields.event_type = map.next_value::<Scalar<'de>>()?.text(),
                "timestamp" => fields.timestamp = map.next_value::<Scalar<'de>>()?.text(),
                "created" => fields.created = map.next_value::<Scalar<'de>>()?.integer(),
                "event_time" => fields.event_time = map.next_value::<Scalar<'de>>()?.integer(),
                "event" => fields.inner_kind = map.next_value_seed(NestedSeed)?.kind,
                "challenge" => fields.challenge = map.next_value::<Scalar<'de>>()?.text(),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(BodyFields::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BodyFields::default())
    }
}

struct NestedSeed;

impl<'de> de::DeserializeSeed<'de> for NestedSeed {
    type Value = BodyFields;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(FieldsVisitor { nested: true })
    }
}

/// A string or integer value (strings borrowed from the body when they have no
/// escapes), or nothing for any other JSON value, which is read and ignored.
struct Scalar<'a>(Option<ScalarValue<'a>>);

enum ScalarValue<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
}

impl Scalar<'_> {
    fn text(self) -> Option<String> {
        match self.0 {
            Some(ScalarValue::Text(text)) => Some(text.into_owned()),
            _ => None,
        }
    }

    fn integer(self) -> Option<i64> {
        match self.0 {
            Some(ScalarValue::Integer(n)) => Some(n),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar(Some(ScalarValue::Text(Cow::Borrowed(value)))))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Scalar(Some(ScalarValue::Text(Cow::Owned(
            value.to_owned(),
        )))))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Scalar(Some(ScalarValue::Text(Cow::Owned(value)))))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Scalar(Some(ScalarValue::Integer(value))))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Scalar(i64::try_from(value).ok().map(ScalarValue::Integer)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: Scheme, headers: &[(&str, &str)], body: &str) -> EventIdentity {
        identify(scheme, headers, body.as_bytes())
    }

    #[test]
    fn standard_webhooks_and_svix_key_on_the_message_id_and_read_the_type() {
        let body =
            r#"{"type":"invoice.paid","timestamp":"2026-11-30T10:00:00Z","data":{"id":"x"}}"#;
        for (name, names) in [
            ("webhook-id", ["webhook-timestamp", "webhook-signature"]),
            ("svix-id", ["svix-timestamp", "svix-signature"]),
        ] {
            let headers = [(name, "msg_2K"), (names[0], "1"), (names[1], "v1,x")];
            let identity = id(Scheme::Standard, &headers, body);
            assert_eq!(identity.message_id.as_deref(), Some("msg_2K"), "{name}");
            assert_eq!(identity.event_id.as_deref(), Some("msg_2K"));
            assert_eq!(identity.event_type.as_deref(), Some("invoice.paid"));
            assert_eq!(
                identity.occurred_at.map(|t| t.timestamp()),
                Some(1_796_032_800)
            );
        }
    }

    #[test]
    fn stripe_keys_on_the_event_id_in_the_body() {
        let body = r#"{"id":"evt_1Q","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1","type":"not this"}}}"#;
        let identity = id(Scheme::Stripe, &[("stripe-signature", "t=1,v1=00")], body);
        assert_eq!(identity.message_id.as_deref(), Some("evt_1Q"));
        assert_eq!(identity.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(
            identity.occurred_at.map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn slack_keys_on_event_id_and_reads_the_inner_type() {
        let body = r#"{"type":"event_callback","event_id":"Ev08","event_time":1700000001,"event":{"type":"app_mention","text":"hi"}}"#;
        let identity = id(Scheme::Slack, &[("x-slack-retry-num", "1")], body);
        assert_eq!(identity.message_id.as_deref(), Some("Ev08"));
        assert_eq!(identity.event_type.as_deref(), Some("app_mention"));
        assert_eq!(
            identity.occurred_at.map(|t| t.timestamp()),
            Some(1_700_000_001)
        );
        let verification = id(
            Scheme::Slack,
            &[],
            r#"{"type":"url_verification","challenge":"c"}"#,
        );
        assert_eq!(verification.message_id, None);
        assert_eq!(verification.event_type.as_deref(), Some("url_verification"));
        assert_eq!(
            slack_challenge(br#"{"token":"t","challenge":"3eZbrw1a","type":"url_verification"}"#)
                .as_deref(),
            Some("3eZbrw1a")
        );
        assert_eq!(
            slack_challenge(br#"{"type":"event_callback","challenge":"x"}"#),
            None
        );
        let command = id(Scheme::Slack, &[], "token=x&command=%2Fweather&text=94070");
        assert_eq!(command, EventIdentity::default(), "form bodies carry no id");
    }

    #[test]
    fn github_keys_on_hook_and_delivery() {
        let headers = [
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-event", "push"),
            ("x-github-hook-id", "292430182"),
        ];
        let identity = id(Scheme::Github, &headers, "{}");
        assert_eq!(
            identity.message_id.as_deref(),
            Some("292430182:72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(
            identity.event_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(identity.event_type.as_deref(), Some("push"));
        let no_hook = id(Scheme::Github, &headers[..2], "{}");
        assert_eq!(no_hook.message_id, no_hook.event_id);
    }

    #[test]
    fn shopify_keys_on_event_and_topic_else_the_webhook_id() {
        let headers = [
            ("x-shopify-hmac-sha256", "x"),
            ("x-shopify-webhook-id", "b54557e4"),
            ("x-shopify-event-id", "98880550"),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-triggered-at", "2026-11-30T10:00:00.123Z"),
        ];
        let identity = id(Scheme::Shopify, &headers, "{}");
        assert_eq!(
            identity.message_id.as_deref(),
            Some("98880550:orders/create")
        );
        assert_eq!(identity.event_id.as_deref(), Some("98880550"));
        assert_eq!(identity.event_type.as_deref(), Some("orders/create"));
        assert!(identity.occurred_at.is_some());
        let older = id(Scheme::Shopify, &headers[..2], "{}");
        assert_eq!(older.message_id.as_deref(), Some("b54557e4"));
        let events = [
            ("shopify-hmac-sha256", "x"),
            ("shopify-webhook-id", "d-1"),
            ("shopify-event-id", "e-1"),
            ("shopify-topic", "Product"),
        ];
        let identity = id(Scheme::Shopify, &events, "{}");
        assert_eq!(identity.message_id.as_deref(), Some("d-1"));
        assert_eq!(identity.event_type.as_deref(), Some("Product"));
    }

    #[test]
    fn unusable_values_are_dropped_not_failed() {
        let long = "e".repeat(300);
        for body in [
            format!(r#"{{"id":"{long}","type":"t"}}"#),
            r#"{"id":"has space","type":"t"}"#.to_owned(),
            r#"{"id":7,"type":"t"}"#.to_owned(),
        ] {
            let identity = id(Scheme::Stripe, &[], &body);
            assert_eq!(identity.message_id, None, "{body}");
            assert_eq!(identity.event_type.as_deref(), Some("t"));
        }
        for body in ["", "not json", "[1]", "{\"id\":\"a\"} trailing", "<xml/>"] {
            assert_eq!(
                id(Scheme::Stripe, &[], body),
                EventIdentity::default(),
                "{body}"
            );
        }
        let escaped = id(Scheme::Stripe, &[], r#"{"id":"evt_\u0041","type":"a\nb"}"#);
        assert_eq!(escaped.message_id.as_deref(), Some("evt_A"));
        assert_eq!(escaped.event_type, None, "control characters are dropped");
    }

    #[test]
    fn no_scheme_keeps_a_signature_header() {
        for scheme in Scheme::ALL {
            let kept_signatures: Vec<&str> = kept_headers(scheme)
                .iter()
                .copied()
                .filter(|name| is_signature_header(name))
                .collect();
            assert_eq!(kept_signatures, Vec::<&str>::new(), "{scheme:?}");
        }
        assert!(is_signature_header("Stripe-Signature"));
        assert!(!is_signature_header("webhook-id"));
    }
}
