//! The emitter's configuration: flags with environment fallbacks, validated at start-up.
//! The operator's Deployment passes exactly these.

use std::path::PathBuf;

use clap::Parser;
use hookline_core::config::{CommonArgs, OpsArgs};

/// Hookline's emitter: a simulated event source for one Webhook that signs events and
/// delivers them to the webhook's target with retries.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-emitter", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Id of the Webhook this emitter sends for.
    #[arg(long, env = "WEBHOOK_ID")]
    pub webhook_id: String,
    /// Where events are POSTed (http or https).
    #[arg(long, env = "WEBHOOK_TARGET_URL", value_parser = parse_target_url)]
    pub target_url: String,
    /// Directory of the mounted signing Secret (one file per key).
    #[arg(long, env = "WEBHOOK_SECRET_DIR")]
    pub secret_dir: PathBuf,
}

/// Accepts absolute http(s) URLs with a host.
pub fn parse_target_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL has no host".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_url_needs_scheme_and_host() {
        assert!(parse_target_url("http://handler:8080/webhooks/abc").is_ok());
        assert!(parse_target_url("https://example.com").is_ok());
        for bad in ["handler:8080", "ftp://x", "http://", "https:///path"] {
            assert!(parse_target_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
