//! Tests of every scheme through the public functions: published test vectors, round
//! trips, rotation, the timestamp window, refusals, and property tests of the parsers.

use base64::Engine;
use proptest::prelude::*;

use super::tag::{self, BASE64, Tag};
use super::*;

type Headers = Vec<(&'static str, String)>;

const T0: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"event_id":"3f1c","event_type":"PAID","data":{"invoice_id":"9a2e"}}"#;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn secret(scheme: Scheme, text: &str) -> SigningSecret {
    SigningSecret::parse(scheme, text).unwrap()
}

/// A current and a previous secret as text, in the form `scheme` takes.
fn secret_texts(scheme: Scheme) -> [String; 2] {
    match scheme {
        Scheme::Standard => [generate_standard_secret(), generate_standard_secret()],
        Scheme::Stripe => ["whsec_current".into(), "whsec_previous".into()],
        _ => ["current-secret".into(), "previous-secret".into()],
    }
}

fn two_secrets(scheme: Scheme) -> [SigningSecret; 2] {
    secret_texts(scheme).map(|text| secret(scheme, &text))
}

/// A secret that signed nothing in these tests.
fn unrelated_secret(scheme: Scheme) -> SigningSecret {
    match scheme {
        Scheme::Standard => secret(scheme, &generate_standard_secret()),
        _ => secret(scheme, "unrelated-secret"),
    }
}

fn check<H: HeaderLookup + ?Sized>(
    scheme: Scheme,
    headers: &H,
    body: &[u8],
    secrets: &[SigningSecret],
    now: i64,
) -> Result<Verified, VerifyError> {
    verify(scheme, headers, body, secrets, at(now), DEFAULT_TOLERANCE)
}

fn signed(scheme: Scheme, secrets: &[SigningSecret]) -> Headers {
    sign(scheme, secrets, "msg_1", at(T0), BODY).unwrap()
}

fn without(headers: &Headers, name: &str) -> Headers {
    headers
        .iter()
        .filter(|(n, _)| *n != name)
        .cloned()
        .collect()
}

fn replaced(headers: &Headers, name: &'static str, value: &str) -> Headers {
    let mut headers = without(headers, name);
    headers.push((name, value.to_owned()));
    headers
}

/// The headers the scheme cannot do without.
fn required_headers(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::Standard => &[standard::ID, standard::TIMESTAMP, standard::SIGNATURE],
        Scheme::Github => &[github::SIGNATURE],
        Scheme::Stripe => &[stripe::SIGNATURE],
        Scheme::Shopify => &[shopify::SIGNATURE],
        Scheme::Slack => &[slack::TIMESTAMP, slack::SIGNATURE],
        Scheme::LegacyHex => &[legacy_hex::SIGNATURE],
    }
}

/// Every header the scheme reads.
fn read_headers(scheme: Scheme) -> Vec<&'static str> {
    let mut names = required_headers(scheme).to_vec();
    match scheme {
        Scheme::Github => names.push(github::DELIVERY),
        Scheme::Shopify => names.push(shopify::WEBHOOK_ID),
        _ => {}
    }
    names
}

/// The header `sign` puts the signature in.
fn signature_header(scheme: Scheme) -> &'static str {
    scheme.provider().profile().signature_headers[0]
}

fn read(scheme: Scheme, headers: &dyn HeaderLookup) -> Result<Claim<'_>, VerifyError> {
    scheme.provider().read(headers)
}

/// `headers` with its signature replaced by `tag`, written the scheme's way.
fn with_signature(scheme: Scheme, headers: &Headers, tag: &Tag) -> Headers {
    let value = match scheme {
        Scheme::Standard => format!("v1,{}", BASE64.encode(tag)),
        Scheme::Github => format!("sha256={}", hex::encode(tag)),
        Scheme::Stripe => format!("t={T0},v1={}", hex::encode(tag)),
        Scheme::Shopify => BASE64.encode(tag),
        Scheme::Slack => format!("v0={}", hex::encode(tag)),
        Scheme::LegacyHex => hex::encode(tag),
    };
    replaced(headers, signature_header(scheme), &value)
}

fn malformed(name: &'static str, why: &'static str) -> VerifyError {
    VerifyError::MalformedHeader { name, why }
}

/// Neither the error's text nor its debug form contains any of `secrets`.
fn assert_no_leak(error: &dyn std::error::Error, secrets: &[&str]) {
    let texts = [error.to_string(), format!("{error:?}")];
    for secret in secrets.iter().filter(|secret| secret.len() >= 6) {
        for text in &texts {
            assert!(!text.contains(secret), "{text:?} contains {secret:?}");
        }
    }
}

mod vectors {
    use super::*;

    const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const STANDARD_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const STANDARD_TIMESTAMP: i64 = 1_649_367_553;
    const STANDARD_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const STANDARD_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    /// Signs `body` with `key` under `scheme` and checks the result against `expected`,
    /// then verifies `expected` back.
    fn assert_vector(
        scheme: Scheme,
        key: &str,
        timestamp: i64,
        body: &[u8],
        expected: &[(&'static str, &str)],
    ) {
        let secrets = [secret(scheme, key)];
        let headers = sign(scheme, &secrets, "msg_1", at(timestamp), body).unwrap();
        for (name, value) in expected {
            let produced = headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            assert_eq!(
                produced.map(String::as_str),
                Some(*value),
                "{scheme} {name}"
            );
        }
        let verified = check(scheme, expected, body, &secrets, timestamp).unwrap();
        assert_eq!(
            verified.timestamp,
            scheme.has_timestamp().then(|| at(timestamp))
        );
    }

    #[test]
    fn standard_webhooks_design_vector() {
        let secrets = [secret(Scheme::Standard, STANDARD_SECRET)];
        let headers = sign(
            Scheme::Standard,
            &secrets,
            STANDARD_ID,
            at(STANDARD_TIMESTAMP),
            STANDARD_BODY,
        )
        .unwrap();
        assert_eq!(
            headers,
            vec![
                ("webhook-id", STANDARD_ID.to_owned()),
                ("webhook-timestamp", "1649367553".to_owned()),
                ("webhook-signature", STANDARD_SIGNATURE.to_owned()),
            ]
        );
        // As a client sends it: mixed-case names, any order.
        let received = [
            ("Webhook-Signature", STANDARD_SIGNATURE),
            ("Webhook-Id", STANDARD_ID),
            ("Webhook-Timestamp", "1649367553"),
        ];
        let verified = check(
            Scheme::Standard,
            &received,
            STANDARD_BODY,
            &secrets,
            STANDARD_TIMESTAMP,
        )
        .unwrap();
        assert_eq!(
            verified,
            Verified {
                id: Some(STANDARD_ID.to_owned()),
                id_signed: true,
                timestamp: Some(at(STANDARD_TIMESTAMP)),
                secret_index: 0,
            }
        );
    }

    #[test]
    fn github_design_vector() {
        assert_vector(
            Scheme::Github,
            "It's a Secret to Everybody",
            T0,
            b"Hello, World!",
            &[(
                "x-hub-signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            )],
        );
    }

    /// Slack's documented example request.
    #[test]
    fn slack_documented_vector() {
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_vector(
            Scheme::Slack,
            "8f742231b10e8888abcd99yyyzzz85a5",
            1_531_420_618,
            body,
            &[
                ("x-slack-request-timestamp", "1531420618"),
                (
                    "x-slack-signature",
                    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                ),
            ],
        );
    }

    // The vectors below were computed with Python's hmac module, apart from this code.

    /// The whole `whsec_` string is the key.
    #[test]
    fn stripe_vector() {
        assert_vector(
            Scheme::Stripe,
            "whsec_test_secret",
            1_700_000_000,
            br#"{"id":"evt_test","object":"event"}"#,
            &[(
                "stripe-signature",
                "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724",
            )],
        );
    }

    #[test]
    fn shopify_vector() {
        assert_vector(
            Scheme::Shopify,
            "shpss_test",
            T0,
            br#"{"id":820982911946154508}"#,
            &[(
                "x-shopify-hmac-sha256",
                "3JxXO8Lul52iD5+qb1FHtoXK8vDwPbXpi8eB+yETk5I=",
            )],
        );
    }

    #[test]
    fn legacy_hex_vector() {
        assert_vector(
            Scheme::LegacyHex,
            "prototype-secret",
            T0,
            br#"{"event_id":"e1"}"#,
            &[(
                "x-webhook-signature",
                "2d4ec7a617142087b7874386f814a2c53374b142703ec13265a5a7cc7ad0a294",
            )],
        );
    }
}

mod schemes {
    use super::*;

    #[test]
    fn names_agree_in_serde_from_str_and_display() {
        let names = [
            "standard",
            "github",
            "stripe",
            "shopify",
            "slack",
            "legacy-hex",
        ];
        for (scheme, name) in Scheme::ALL.into_iter().zip(names) {
            assert_eq!(scheme.to_string(), name);
            assert_eq!(name.parse::<Scheme>().unwrap(), scheme);
            assert_eq!(
                serde_json::to_string(&scheme).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<Scheme>(&format!("\"{name}\"")).unwrap(),
                scheme
            );
        }
        assert_eq!(Scheme::default(), Scheme::Standard);
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in ["", "Standard", "legacy_hex", "legacyhex", "hmac"] {
            assert_eq!(name.parse::<Scheme>(), Err(UnknownScheme(name.to_owned())));
            assert!(serde_json::from_str::<Scheme>(&format!("\"{name}\"")).is_err());
        }
    }
}

mod svix {
    use super::*;

    fn renamed(headers: &Headers, renames: &[(&str, &'static str)]) -> Headers {
        headers
            .iter()
            .map(|(name, value)| {
                let name = renames
                    .iter()
                    .find(|(from, _)| from == name)
                    .map_or(*name, |(_, to)| *to);
                (name, value.clone())
            })
            .collect()
    }

    const ALL_SVIX: &[(&str, &str)] = &[
        ("webhook-id", "svix-id"),
        ("webhook-timestamp", "svix-timestamp"),
        ("webhook-signature", "svix-signature"),
    ];

    #[test]
    fn svix_names_verify_alone_mixed_and_win_over_webhook_names() {
        let secrets = two_secrets(Scheme::Standard);
        let headers = signed(Scheme::Standard, &secrets);
        let svix = renamed(&headers, ALL_SVIX);
        let verified = check(Scheme::Standard, &svix, BODY, &secrets, T0).unwrap();
        assert_eq!(verified.id.as_deref(), Some("msg_1"));
        let mixed = renamed(&headers, &ALL_SVIX[..1]);
        assert!(check(Scheme::Standard, &mixed, BODY, &secrets, T0).is_ok());
        // Both sets: the svix- value is the one read, as Svix's verifier reads it.
        let mut both = headers.clone();
        both.push(("svix-id", "msg_other".into()));
        assert_eq!(
            check(Scheme::Standard, &both, BODY, &secrets, T0),
            Err(VerifyError::NoMatchingSignature)
        );
        let mut svix_right = renamed(&headers, &ALL_SVIX[..1]);
        svix_right.push(("webhook-id", "msg_other".into()));
        assert!(check(Scheme::Standard, &svix_right, BODY, &secrets, T0).is_ok());
    }

    #[test]
    fn a_missing_header_is_named_as_the_request_would_name_it() {
        let secrets = two_secrets(Scheme::Standard);
        let svix = renamed(&signed(Scheme::Standard, &secrets), ALL_SVIX);
        assert_eq!(
            check(
                Scheme::Standard,
                &without(&svix, "svix-signature"),
                BODY,
                &secrets,
                T0
            ),
            Err(VerifyError::MissingHeader {
                name: "webhook-signature"
            })
        );
        assert_eq!(
            check(Scheme::Standard, &Headers::new(), BODY, &secrets, T0),
            Err(VerifyError::MissingHeader { name: "webhook-id" })
        );
    }
}

mod secrets {
    use super::*;

    #[test]
    fn standard_secrets_are_whsec_and_base64() {
        assert_eq!(
            SigningSecret::parse(Scheme::Standard, "C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
            SecretError::MissingPrefix
        );
        for bad in ["whsec_not base64", "whsec_abc$", "whsec_QUJD\nQUJD"] {
            let error = SigningSecret::parse(Scheme::Standard, bad).unwrap_err();
            assert!(
                matches!(error, SecretError::NotBase64 | SecretError::MissingPrefix),
                "{bad:?}: {error:?}"
            );
            assert_no_leak(&error, &[bad, bad.trim_start_matches("whsec_")]);
        }
        assert_eq!(
            SigningSecret::parse(Scheme::Standard, "whsec_").unwrap_err(),
            SecretError::Empty
        );
    }

    #[test]
    fn standard_secrets_drop_surrounding_whitespace_other_schemes_refuse_it() {
        let clean = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sign_with = |text: &str| signed(Scheme::Standard, &[secret(Scheme::Standard, text)]);
        for padded in [
            format!("{clean}\n"),
            format!("{clean}\r\n"),
            format!(" {clean}\t"),
        ] {
            assert_eq!(sign_with(&padded), sign_with(clean), "{padded:?}");
        }
        for scheme in Scheme::ALL.into_iter().filter(|s| *s != Scheme::Standard) {
            for bad in ["whsec_abc\n", " abc", "abc\r\n", "\tabc"] {
                let error = SigningSecret::parse(scheme, bad).unwrap_err();
                assert_eq!(
                    error,
                    SecretError::SurroundingWhitespace(scheme),
                    "{scheme} {bad:?}"
                );
                assert_no_leak(&error, &[bad.trim()]);
            }
            assert!(SigningSecret::parse(scheme, "inner space is kept").is_ok());
        }
    }

    #[test]
    fn standard_secret_padding_is_optional() {
        let padded = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw8ZkTfTGz/s8=";
        let unpadded = padded.trim_end_matches('=');
        let sign_with = |text: &str| signed(Scheme::Standard, &[secret(Scheme::Standard, text)]);
        assert_eq!(sign_with(padded), sign_with(unpadded));
    }

    #[test]
    fn other_schemes_use_the_text_as_the_key() {
        for scheme in Scheme::ALL.into_iter().filter(|s| *s != Scheme::Standard) {
            assert_eq!(
                SigningSecret::parse(scheme, "").unwrap_err(),
                SecretError::Empty
            );
            let from_text = signed(scheme, &[secret(scheme, "whsec_abc def")]);
            let from_bytes = signed(
                scheme,
                &[SigningSecret::from_bytes(b"whsec_abc def".to_vec()).unwrap()],
            );
            assert_eq!(from_text, from_bytes, "{scheme}");
        }
        assert_eq!(
            SigningSecret::from_bytes(Vec::new()).unwrap_err(),
            SecretError::Empty
        );
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let text = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let shown = format!(
            "{:?}",
            [secret(Scheme::Standard, text), secret(Scheme::Stripe, text)]
        );
        assert!(!shown.contains("C2FVsBQI"), "{shown}");
        assert!(shown.contains("redacted"));
        let raw = format!("{:?}", secret(Scheme::Github, "It's a Secret to Everybody"));
        assert!(!raw.contains("Secret to"), "{raw}");
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let first = generate_standard_secret();
        let second = generate_standard_secret();
        assert_ne!(first, second);
        let encoded = first.strip_prefix(STANDARD_SECRET_PREFIX).unwrap();
        assert_eq!(encoded.len(), 44);
        assert_eq!(BASE64.decode(encoded).unwrap().len(), 32);
        let secrets = [secret(Scheme::Standard, &first)];
        let headers = signed(Scheme::Standard, &secrets);
        check(Scheme::Standard, &headers, BODY, &secrets, T0).unwrap();
    }
}

mod verification {
    use super::*;

    fn expected_id(scheme: Scheme) -> Option<String> {
        matches!(scheme, Scheme::Standard | Scheme::Github | Scheme::Shopify)
            .then(|| "msg_1".to_owned())
    }

    #[test]
    fn every_scheme_round_trips() {
        for scheme in Scheme::ALL {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            let verified = check(scheme, &headers, BODY, &secrets, T0 + 10)
                .unwrap_or_else(|error| panic!("{scheme}: {error}"));
            assert_eq!(
                verified,
                Verified {
                    id: expected_id(scheme),
                    id_signed: scheme == Scheme::Standard,
                    timestamp: scheme.has_timestamp().then(|| at(T0)),
                    secret_index: 0,
                },
                "{scheme}"
            );
        }
    }

    #[test]
    fn http_header_maps_are_read_case_insensitively() {
        use http::{HeaderMap, HeaderName, HeaderValue};
        for scheme in Scheme::ALL {
            let secrets = two_secrets(scheme);
            let mut map = HeaderMap::new();
            for (name, value) in signed(scheme, &secrets) {
                map.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            check(scheme, &map, BODY, &secrets, T0).unwrap();
            let shouting: Vec<(String, String)> = signed(scheme, &secrets)
                .into_iter()
                .map(|(name, value)| (name.to_uppercase(), value))
                .collect();
            check(scheme, &shouting, BODY, &secrets, T0).unwrap();
        }
    }

    #[test]
    fn rotation_accepts_the_previous_secret_only_while_it_is_given() {
        for scheme in Scheme::ALL {
            let [current, previous] = two_secrets(scheme);
            let by_previous = signed(scheme, std::slice::from_ref(&previous));
            let both = [current.clone(), previous.clone()];
            let verified = check(scheme, &by_previous, BODY, &both, T0).unwrap();
            assert_eq!(verified.secret_index, 1, "{scheme}");
            assert_eq!(
                check(
                    scheme,
                    &by_previous,
                    BODY,
                    std::slice::from_ref(&current),
                    T0
                ),
                Err(VerifyError::NoMatchingSignature),
                "{scheme}"
            );
        }
    }

    #[test]
    fn senders_sign_with_every_secret_where_the_scheme_allows_several() {
        for scheme in Scheme::ALL {
            let [current, previous] = two_secrets(scheme);
            let by_both = signed(scheme, &[current.clone(), previous.clone()]);
            // Every receiver, whichever secret it still has, accepts Standard and Stripe.
            let by_previous_only = check(scheme, &by_both, BODY, &[previous], T0);
            if matches!(scheme, Scheme::Standard | Scheme::Stripe) {
                assert_eq!(read(scheme, &by_both).unwrap().signatures.len(), 2);
                by_previous_only.unwrap();
            } else {
                assert_eq!(by_previous_only, Err(VerifyError::NoMatchingSignature));
            }
            check(scheme, &by_both, BODY, &[current], T0).unwrap();
        }
        let [current, previous] = two_secrets(Scheme::Standard);
        let by_both = signed(Scheme::Standard, &[current, previous]);
        let list = &by_both[2].1;
        assert_eq!(list.split(' ').filter(|e| e.starts_with("v1,")).count(), 2);
    }

    #[test]
    fn timestamps_must_be_within_the_tolerance_both_ways() {
        for scheme in Scheme::ALL.into_iter().filter(|s| s.has_timestamp()) {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            for now in [T0 - 300, T0, T0 + 300] {
                check(scheme, &headers, BODY, &secrets, now)
                    .unwrap_or_else(|error| panic!("{scheme} at {now}: {error}"));
            }
            for (now, age_secs) in [(T0 + 301, 301), (T0 - 301, -301), (T0 + 86_400, 86_400)] {
                assert_eq!(
                    check(scheme, &headers, BODY, &secrets, now),
                    Err(VerifyError::TimestampOutOfTolerance {
                        timestamp: T0,
                        now,
                        age_secs,
                        tolerance_secs: 300,
                    }),
                    "{scheme} at {now}"
                );
            }
            let strict = |now| verify(scheme, &headers, BODY, &secrets, at(now), Duration::ZERO);
            strict(T0).unwrap();
            assert!(strict(T0 + 1).is_err());
            assert!(strict(T0 - 1).is_err());
            // Sub-second parts of the clock do not count.
            let late = at(T0 + 300) + chrono::Duration::milliseconds(999);
            verify(scheme, &headers, BODY, &secrets, late, DEFAULT_TOLERANCE).unwrap();
        }
    }

    #[test]
    fn schemes_without_timestamps_ignore_the_clock() {
        for scheme in Scheme::ALL.into_iter().filter(|s| !s.has_timestamp()) {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            check(scheme, &headers, BODY, &secrets, T0 + 10 * 365 * 86_400).unwrap();
        }
    }

    #[test]
    fn forgeries_are_refused_for_their_signature_before_their_timestamp() {
        for scheme in Scheme::ALL.into_iter().filter(|s| s.has_timestamp()) {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            let stale_forgery = check(scheme, &headers, b"forged", &secrets, T0 + 3600);
            assert_eq!(stale_forgery, Err(VerifyError::NoMatchingSignature));
        }
    }

    #[test]
    fn tampered_bodies_and_wrong_secrets_are_refused() {
        for scheme in Scheme::ALL {
            let [current, previous] = two_secrets(scheme);
            let headers = signed(scheme, std::slice::from_ref(&current));
            let refused = |body: &[u8], secrets: &[SigningSecret]| {
                assert_eq!(
                    check(scheme, &headers, body, secrets, T0),
                    Err(VerifyError::NoMatchingSignature),
                    "{scheme}"
                );
            };
            let mut tampered = BODY.to_vec();
            tampered[20] ^= 1;
            refused(&tampered, std::slice::from_ref(&current));
            refused(&BODY[..BODY.len() - 1], std::slice::from_ref(&current));
            refused(b"", std::slice::from_ref(&current));
            refused(BODY, std::slice::from_ref(&previous));
            refused(BODY, &[unrelated_secret(scheme)]);
        }
    }

    #[test]
    fn headers_carry_only_what_their_signature_covers() {
        // Standard Webhooks signs id and timestamp; changing either breaks the signature.
        let secrets = two_secrets(Scheme::Standard);
        let headers = signed(Scheme::Standard, &secrets);
        for (name, value) in [(standard::ID, "msg_2"), (standard::TIMESTAMP, "1700000001")] {
            let changed = replaced(&headers, name, value);
            assert_eq!(
                check(Scheme::Standard, &changed, BODY, &secrets, T0),
                Err(VerifyError::NoMatchingSignature),
                "{name}"
            );
        }
        for (scheme, name) in [
            (Scheme::Stripe, stripe::SIGNATURE),
            (Scheme::Slack, slack::TIMESTAMP),
        ] {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            let value = headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
            let changed = replaced(&headers, name, &value.replace("1700000000", "1700000001"));
            assert_eq!(
                check(scheme, &changed, BODY, &secrets, T0),
                Err(VerifyError::NoMatchingSignature),
                "{scheme}"
            );
        }
    }

    #[test]
    fn any_flipped_bit_of_a_signature_is_refused() {
        for scheme in Scheme::ALL {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets[..1]);
            let genuine = read(scheme, &headers).unwrap().signatures[0];
            check(
                scheme,
                &with_signature(scheme, &headers, &genuine),
                BODY,
                &secrets,
                T0,
            )
            .unwrap();
            for bit in 0..256 {
                let mut flipped = genuine;
                flipped[bit / 8] ^= 1 << (bit % 8);
                let forged = with_signature(scheme, &headers, &flipped);
                assert_eq!(
                    check(scheme, &forged, BODY, &secrets, T0),
                    Err(VerifyError::NoMatchingSignature),
                    "{scheme} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn missing_headers_are_named() {
        for scheme in Scheme::ALL {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            for name in required_headers(scheme) {
                assert_eq!(
                    check(scheme, &without(&headers, name), BODY, &secrets, T0),
                    Err(VerifyError::MissingHeader { name }),
                    "{scheme}"
                );
            }
            let none: [(&str, &str); 0] = [];
            assert!(matches!(
                check(scheme, &none, BODY, &secrets, T0),
                Err(VerifyError::MissingHeader { .. })
            ));
        }
    }

    #[test]
    fn unsigned_ids_are_optional() {
        for (scheme, name) in [
            (Scheme::Github, github::DELIVERY),
            (Scheme::Shopify, shopify::WEBHOOK_ID),
        ] {
            let secrets = two_secrets(scheme);
            let headers = without(&signed(scheme, &secrets), name);
            let verified = check(scheme, &headers, BODY, &secrets, T0).unwrap();
            assert_eq!(verified.id, None);
            assert!(!verified.id_signed);
        }
    }

    #[test]
    fn no_secrets_no_verification() {
        let headers = signed(Scheme::Standard, &two_secrets(Scheme::Standard));
        assert_eq!(
            check(Scheme::Standard, &headers, BODY, &[], T0),
            Err(VerifyError::NoSecrets)
        );
    }

    #[test]
    fn other_signature_versions_are_skipped() {
        let secrets = two_secrets(Scheme::Standard);
        let headers = signed(Scheme::Standard, &secrets[..1]);
        let genuine = &headers[2].1;
        let noisy = format!("v1a,c2lnbmF0dXJl  v2,abc {genuine} ");
        let noisy = replaced(&headers, standard::SIGNATURE, &noisy);
        check(Scheme::Standard, &noisy, BODY, &secrets, T0).unwrap();
        let foreign = replaced(&headers, standard::SIGNATURE, "v1a,c2lnbmF0dXJl v2,abc");
        assert_eq!(
            check(Scheme::Standard, &foreign, BODY, &secrets, T0),
            Err(VerifyError::NoMatchingSignature)
        );

        let secrets = two_secrets(Scheme::Stripe);
        let headers = signed(Scheme::Stripe, &secrets[..1]);
        let with_v0 = format!("{}, v0=abc", headers[0].1);
        check(
            Scheme::Stripe,
            &[(stripe::SIGNATURE, with_v0)],
            BODY,
            &secrets,
            T0,
        )
        .unwrap();
        let only_v0 = format!("t={T0},v0={}", "0".repeat(64));
        assert_eq!(
            check(
                Scheme::Stripe,
                &[(stripe::SIGNATURE, only_v0)],
                BODY,
                &secrets,
                T0
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn hex_signatures_may_be_upper_case() {
        for scheme in [Scheme::Github, Scheme::Slack, Scheme::LegacyHex] {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets);
            let name = signature_header(scheme);
            let value = headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
            let (prefix, hex) = value.split_at(value.len() - 64);
            let upper = replaced(&headers, name, &format!("{prefix}{}", hex.to_uppercase()));
            check(scheme, &upper, BODY, &secrets, T0).unwrap();
        }
    }

    /// A header, a value put in it, and the reason its refusal must give.
    type Malformed = (Scheme, &'static str, String, &'static str);

    const NOT_TS: &str = "timestamp is not whole seconds since 1970";

    fn too_long() -> String {
        "a".repeat(MAX_SIGNATURE_HEADER_LEN + 1)
    }

    fn too_long_id() -> String {
        "m".repeat(MAX_MESSAGE_ID_LEN + 1)
    }

    /// Each value, put in its header of a genuine request, is refused as malformed for
    /// its reason, and the refusal shows no secret, signature or value.
    fn assert_malformed(cases: Vec<Malformed>) {
        for (scheme, name, value, why) in cases {
            let texts = secret_texts(scheme);
            let secrets = texts.clone().map(|text| secret(scheme, &text));
            let headers = replaced(&signed(scheme, &secrets), name, &value);
            let error = check(scheme, &headers, BODY, &secrets, T0).unwrap_err();
            assert_eq!(error, malformed(name, why), "{scheme} {name}: {value:?}");
            let genuine: Vec<String> = signed(scheme, &secrets)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            let mut private: Vec<&str> = texts.iter().map(String::as_str).collect();
            private.extend(genuine.iter().map(String::as_str));
            private.push(&value);
            assert_no_leak(&error, &private);
        }
    }

    #[test]
    fn malformed_standard_signatures_say_what_is_wrong_and_leak_nothing() {
        let v1 = format!("v1,{}", BASE64.encode([7u8; 32]));
        let eleven_v1 = [v1.as_str(); 11].join(" ");
        assert_malformed(vec![
            (
                Scheme::Standard,
                standard::SIGNATURE,
                "v1,not base64!".into(),
                "signature is not base64",
            ),
            (
                Scheme::Standard,
                standard::SIGNATURE,
                "v1,AAAA".into(),
                "signature is not 32 bytes",
            ),
            (
                Scheme::Standard,
                standard::SIGNATURE,
                "v1".into(),
                "entry is not <version>,<signature>",
            ),
            (
                Scheme::Standard,
                standard::SIGNATURE,
                eleven_v1,
                "more than 10 signatures",
            ),
            (
                Scheme::Standard,
                standard::SIGNATURE,
                too_long(),
                "too long",
            ),
            (
                Scheme::Standard,
                standard::SIGNATURE,
                String::new(),
                "empty",
            ),
        ]);
    }

    #[test]
    fn malformed_standard_timestamps_and_ids_say_what_is_wrong_and_leak_nothing() {
        assert_malformed(vec![
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                "17OOOOOOOO".into(),
                NOT_TS,
            ),
            (Scheme::Standard, standard::TIMESTAMP, "-1".into(), NOT_TS),
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                "+1700000000".into(),
                NOT_TS,
            ),
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                "1700000000.5".into(),
                NOT_TS,
            ),
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                " 1700000000".into(),
                NOT_TS,
            ),
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                "9".repeat(18),
                "timestamp out of range",
            ),
            (
                Scheme::Standard,
                standard::TIMESTAMP,
                "9".repeat(19),
                NOT_TS,
            ),
            (
                Scheme::Standard,
                standard::ID,
                "msg 1".into(),
                "not visible ASCII",
            ),
            (Scheme::Standard, standard::ID, "msg_é".into(), "not ASCII"),
            (Scheme::Standard, standard::ID, too_long_id(), "too long"),
        ]);
    }

    #[test]
    fn malformed_github_headers_say_what_is_wrong_and_leak_nothing() {
        let hex64 = "ab".repeat(32);
        assert_malformed(vec![
            (
                Scheme::Github,
                github::SIGNATURE,
                hex64.clone(),
                "does not start with sha256=",
            ),
            (
                Scheme::Github,
                github::SIGNATURE,
                format!("sha1={hex64}"),
                "does not start with sha256=",
            ),
            (
                Scheme::Github,
                github::SIGNATURE,
                "sha256=xyz".into(),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::Github,
                github::SIGNATURE,
                format!("sha256={}", &hex64[2..]),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::Github,
                github::SIGNATURE,
                format!("sha256={hex64}00"),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::Github,
                github::DELIVERY,
                "a b".into(),
                "not visible ASCII",
            ),
        ]);
    }

    #[test]
    fn malformed_stripe_signatures_say_what_is_wrong_and_leak_nothing() {
        let hex64 = "ab".repeat(32);
        let eleven_stripe = format!("t={T0}{}", format!(",v1={hex64}").repeat(11));
        let many_items = format!("t={T0}{}", ",v0=x".repeat(21));
        assert_malformed(vec![
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                "hello".into(),
                "item is not key=value",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                "garbage,,,".into(),
                "item is not key=value",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                format!("v1={hex64}"),
                "no t= timestamp",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                format!("t=abc,v1={hex64}"),
                NOT_TS,
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                format!("t=1,t=2,v1={hex64}"),
                "more than one t=",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                format!("t={T0},v1=zz"),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                eleven_stripe,
                "more than 10 signatures",
            ),
            (
                Scheme::Stripe,
                stripe::SIGNATURE,
                many_items,
                "more than 21 items",
            ),
        ]);
    }

    #[test]
    fn malformed_shopify_slack_and_legacy_hex_headers_say_what_is_wrong_and_leak_nothing() {
        let hex64 = "ab".repeat(32);
        assert_malformed(vec![
            (
                Scheme::Shopify,
                shopify::SIGNATURE,
                "not base64!".into(),
                "signature is not base64",
            ),
            (
                Scheme::Shopify,
                shopify::SIGNATURE,
                BASE64.encode([1u8; 20]),
                "signature is not 32 bytes",
            ),
            (
                Scheme::Shopify,
                shopify::WEBHOOK_ID,
                too_long_id(),
                "too long",
            ),
            (
                Scheme::Slack,
                slack::SIGNATURE,
                hex64.clone(),
                "does not start with v0=",
            ),
            (
                Scheme::Slack,
                slack::SIGNATURE,
                format!("v1={hex64}"),
                "does not start with v0=",
            ),
            (
                Scheme::Slack,
                slack::SIGNATURE,
                "v0=12".into(),
                "signature is not 64 hex digits",
            ),
            (Scheme::Slack, slack::TIMESTAMP, "yesterday".into(), NOT_TS),
            (
                Scheme::LegacyHex,
                legacy_hex::SIGNATURE,
                "not hex".into(),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::LegacyHex,
                legacy_hex::SIGNATURE,
                format!("sha256={hex64}"),
                "signature is not 64 hex digits",
            ),
            (
                Scheme::LegacyHex,
                legacy_hex::SIGNATURE,
                too_long(),
                "too long",
            ),
        ]);
    }

    #[test]
    fn non_ascii_header_bytes_are_malformed() {
        let secrets = two_secrets(Scheme::Github);
        let headers: Vec<(&str, Vec<u8>)> = vec![(github::SIGNATURE, b"sha256=\xff\xfe".to_vec())];
        assert_eq!(
            check(Scheme::Github, &headers, BODY, &secrets, T0),
            Err(malformed(github::SIGNATURE, "not ASCII"))
        );
    }

    #[test]
    fn refusals_never_show_the_secret_or_the_signature() {
        for scheme in Scheme::ALL {
            let texts = secret_texts(scheme);
            let secrets = texts.clone().map(|text| secret(scheme, &text));
            let headers = signed(scheme, &secrets);
            let values: Vec<&str> = headers.iter().map(|(_, v)| v.as_str()).collect();
            let errors = [
                check(scheme, &headers, b"tampered", &secrets, T0).unwrap_err(),
                check(scheme, &headers, BODY, &[unrelated_secret(scheme)], T0).unwrap_err(),
            ];
            for error in &errors {
                let mut private: Vec<&str> = texts.iter().map(String::as_str).collect();
                private.extend(values.iter().filter(|v| v.len() > 12));
                assert_no_leak(error, &private);
            }
        }
    }
}

mod signing {
    use super::*;

    #[test]
    fn signing_needs_a_secret_a_clean_id_and_a_time_after_1970() {
        let secrets = two_secrets(Scheme::Standard);
        assert_eq!(
            sign(Scheme::Standard, &[], "msg_1", at(T0), BODY),
            Err(SignError::NoSecrets)
        );
        for (id, why) in [
            ("", "empty"),
            ("msg 1", "not visible ASCII"),
            ("msg\n1", "not visible ASCII"),
            ("msg_é", "not visible ASCII"),
            (&"m".repeat(257), "longer than 256 bytes"),
        ] {
            assert_eq!(
                sign(Scheme::Standard, &secrets, id, at(T0), BODY),
                Err(SignError::InvalidMessageId { why }),
                "{id:?}"
            );
        }
        assert_eq!(
            sign(Scheme::Slack, &secrets, "msg_1", at(-1), BODY),
            Err(SignError::TimestampBeforeEpoch(-1))
        );
        sign(Scheme::Standard, &secrets, &"m".repeat(256), at(0), BODY).unwrap();
    }

    #[test]
    fn at_most_ten_signatures_are_written() {
        let secrets: Vec<SigningSecret> = (0..12)
            .map(|_| secret(Scheme::Standard, &generate_standard_secret()))
            .collect();
        let headers = signed(Scheme::Standard, &secrets);
        check(Scheme::Standard, &headers, BODY, &secrets, T0).unwrap();
        assert_eq!(
            read(Scheme::Standard, &headers).unwrap().signatures.len(),
            10
        );
    }
}

mod properties {
    use super::*;

    fn scheme() -> impl Strategy<Value = Scheme> {
        prop::sample::select(Scheme::ALL.to_vec())
    }

    /// Header values: raw bytes, printable text, and the pieces the parsers look for.
    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just("v1,".to_owned()),
            Just("v1=".to_owned()),
            Just("v0=".to_owned()),
            Just("t=".to_owned()),
            Just("sha256=".to_owned()),
            Just(",".to_owned()),
            Just(" ".to_owned()),
            Just("=".to_owned()),
            "[0-9]{1,19}",
            "[0-9a-fA-F]{62,66}",
            "[A-Za-z0-9+/]{42,44}={0,2}",
            "[A-Za-z0-9+/=_-]{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "\\PC{0,80}".prop_map(String::into_bytes),
            prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat().into_bytes()),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..256)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the headers hold, nothing panics and nothing verifies without the
        /// secret, even with an unlimited timestamp window.
        #[test]
        fn arbitrary_headers_never_verify(
            scheme in scheme(),
            values in prop::collection::vec(prop::option::of(header_value()), 3),
            body in body(),
        ) {
            let texts = secret_texts(scheme);
            let secrets = texts.clone().map(|text| secret(scheme, &text));
            let headers: Vec<(&str, Vec<u8>)> = read_headers(scheme)
                .into_iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|value| (name, value)))
                .collect();
            let result = verify(scheme, &headers, &body, &secrets, at(T0), Duration::MAX);
            let error = result.expect_err("verified without the secret");
            assert_no_leak(&error, &[&texts[0], &texts[1]]);
        }

        /// Signed requests verify, and stop verifying when the body or the key differ.
        #[test]
        fn only_the_signed_body_and_key_verify(
            scheme in scheme(),
            key in prop::collection::vec(any::<u8>(), 1..64),
            other_key in prop::collection::vec(any::<u8>(), 1..64),
            body in body(),
            flip in any::<prop::sample::Index>(),
            id in "[!-~]{1,64}",
            timestamp in 0i64..4_000_000_000,
        ) {
            prop_assume!(key != other_key);
            let secrets = [SigningSecret::from_bytes(key).unwrap()];
            let headers = sign(scheme, &secrets, &id, at(timestamp), &body).unwrap();
            let verify_at = |body: &[u8], secrets: &[SigningSecret]| {
                verify(scheme, &headers, body, secrets, at(timestamp), DEFAULT_TOLERANCE)
            };
            let verified = verify_at(&body, &secrets).unwrap();
            prop_assert_eq!(verified.id.is_some(), !matches!(scheme, Scheme::Stripe | Scheme::Slack | Scheme::LegacyHex));
            let mut tampered = body.clone();
            if tampered.is_empty() {
                tampered.push(0);
            } else {
                let at = flip.index(tampered.len());
                tampered[at] ^= 0x01;
            }
            prop_assert_eq!(verify_at(&tampered, &secrets), Err(VerifyError::NoMatchingSignature));
            let others = [SigningSecret::from_bytes(other_key).unwrap()];
            prop_assert_eq!(verify_at(&body, &others), Err(VerifyError::NoMatchingSignature));
        }

        /// A signature header with any byte changed never panics, and verifies only if
        /// it still carries the genuine signature (e.g. hex digits changing case).
        #[test]
        fn mutated_signature_headers_verify_only_if_still_genuine(
            scheme in scheme(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let secrets = two_secrets(scheme);
            let headers = signed(scheme, &secrets[..1]);
            let genuine = read(scheme, &headers).unwrap().signatures[0];
            let name = signature_header(scheme);
            let mut value = headers.iter().find(|(n, _)| *n == name).unwrap().1.clone().into_bytes();
            let at_index = position.index(value.len());
            value[at_index] = byte;
            let mut mutated: Vec<(&str, Vec<u8>)> = headers
                .iter()
                .filter(|(n, _)| *n != name)
                .map(|(n, v)| (*n, v.clone().into_bytes()))
                .collect();
            mutated.push((name, value));
            if check(scheme, &mutated, BODY, &secrets, T0).is_ok() {
                let claim = read(scheme, &mutated).unwrap();
                prop_assert!(claim.signatures.contains(&genuine));
            }
        }
    }

    #[test]
    fn tag_comparison_checks_every_candidate() {
        let secrets = two_secrets(Scheme::LegacyHex);
        let genuine = tag::compute(secrets[1].key(), b"", BODY);
        let mut candidates = vec![[0u8; 32]; 9];
        candidates.push(genuine);
        assert_eq!(
            tag::matching_secret(&secrets, b"", BODY, &candidates),
            Some(1)
        );
        assert_eq!(
            tag::matching_secret(&secrets, b"", BODY, &candidates[..9]),
            None
        );
    }
}
