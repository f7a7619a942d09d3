//! Logging set-up, once per process: `RUST_LOG` decides the level (default `info`), `--log-format`
//! decides text or JSON lines; logs go to stderr so `--once` keeps stdout for the exposition text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Returns an error line when `RUST_LOG` cannot be parsed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(value.trim()).map_err(|e| {
            format!("RUST_LOG={value:?} is not a valid log filter ({e}); use e.g. RUST_LOG=info or RUST_LOG=kraken_exporter=debug")
        })?,
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}
