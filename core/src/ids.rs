//! The two ids every process hands on: a Webhook's id (the key of its registry entry and
//! of its events, the last segment of its URL) and a message's id (what the provider
//! repeats on every retry of one event, and what storage deduplicates on). Typed, so a
//! message id cannot be passed where a webhook id is meant, and a [`MessageId`] is
//! checked once, where it enters.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest message id accepted, in bytes.
pub const MAX_MESSAGE_ID_LEN: usize = 256;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        $(#[$doc])*
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// A Webhook's id, as the operator assigned it. Anything the registry lists is one;
    /// a path segment from the internet becomes one only once the registry knows it.
    #[serde(transparent)]
    WebhookId
);

string_id!(
    /// A message's id: 1 to [`MAX_MESSAGE_ID_LEN`] visible ASCII characters, checked
    /// wherever one is made, deserialized ones included.
    #[serde(into = "String", try_from = "String")]
    MessageId
);

impl From<&str> for WebhookId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for WebhookId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

/// Why a message id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{}", self.reason())]
pub enum MessageIdError {
    Empty,
    TooLong,
    NotVisibleAscii,
}

impl MessageIdError {
    /// What is wrong, in the words of an error message about a header.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "longer than 256 bytes",
            Self::NotVisibleAscii => "not visible ASCII",
        }
    }
}

impl MessageId {
    /// `id` if it is 1 to [`MAX_MESSAGE_ID_LEN`] visible ASCII characters.
    pub fn parse(id: impl Into<String>) -> Result<Self, MessageIdError> {
        let id = id.into();
        Self::check(&id)?;
        Ok(Self(id))
    }

    /// Whether `id` would make a message id.
    pub fn check(id: &str) -> Result<(), MessageIdError> {
        if id.is_empty() {
            return Err(MessageIdError::Empty);
        }
        if id.len() > MAX_MESSAGE_ID_LEN {
            return Err(MessageIdError::TooLong);
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MessageIdError::NotVisibleAscii);
        }
        Ok(())
    }
}

impl TryFrom<String> for MessageId {
    type Error = MessageIdError;

    fn try_from(id: String) -> Result<Self, MessageIdError> {
        Self::parse(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_checked_where_they_enter() {
        assert_eq!(
            MessageId::parse("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").unwrap(),
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        );
        assert_eq!(MessageId::parse(""), Err(MessageIdError::Empty));
        assert_eq!(
            MessageId::parse("m".repeat(257)),
            Err(MessageIdError::TooLong)
        );
        assert_eq!(
            MessageId::parse("two words"),
            Err(MessageIdError::NotVisibleAscii)
        );
        assert_eq!(MessageId::parse("é"), Err(MessageIdError::NotVisibleAscii));
    }

    #[test]
    fn a_deserialized_message_id_is_checked_too() {
        assert!(serde_json::from_str::<MessageId>("\"m-1\"").is_ok());
        assert!(serde_json::from_str::<MessageId>("\"two words\"").is_err());
    }

    #[test]
    fn ids_read_and_print_as_their_text() {
        let id = WebhookId::from("wh-1");
        assert_eq!(id, "wh-1");
        assert_eq!(id.len(), 4);
        assert_eq!(format!("{id} {id:?}"), "wh-1 \"wh-1\"");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"wh-1\"");
    }
}
