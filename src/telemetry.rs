//! Logging set-up, once per process: `--log.level` decides the level (default `info`) unless `RUST_LOG`
//! is set, which wins (it allows per-module filters); `--log.format` decides text or JSON lines; logs go
//! to stderr so `--once` keeps stdout for the exposition text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `--log.level` values, as the Prometheus exporters name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Installs the global subscriber. Returns an error line when `rust_log` (the `RUST_LOG` variable)
/// cannot be parsed.
pub fn init(format: LogFormat, level: LogLevel, rust_log: Option<&str>) -> Result<(), String> {
    let filter = match rust_log {
        Some(value) if !value.trim().is_empty() => EnvFilter::try_new(value.trim()).map_err(|e| {
            format!("RUST_LOG={value:?} is not a valid log filter ({e}); use e.g. RUST_LOG=info or RUST_LOG=kraken_exporter=debug, or --log.level")
        })?,
        _ => EnvFilter::new(level.directive()),
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
