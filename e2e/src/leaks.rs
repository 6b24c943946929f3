//! The log scan: no signing secret and no full signature in any log line or metric of a
//! run. Secrets are looked for whole and by their key part (after `whsec_`), so a log
//! that printed the decoded key's base64 would be caught too.

use std::path::{Path, PathBuf};

/// One leak: where, and what kind (never the leaked value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub file: PathBuf,
    pub line: usize,
    pub what: &'static str,
}

/// What a scan looked at, to show the scan was not empty.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: usize,
    pub lines: usize,
    pub leaks: Vec<Leak>,
}

/// Shortest secret fragment worth looking for; shorter ones would match by chance.
const MIN_SECRET_FRAGMENT: usize = 16;

/// What in `line` looks like a leak: a secret (or its key part), or a full Standard
/// Webhooks signature (`v1,` and 44 base64 characters) or a 64-hex-digit HMAC.
pub fn leaks_in(line: &str, secrets: &[String]) -> Vec<&'static str> {
    let mut found = Vec::new();
    let secret_seen = secrets.iter().any(|secret| {
        let key = secret.strip_prefix("whsec_").unwrap_or(secret);
        [secret.as_str(), key]
            .iter()
            .any(|part| part.len() >= MIN_SECRET_FRAGMENT && line.contains(part))
    });
    if secret_seen {
        found.push("signing secret");
    }
    if has_standard_signature(line) {
        found.push("full signature (v1,<base64>)");
    }
    if has_hex_run(line, 64) {
        found.push("full signature (64 hex digits)");
    }
    found
}

fn has_standard_signature(line: &str) -> bool {
    line.match_indices("v1,").any(|(at, _)| {
        let rest = &line[at + 3..];
        let run = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            .count();
        run >= 43
    })
}

fn has_hex_run(line: &str, length: usize) -> bool {
    let mut run = 0;
    for b in line.bytes() {
        run = if b.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= length {
            return true;
        }
    }
    false
}

/// Scans every `*.log` file below `dir` (the pods' logs: operator, handlers, consumers,
/// emitters). Secret files the pod runner writes there are not logs and are skipped.
pub fn scan_logs(dir: &Path, secrets: &[String]) -> Scan {
    let mut scan = Scan::default();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                scan_file(&path, secrets, &mut scan);
            }
        }
    }
    scan
}

/// Scans one log file into `scan`.
pub fn scan_file(path: &Path, secrets: &[String], scan: &mut Scan) {
    let text = std::fs::read(path).unwrap_or_default();
    scan.files += 1;
    scan_text(path, &String::from_utf8_lossy(&text), secrets, scan);
}

/// Scans one text (a log file, a /metrics page) into `scan`.
pub fn scan_text(source: &Path, text: &str, secrets: &[String], scan: &mut Scan) {
    for (index, line) in text.lines().enumerate() {
        scan.lines += 1;
        for what in leaks_in(line, secrets) {
            scan.leaks.push(Leak {
                file: source.to_owned(),
                line: index + 1,
                what,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn secrets_and_full_signatures_are_found() {
        let secrets = [SECRET.to_owned()];
        assert_eq!(
            leaks_in(&format!("key={SECRET}"), &secrets),
            ["signing secret"]
        );
        assert_eq!(
            leaks_in("raw C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &secrets),
            ["signing secret"]
        );
        assert_eq!(
            leaks_in(
                r#"{"signature":"v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="}"#,
                &secrets
            ),
            ["full signature (v1,<base64>)"]
        );
        assert_eq!(
            leaks_in(
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                &secrets
            ),
            ["full signature (64 hex digits)"]
        );
    }

    #[test]
    fn ordinary_log_lines_are_not_leaks() {
        let secrets = [SECRET.to_owned()];
        for line in [
            r#"{"level":"INFO","message":"stored","webhook_id":"7f6c2f0e-8d1a-4c43-9a4e-2b8b1f0c9d11","message_id":"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"}"#,
            "signature mismatch: v1,tZ1I4/hD… (prefix only)",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert!(leaks_in(line, &secrets).is_empty(), "{line}");
        }
    }
}
