//! The `kraken_exporter` command: parse flags, set up logging, dispatch to [`app::launch`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kraken_exporter::app::{self, Launch, Mode};
use kraken_exporter::telemetry::{self, LogFormat, LogLevel};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("BUILD_GIT_REVISION"),
    ", rustc ",
    env!("BUILD_RUSTC_VERSION"),
    ")"
);

/// Every route, for `--help`.
const ROUTES: &str = "\
Routes:
  /               status page (reloads every 10 s): each account's threshold closest to
                  paging, red when below; endpoints up or down with reasons and hints
  /metrics        the metrics (--web.telemetry-path moves it)
  /health         200 while the process serves
  /ready          200 once every account has had a successful poll
  /-/reload       POST or PUT: reload the configuration (with --web.enable-lifecycle)";

/// Prometheus exporter for Kraken account balances.
#[derive(Parser, Debug)]
#[command(
    name = "kraken_exporter",
    version = LONG_VERSION,
    about,
    after_help = ROUTES
)]
struct Cli {
    /// Configuration file (TOML); KRAKEN_EXPORTER_* environment variables override its keys.
    #[arg(long = "config.file", visible_alias = "config", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Address to serve the metrics, /health and /ready on; `:PORT` listens on every address.
    #[arg(
        long = "web.listen-address",
        value_name = "HOST:PORT",
        default_value = "0.0.0.0:9877"
    )]
    listen_address: String,

    /// Path under which the metrics are served.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = kraken_exporter::http::server::DEFAULT_TELEMETRY_PATH
    )]
    telemetry_path: String,

    /// Prometheus exporter-toolkit web configuration (YAML): TLS, basic auth, response headers.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,

    /// Reload the configuration on POST (or PUT) /-/reload; without it that path answers 403. SIGHUP
    /// always reloads.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,

    /// Poll a simulated Kraken with generated keys instead of real accounts (no credentials needed).
    #[arg(long)]
    demo: bool,

    /// Poll every account once, print the metrics to stdout and exit 0 if all polls succeeded, 1 if not.
    #[arg(long)]
    once: bool,

    /// Load and validate the configuration, print a summary without secrets, and exit.
    #[arg(long = "check-config")]
    check_config: bool,

    /// Log level (any case); RUST_LOG, when set, wins (for per-module filters).
    #[arg(
        long = "log.level",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    log_level: LogLevel,

    /// Log line format.
    #[arg(
        long = "log.format",
        visible_alias = "log-format",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    kraken_exporter::allocator::tune();
    kraken_exporter::config::forbid_core_dumps();
    // Before any thread starts: the secret variable is removed from the process once read.
    let environment = kraken_exporter::config::take_environment();
    let cli = Cli::parse();
    let rust_log = environment.get("RUST_LOG").map(String::as_str);
    if let Err(message) = telemetry::init(cli.log_format, cli.log_level, rust_log) {
        eprintln!("kraken_exporter: error: {message}");
        return ExitCode::from(app::EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kraken_exporter: error: cannot start the async runtime: {err}");
            return ExitCode::from(app::EXIT_CONFIG);
        }
    };
    let launch = Launch {
        config_file: cli.config_file,
        environment,
        demo: cli.demo,
        web_config_file: cli.web_config_file,
        listen_address: cli.listen_address,
        telemetry_path: cli.telemetry_path,
        enable_lifecycle: cli.enable_lifecycle,
        mode: if cli.check_config {
            Mode::CheckConfig
        } else if cli.once {
            Mode::Once
        } else {
            Mode::Serve
        },
    };
    let code = runtime.block_on(app::launch(launch));
    // A read stuck on a hung mount must not hold the exit: blocking threads get a moment, no more.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    ExitCode::from(code)
}
