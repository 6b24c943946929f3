//! The providers' official webhook libraries, for interop tests: Python's
//! (`standardwebhooks`, `svix`, `stripe`, `slack_sdk`, from `dev/pyenv.sh`) and
//! Node.js's (`@octokit/webhooks-methods`, `@shopify/shopify-api`, from
//! `dev/npmenv.sh`), and the signers in `testkit/providers/` that use them.
//!
//! Without Python, Node.js or the packages (and no way to install them), the tests
//! that call these fail; they never skip.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::tools::{node_modules, python, repo_root};

use serde_json::Value;

/// Request headers as a sender sets them, in its order.
pub type SignedHeaders = Vec<(String, String)>;

/// Runs `command` with `input` on stdin; its stdout, after checking it succeeded.
pub fn run_with_input(mut command: Command, input: &[u8]) -> Vec<u8> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {shown}: {err}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .unwrap_or_else(|err| panic!("cannot write to {shown}: {err}"));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("{shown} did not finish: {err}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The headers the providers' libraries put on each of `requests` (see
/// `testkit/providers/sign.py` and `sign.mjs` for their fields): `standard`, `svix`,
/// `stripe` and `slack` are signed in Python, `github` and `shopify` in Node.js.
pub fn sign(requests: &[Value]) -> Vec<SignedHeaders> {
    let in_python = |request: &Value| {
        matches!(
            request["provider"].as_str(),
            Some("standard" | "svix" | "stripe" | "slack")
        )
    };
    let (python_requests, node_requests): (Vec<&Value>, Vec<&Value>) =
        requests.iter().partition(|request| in_python(request));
    let mut python_signed = if python_requests.is_empty() {
        Vec::new()
    } else {
        let mut command = Command::new(python());
        command.arg(repo_root().join("testkit/providers/sign.py"));
        headers_of(run_with_input(command, &to_json(&python_requests)))
    }
    .into_iter();
    let mut node_signed = if node_requests.is_empty() {
        Vec::new()
    } else {
        // ES modules resolve packages from the working directory only with `-e`.
        let script = std::fs::read_to_string(repo_root().join("testkit/providers/sign.mjs"))
            .expect("read testkit/providers/sign.mjs");
        let mut command = Command::new("node");
        command
            .args(["--input-type=module", "-e", &script])
            .current_dir(node_modules().parent().expect("node_modules has a parent"));
        headers_of(run_with_input(command, &to_json(&node_requests)))
    }
    .into_iter();
    let signed: Vec<SignedHeaders> = requests
        .iter()
        .map(|request| {
            let next = if in_python(request) {
                python_signed.next()
            } else {
                node_signed.next()
            };
            next.expect("one signed request per request")
        })
        .collect();
    signed
}

fn to_json(requests: &[&Value]) -> Vec<u8> {
    serde_json::to_vec(requests).expect("requests are JSON")
}

fn headers_of(output: Vec<u8>) -> Vec<SignedHeaders> {
    let signed: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(&output).expect("the signer prints a JSON list of header objects");
    signed
        .into_iter()
        .map(|headers| {
            headers
                .into_iter()
                .map(|(name, value)| {
                    let value = value
                        .as_str()
                        .unwrap_or_else(|| panic!("header {name} is not a string"));
                    (name, value.to_owned())
                })
                .collect()
        })
        .collect()
}
