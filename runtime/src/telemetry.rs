//! Logging set-up shared by every binary.

use std::str::FromStr;

use thiserror::Error;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for containers and log shippers.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

#[derive(Debug, Error)]
#[error("unknown log format {0:?}: expected \"json\" or \"text\"")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

/// Installs the global `tracing` subscriber. The filter comes from `RUST_LOG`,
/// defaulting to `info`. (`traces::init` installs it with spans exported too.)
pub fn init(format: LogFormat) {
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::registry()
        .with(log_layer(format, std::io::stderr))
        .try_init();
}

/// The layer that writes log lines in `format` to `writer`, filtered by `RUST_LOG`
/// (default `info`) on its own, so the filter does not decide which spans are exported.
pub(crate) fn log_layer<W>(format: LogFormat, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => layer.with_filter(filter).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_formats_and_names_the_bad_one() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        let err = "yaml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(err.contains("yaml"), "{err}");
    }
}
