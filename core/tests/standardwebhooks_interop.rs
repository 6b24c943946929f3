//! Interoperability with the official `standardwebhooks` Python package, at the
//! version pinned in dev/versions.env: what it signs, Hookline verifies, and what
//! Hookline signs (one secret, or several during a rotation), it verifies.
//!
//! Python comes from `hookline_testkit::tools::python()` (`HOOKLINE_PYTHON`, else
//! the venv of `dev/pyenv.sh`). Without Python or the package these tests fail; they
//! never skip.

use std::process::Command;

use chrono::{DateTime, Utc};
use hookline_core::signature::{
    self, DEFAULT_TOLERANCE, Scheme, SigningSecret, VerifyError, generate_standard_secret,
};
use hookline_testkit::{providers, tools};
use serde_json::{Value, json};

/// Runs a list of operations with the Python library; prints one result per operation:
/// the signature for `sign`, `ok` or the exception for `verify`.
const BRIDGE: &str = r#"
import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

results = []
for op in json.load(sys.stdin):
    hook = Webhook(op["secret"])
    if op["op"] == "sign":
        when = datetime.fromtimestamp(op["timestamp"], tz=timezone.utc)
        results.append(hook.sign(op["id"], when, op["body"]))
    else:
        try:
            hook.verify(op["body"].encode("utf-8"), op["headers"], json_parse=False)
            results.append("ok")
        except Exception as error:
            results.append(f"{type(error).__name__}: {error}")
json.dump(results, sys.stdout)
"#;

/// The test vector of DESIGN.md (24-byte key) and a generated secret (32-byte key).
const DESIGN_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

const BODIES: &[&str] = &[
    r#"{"email":"test@example.com","username":"test_user"}"#,
    r#"{"event_id":"0b6f5c9e-2f53-4c53-9d0b-6a8f2f0c1d2e","event_type":"PAID","timestamp":"2026-01-02T03:04:05Z","data":{"invoice_id":"5d0c8a62-98c4-4d4c-9a0e-3f1b2c3d4e5f"}}"#,
    r#"{"customer":"Zoë Ångström","note":"naïve café — 東京 🚀","amount":"€12,50"}"#,
    "not JSON: a line.\nAnother line with dots... and trailing spaces  ",
    "",
];

/// Runs `ops` through [`BRIDGE`] and returns one result per operation.
fn run_python(ops: &[Value]) -> Vec<String> {
    let mut command = Command::new(tools::python());
    command.args(["-c", BRIDGE]);
    let output = providers::run_with_input(command, &serde_json::to_vec(ops).unwrap());
    let results: Vec<String> = serde_json::from_slice(&output).unwrap();
    assert_eq!(results.len(), ops.len());
    results
}

fn parse(secret: &str) -> SigningSecret {
    SigningSecret::parse(Scheme::Standard, secret).unwrap()
}

fn now() -> DateTime<Utc> {
    // Python verifies against its own clock, so messages are signed "now".
    Utc::now()
}

fn header_map(headers: &[(&'static str, String)]) -> Value {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), Value::String(value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn hookline_verifies_what_python_signs() {
    let generated = generate_standard_secret();
    let timestamp = now();
    let mut cases = Vec::new();
    for secret in [DESIGN_SECRET, generated.as_str()] {
        for (index, body) in BODIES.iter().enumerate() {
            cases.push((secret, format!("msg_python_{index}"), *body));
        }
    }
    let ops: Vec<Value> = cases
        .iter()
        .map(|(secret, id, body)| {
            json!({"op": "sign", "secret": secret, "id": id, "timestamp": timestamp.timestamp(), "body": body})
        })
        .collect();
    let signatures = run_python(&ops);

    for ((secret, id, body), python_signature) in cases.iter().zip(signatures) {
        let secrets = [parse(secret)];
        let headers = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.timestamp().to_string()),
            ("webhook-signature", python_signature.clone()),
        ];
        let verified = signature::verify(
            Scheme::Standard,
            &headers,
            body.as_bytes(),
            &secrets,
            now(),
            DEFAULT_TOLERANCE,
        )
        .unwrap_or_else(|error| panic!("{body:?}: {error}"));
        assert_eq!(verified.id.as_deref(), Some(id.as_str()));
        assert_eq!(
            verified.timestamp.map(|t| t.timestamp()),
            Some(timestamp.timestamp())
        );

        // Both sides compute the same bytes.
        let ours =
            signature::sign(Scheme::Standard, &secrets, id, timestamp, body.as_bytes()).unwrap();
        assert_eq!(ours[2], ("webhook-signature", python_signature), "{body:?}");

        let tampered = format!("{body} ");
        assert_eq!(
            signature::verify(
                Scheme::Standard,
                &headers,
                tampered.as_bytes(),
                &secrets,
                now(),
                DEFAULT_TOLERANCE,
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }
}

#[test]
fn python_verifies_what_hookline_signs() {
    let current = generate_standard_secret();
    let previous = DESIGN_SECRET;
    let unrelated = generate_standard_secret();
    let rotation = [parse(&current), parse(previous)];

    // (secret Python verifies with, body it is given, headers Hookline signed, expected)
    let mut cases = Vec::new();
    for (index, body) in BODIES.iter().enumerate() {
        let id = format!("msg_hookline_{index}");
        let single = signature::sign(
            Scheme::Standard,
            &rotation[..1],
            &id,
            now(),
            body.as_bytes(),
        )
        .unwrap();
        let both =
            signature::sign(Scheme::Standard, &rotation, &id, now(), body.as_bytes()).unwrap();
        assert_eq!(both[2].1.split(' ').count(), 2);
        let tampered = format!("{body}!");
        cases.push((current.clone(), body.to_string(), single.clone(), true));
        // During a rotation, receivers holding either secret accept.
        cases.push((current.clone(), body.to_string(), both.clone(), true));
        cases.push((previous.to_owned(), body.to_string(), both, true));
        // Python's check is live: it refuses a wrong secret and a changed body.
        cases.push((previous.to_owned(), body.to_string(), single.clone(), false));
        cases.push((unrelated.clone(), body.to_string(), single.clone(), false));
        cases.push((current.clone(), tampered, single, false));
    }
    let ops: Vec<Value> = cases
        .iter()
        .map(|(secret, body, headers, _)| {
            json!({"op": "verify", "secret": secret, "body": body, "headers": header_map(headers)})
        })
        .collect();
    let results = run_python(&ops);

    for ((_, body, headers, accepted), result) in cases.iter().zip(results) {
        if *accepted {
            assert_eq!(result, "ok", "{body:?} {headers:?}");
        } else {
            assert_eq!(
                result, "WebhookVerificationError: No matching signature found",
                "{body:?}"
            );
        }
    }
}
