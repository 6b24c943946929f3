//! The stack's kubectl and helm binaries work against its API server.

use std::process::Command;

fn run(program: &std::path::Path, args: &[&str]) -> String {
    let stack = hookline_testkit::stack();
    let output = Command::new(program)
        .args(args)
        .env("KUBECONFIG", &stack.kubeconfig)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} failed: {stdout}{}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn kubectl_version_reaches_the_server() {
    let stack = hookline_testkit::stack();
    let out = run(&stack.kubectl, &["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&out).expect("json");
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("the server answered with its version");
    assert!(server.starts_with("v1."), "{server}");
    let client = version["clientVersion"]["gitVersion"]
        .as_str()
        .expect("client version");
    assert!(client.starts_with("v1."), "{client}");
}

#[test]
fn helm_version_runs_and_lists_releases_on_the_server() {
    let stack = hookline_testkit::stack();
    let version = run(&stack.helm, &["version", "--short"]);
    assert!(version.starts_with("v3."), "{version}");
    // `helm list` talks to the API server: it fails if helm cannot reach it.
    let releases = run(&stack.helm, &["list", "--all-namespaces", "-o", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&releases).expect("json");
    assert!(parsed.is_array(), "{releases}");
}
