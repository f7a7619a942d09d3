//! The `kraken_exporter` command: parse flags, set up logging, run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kraken_exporter::app::{poll_all_once, Application};
use kraken_exporter::config::Settings;
use kraken_exporter::telemetry::{self, LogFormat};
use kraken_exporter::web_config::WebConfig;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("BUILD_GIT_REVISION"),
    ", rustc ",
    env!("BUILD_RUSTC_VERSION"),
    ")"
);

/// Prometheus exporter for Kraken account balances.
#[derive(Parser, Debug)]
#[command(name = "kraken_exporter", version, long_version = LONG_VERSION, about)]
struct Cli {
    /// Configuration file (TOML); KRAKEN_EXPORTER_* environment variables override its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to serve /metrics, /health and /ready on.
    #[arg(
        long = "web.listen-address",
        value_name = "HOST:PORT",
        default_value = "0.0.0.0:9877"
    )]
    listen_address: String,

    /// Prometheus exporter-toolkit web configuration (YAML): TLS, basic auth, response headers.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,

    /// Poll a simulated Kraken with generated keys instead of real accounts (no credentials needed).
    #[arg(long)]
    demo: bool,

    /// Poll every account once, print the metrics to stdout and exit 0 if all polls succeeded, 1 if not.
    #[arg(long)]
    once: bool,

    /// Load and validate the configuration, print a summary without secrets, and exit.
    #[arg(long = "check-config")]
    check_config: bool,

    /// Log line format; the level comes from RUST_LOG (default info).
    #[arg(long = "log-format", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Exit code for configuration and start-up errors (1 is `--once`'s failed poll).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // Before any thread starts: the secret variable is removed from the process once read.
    let environment = kraken_exporter::config::take_environment();
    let cli = Cli::parse();
    if let Err(message) = telemetry::init(cli.log_format) {
        eprintln!("kraken_exporter: error: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kraken_exporter: error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    runtime.block_on(run(cli, environment))
}

async fn run(cli: Cli, environment: BTreeMap<String, String>) -> ExitCode {
    // In demo mode the simulator must outlive every poll, so it is held here until exit.
    let (_simulator, settings) = if cli.demo {
        match kraken_exporter::demo::start_demo().await {
            Ok((simulator, settings)) => {
                tracing::warn!(api_url = %settings.api_url, "DEMO MODE: polling a simulated Kraken with generated keys; every number is simulated");
                (Some(simulator), settings)
            }
            Err(err) => return fail(format!("cannot start the demo simulator: {err}")),
        }
    } else {
        match Settings::load(cli.config.as_deref(), environment) {
            Ok(settings) => (None, settings),
            Err(err) => return fail(err.to_string()),
        }
    };

    let web = match cli
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
    {
        Ok(web) => web.unwrap_or_default(),
        Err(err) => return fail(err.to_string()),
    };

    if cli.check_config {
        println!(
            "configuration OK: {}; web: tls {}, basic auth users {}",
            settings.summary(),
            if web.tls.is_some() { "on" } else { "off" },
            web.basic_auth_users.len()
        );
        return ExitCode::SUCCESS;
    }

    if cli.once {
        return match poll_all_once(&settings).await {
            Ok((text, failures)) => {
                print!("{text}");
                for (account, err) in &failures {
                    eprintln!(
                        "kraken_exporter: account {account:?}: {} ({}): {}",
                        err.reason,
                        err.message,
                        err.reason.hint()
                    );
                }
                if failures.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => fail(format!("{err:#}")),
        };
    }

    tracing::info!(version = env!("CARGO_PKG_VERSION"), settings = %settings.summary(), "starting kraken_exporter");
    for account in &settings.accounts {
        tracing::info!(
            account = %account.name,
            api_key = %key_hint(secrecy::ExposeSecret::expose_secret(&account.api_key)),
            thresholds = account.min_available.len(),
            "account configured"
        );
    }
    let app = match Application::build_with_web(&settings, &cli.listen_address, web).await {
        Ok(app) => app,
        Err(err) => return fail(format!("{err:#}")),
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(format!("{err:#}")),
    }
}

/// The last four characters of an API key, enough to tell keys apart in a log and useless to anyone else.
fn key_hint(api_key: &str) -> String {
    let chars: Vec<char> = api_key.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("...{tail}")
}

fn fail(message: String) -> ExitCode {
    eprintln!("kraken_exporter: error: {message}");
    ExitCode::from(EXIT_CONFIG)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
