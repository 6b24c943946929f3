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
//!
//! Each provider's part is written with its scheme, in [`crate::signature`]; this module
//! is what the handler, the console and the tests call.

use crate::signature::identity::BodyFields;
pub use crate::signature::identity::{EventIdentity, MAX_FIELD_LEN};
use crate::signature::{HeaderLookup, Scheme};
use crate::signature::{github, legacy_hex, shopify, slack, standard, stripe};

/// Reads the identity of a (verified) request signed with `scheme`.
pub fn identify<H: HeaderLookup + ?Sized>(
    scheme: Scheme,
    headers: &H,
    body: &[u8],
) -> EventIdentity {
    scheme.provider().identify(&headers, body).checked()
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
    scheme.provider().profile().kept_headers
}

/// The headers a signature of `scheme` travels in, never empty: first the name the
/// provider usually gives it, then the other names it may have (Svix's, Shopify
/// Events').
pub fn signature_headers(scheme: Scheme) -> &'static [&'static str] {
    scheme.provider().profile().signature_headers
}

/// Every header a signature travels in, under any scheme: never kept with an event,
/// and never shown to people (the console redacts them from rows stored before
/// signatures stopped being kept). Each scheme's [`signature_headers`], in the order of
/// [`Scheme::ALL`] (a test holds the two together).
pub const SIGNATURE_HEADERS: &[&str] = &concat::<8>(&[
    standard::PROFILE.signature_headers,
    github::PROFILE.signature_headers,
    stripe::PROFILE.signature_headers,
    shopify::PROFILE.signature_headers,
    slack::PROFILE.signature_headers,
    legacy_hex::PROFILE.signature_headers,
]);

/// Whether `name` (any case) carries a signature.
pub fn is_signature_header(name: &str) -> bool {
    SIGNATURE_HEADERS
        .iter()
        .any(|signature| signature.eq_ignore_ascii_case(name))
}

/// `lists` end to end, at compile time: a constant cannot call the schemes' trait, so
/// [`SIGNATURE_HEADERS`] is built from their constants. `N` must be the total length
/// (a wrong one fails the build).
const fn concat<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut all = [""; N];
    let (mut list, mut filled) = (0, 0);
    while list < lists.len() {
        let mut item = 0;
        while item < lists[list].len() {
            all[filled] = lists[list][item];
            filled += 1;
            item += 1;
        }
        list += 1;
    }
    assert!(filled == N, "N is not the total length");
    all
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
        assert_eq!(no_hook.message_id.as_deref(), no_hook.event_id.as_deref());
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

    #[test]
    fn every_scheme_names_its_signature_headers_once() {
        let each: Vec<&str> = Scheme::ALL
            .into_iter()
            .flat_map(|scheme| {
                assert!(!signature_headers(scheme).is_empty(), "{scheme:?}");
                signature_headers(scheme).iter().copied()
            })
            .collect();
        assert_eq!(each, SIGNATURE_HEADERS);
    }
}
