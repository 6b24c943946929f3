//! What a request says about its event: the [`EventIdentity`] each provider reads (see
//! [`crate::provider`]), and the readers the providers share: header text, times, and
//! the top-level fields of a JSON body.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::HeaderLookup;
use crate::ids::MessageId;

/// The longest event id or type kept (longer ones are dropped, not cut).
pub const MAX_FIELD_LEN: usize = 256;

/// What the provider says about the event of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventIdentity {
    /// The idempotency key: the same on every retry of the event by its provider.
    pub message_id: Option<MessageId>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// What a provider's request says about its event, as read, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReadIdentity {
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

impl ReadIdentity {
    /// Drops what cannot serve: a message id that is not 1 to 256 visible ASCII
    /// characters (the handler then derives one), fields that are too long or hold
    /// control characters.
    pub(crate) fn checked(self) -> EventIdentity {
        let field = |value: Option<String>| {
            value.filter(|v| {
                !v.is_empty() && v.len() <= MAX_FIELD_LEN && !v.chars().any(char::is_control)
            })
        };
        EventIdentity {
            message_id: self.message_id.and_then(|id| MessageId::parse(id).ok()),
            event_id: field(self.event_id),
            event_type: field(self.event_type),
            occurred_at: self.occurred_at,
        }
    }
}

/// The header `name` as text, trimmed; `None` when missing, empty or not UTF-8.
pub(super) fn header_text(headers: &dyn HeaderLookup, name: &str) -> Option<String> {
    headers
        .header(name)
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

pub(super) fn rfc3339(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn unix(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// The top-level body fields providers put their identity in, read in one pass
/// without building a tree; values of another JSON type than expected are ignored,
/// and a body that is not a JSON object gives none.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct BodyFields {
    pub(super) id: Option<String>,
    pub(crate) kind: Option<String>,
    pub(super) event_id: Option<String>,
    pub(super) event_type: Option<String>,
    pub(super) timestamp: Option<String>,
    pub(super) created: Option<i64>,
    pub(super) event_time: Option<i64>,
    /// Slack's `event.type`.
    pub(super) inner_kind: Option<String>,
    /// Slack's `url_verification` challenge.
    pub(crate) challenge: Option<String>,
}

impl BodyFields {
    pub(crate) fn read(body: &[u8]) -> Self {
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
