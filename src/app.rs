//! Wiring: settings -> clients -> pollers -> metrics -> server, with an explicit lifecycle, and the
//! three things the command does ([`launch`]): serve, `--once`, `--check-config`.
//!
//! [`Application::build`] binds the port and prepares everything without starting work, so tests can
//! learn the port first; [`Application::run_until_stopped`] runs pollers and server until the shutdown
//! future resolves, then stops the pollers and lets in-flight responses finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::collectors::Note;
use crate::config::Settings;
use crate::http::server::DEFAULT_TELEMETRY_PATH;
use crate::http::web_config::WebConfig;
use crate::kraken::PollError;
use crate::polling::poller::AccountPoller;
pub use crate::polling::reload::ReloadSource;
use crate::polling::reload::{apply_reloads, reload_on_sighup};
use crate::polling::running::{Outputs, Running};
use crate::polling::schedule::MAX_CONCURRENT_POLLS;

/// A built, not yet running exporter.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    outputs: Outputs,
    settings: Settings,
    options: ServeOptions,
    reload: ReloadSource,
}

/// How the exporter serves: the web configuration and the flags of the HTTP side.
#[derive(Debug)]
pub struct ServeOptions {
    pub web: WebConfig,
    /// The path of the metrics (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// Whether `POST /-/reload` reloads the configuration (`--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            web: WebConfig::default(),
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            enable_lifecycle: false,
        }
    }
}

impl Application {
    /// Binds `listen_address` (`HOST:PORT`; port 0 picks a free one) and prepares the pollers.
    pub async fn build(settings: &Settings, listen_address: &str) -> anyhow::Result<Self> {
        Self::build_with(settings, listen_address, ServeOptions::default(), None).await
    }

    /// As [`Application::build`], serving with `options`; a reload (SIGHUP, `POST /-/reload`) reads
    /// `reload`, or applies `settings` again when there is none.
    pub async fn build_with(
        settings: &Settings,
        listen_address: &str,
        options: ServeOptions,
        reload: Option<ReloadSource>,
    ) -> anyhow::Result<Self> {
        let names: Vec<&str> = settings.accounts.iter().map(|a| a.name.as_str()).collect();
        let outputs = Outputs::new(&names);
        // `:9877`, as node_exporter's users write it: every address.
        let listen_address = match listen_address.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => listen_address.to_string(),
        };
        let listen_address = listen_address.as_str();
        let listener = TcpListener::bind(listen_address).await.with_context(|| {
            format!("cannot listen on {listen_address}; pick a free HOST:PORT with --web.listen-address")
        })?;
        let local_addr = listener.local_addr()?;
        let reload = reload.unwrap_or_else(|| {
            let same = settings.clone();
            Box::new(move || Ok(same.clone()))
        });
        Ok(Self {
            listener,
            local_addr,
            outputs,
            settings: settings.clone(),
            options,
            reload,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves and polls until `shutdown` resolves; reloads the configuration on SIGHUP and, with the
    /// lifecycle API on, on `POST /-/reload`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut running = Running::new(self.outputs.clone());
        running.start(&self.settings).await?;
        let (reloads, reload_requests) = crate::polling::reload::channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(apply_reloads(
            running,
            self.reload,
            Arc::clone(&self.outputs.metrics),
            reload_requests,
            stop_rx.clone(),
        ));
        let hangups = tokio::spawn(reload_on_sighup(reloads.clone(), stop_rx));
        tracing::info!(
            address = %self.local_addr,
            path = %self.options.telemetry_path,
            tls = self.options.web.tls.is_some(),
            basic_auth = !self.options.web.basic_auth_users.is_empty(),
            lifecycle = self.options.enable_lifecycle,
            "serving metrics"
        );
        let router = crate::http::server::router(
            self.outputs.metrics,
            self.outputs.readiness,
            &self.options.web,
            &crate::http::server::Routes {
                telemetry_path: self.options.telemetry_path.clone(),
                reloads: self.options.enable_lifecycle.then_some(reloads),
                status: Some(self.outputs.status),
            },
        );
        crate::http::listener::serve(
            self.listener,
            router,
            self.options.web.tls.clone(),
            async move {
                shutdown.await;
                tracing::info!("shutting down: polling stopped, finishing in-flight responses");
                let _ = stop_tx.send(true);
            },
        )
        .await;
        let _ = supervisor.await;
        let _ = hangups.await;
        Ok(())
    }
}

/// What `--once` learnt: the exposition text, each account's failure, and what the endpoints say an
/// operator should read (each key's permissions), by account.
pub type OnceResult = (String, Vec<(String, PollError)>, Vec<(String, Note)>);

/// Polls every account once, concurrently; returns the exposition text, the failures and the notes.
/// An account that holds nothing yet is a success (the poller logs it).
pub async fn poll_all_once(settings: &Settings) -> anyhow::Result<OnceResult> {
    let outputs = Outputs::new(&[]);
    let crate::polling::running::Parts {
        pollers, prices, ..
    } = crate::polling::running::build(
        settings,
        &crate::polling::running::http_for(settings)?,
        &outputs,
        &Default::default(),
    );
    if let Some(mut prices) = prices {
        // Values need prices; a failure here costs the values, not the balances or the exit code.
        if let Err(err) = prices.refresh().await {
            tracing::warn!(reason = %err.reason, error = %err.message, "cannot read prices; balances are printed without values");
            let families = &outputs.families.valuation;
            outputs
                .metrics
                .update(|metrics| families.record_refresh(metrics, false));
        }
    }
    let failures = poll_each_once(pollers)
        .await
        .into_iter()
        .filter_map(|(account, result)| result.err().map(|err| (account, err)))
        .collect();
    Ok((
        outputs.metrics.render_text(),
        failures,
        outputs.status.notes(),
    ))
}

async fn poll_each_once(pollers: Vec<AccountPoller>) -> Vec<(String, Result<usize, PollError>)> {
    let limiter = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
    let tasks: Vec<_> = pollers
        .into_iter()
        .map(|mut poller| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let _permit = limiter.acquire().await;
                let result = poller.poll_once().await;
                (poller.account().to_string(), result)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(result) = task.await {
            results.push(result);
        }
    }
    results
}

/// `--check-config`'s look at Kraken's public asset list (no key needed): a warning per threshold on
/// an asset Kraken does not list, or a note that the list could not be read (offline checks pass).
async fn check_threshold_assets(settings: &Settings) -> Vec<String> {
    let thresholds = crate::collectors::threshold_assets(&settings.accounts);
    if thresholds.is_empty() {
        return Vec::new();
    }
    let timeout = settings
        .request_timeout
        .min(std::time::Duration::from_secs(5));
    let assets = match crate::kraken::client::http_client(timeout) {
        Ok(http) => {
            crate::kraken::public::PublicClient::new(http, &settings.api_url)
                .assets()
                .await
        }
        Err(err) => return vec![format!("note: threshold assets not checked: {err}")],
    };
    match assets {
        Ok(assets) => {
            let listed =
                crate::kraken::assets::listed_labels(crate::kraken::public::altnames(&assets));
            crate::collectors::unlisted_threshold_assets(&thresholds, &listed)
                .into_iter()
                .map(|warning| format!("warning: {warning}"))
                .collect()
        }
        Err(err) => vec![format!(
            "note: threshold assets not checked against Kraken's asset list ({}: {}); the exporter checks them when it starts",
            err.reason, err.message
        )],
    }
}

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code of `--once` when a poll failed.
pub const EXIT_POLL_FAILED: u8 = 1;
/// Exit code for configuration and start-up errors.
pub const EXIT_CONFIG: u8 = 2;

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poll and serve until SIGTERM or SIGINT.
    Serve,
    /// `--once`: poll every account once, print the metrics, exit 0 if all polls succeeded, 1 if not.
    Once,
    /// `--check-config`: validate, print a summary without secrets, exit.
    CheckConfig,
}

/// Everything the command line gives the application.
#[derive(Debug)]
pub struct Launch {
    pub config_file: Option<PathBuf>,
    /// The process environment, taken once at start ([`crate::config::take_environment`]).
    pub environment: BTreeMap<String, String>,
    pub demo: bool,
    pub web_config_file: Option<PathBuf>,
    pub listen_address: String,
    /// `--web.telemetry-path`.
    pub telemetry_path: String,
    /// `--web.enable-lifecycle`.
    pub enable_lifecycle: bool,
    pub mode: Mode,
}

/// Runs what `launch` asks for and returns the process exit code.
pub async fn launch(launch: Launch) -> u8 {
    // In demo mode the simulator must outlive every poll, so it is held here until exit.
    let (_simulator, settings) = if launch.demo {
        match crate::demo::start_demo().await {
            Ok((simulator, settings)) => {
                // Said, not warned: a first look should not teach that warnings are to be ignored.
                tracing::info!(api_url = %settings.api_url, "DEMO MODE: polling a simulated Kraken with generated keys; every number is simulated");
                (Some(simulator), settings)
            }
            Err(err) => return fail(format!("cannot start the demo simulator: {err}")),
        }
    } else {
        match crate::collectors::load_settings(
            launch.config_file.as_deref(),
            launch.environment.clone(),
        ) {
            Ok(settings) => (None, settings),
            Err(err) => return fail(err.to_string()),
        }
    };

    if let Err(message) = crate::http::server::check_telemetry_path(&launch.telemetry_path) {
        return fail(message);
    }
    let web = match launch
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
    {
        Ok(web) => web.unwrap_or_default(),
        Err(err) => return fail(err.to_string()),
    };

    if launch.mode == Mode::CheckConfig {
        println!(
            "configuration OK: {}; web: tls {}, basic auth users {}",
            settings.summary(),
            if web.tls.is_some() { "on" } else { "off" },
            web.basic_auth_users.len()
        );
        for account in &settings.accounts {
            println!("  {}", crate::collectors::account_summary(account));
        }
        for warning in crate::collectors::rate_warnings(&settings) {
            eprintln!("kraken_exporter: warning: {warning}");
        }
        for warning in check_threshold_assets(&settings).await {
            eprintln!("kraken_exporter: {warning}");
        }
        return EXIT_OK;
    }

    if launch.mode == Mode::Once {
        return match poll_all_once(&settings).await {
            Ok((text, failures, notes)) => {
                print!("{text}");
                // What an operator should read of the answers (each key's permissions), in the log.
                for (account, note) in &notes {
                    if note.alarming {
                        tracing::warn!(account, "{}", note.text);
                    } else {
                        tracing::info!(account, "{}", note.text);
                    }
                }
                for (account, err) in &failures {
                    eprintln!(
                        "kraken_exporter: account {account:?}: {} ({}): {}",
                        err.reason,
                        err.message,
                        err.reason.hint()
                    );
                }
                if failures.is_empty() {
                    EXIT_OK
                } else {
                    EXIT_POLL_FAILED
                }
            }
            Err(err) => fail(format!("{err:#}")),
        };
    }

    tracing::info!(version = env!("CARGO_PKG_VERSION"), settings = %settings.summary(), "starting kraken_exporter");
    for account in &settings.accounts {
        tracing::info!(
            summary = %crate::collectors::account_summary(account),
            "account configured"
        );
    }
    crate::collectors::log_rate_warnings(&settings);
    // A reload reads the same sources again: the file and the environment taken at start. The demo
    // has no file: a reload applies its settings again.
    let reload: Option<ReloadSource> = match (launch.demo, launch.config_file) {
        (true, _) => None,
        (false, file) => {
            let environment = launch.environment;
            Some(Box::new(move || {
                crate::collectors::load_settings(file.as_deref(), environment.clone())
                    .map_err(|e| e.to_string())
            }))
        }
    };
    let options = ServeOptions {
        web,
        telemetry_path: launch.telemetry_path,
        enable_lifecycle: launch.enable_lifecycle,
    };
    let app =
        match Application::build_with(&settings, &launch.listen_address, options, reload).await {
            Ok(app) => app,
            Err(err) => return fail(format!("{err:#}")),
        };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => EXIT_OK,
        Err(err) => fail(format!("{err:#}")),
    }
}

fn fail(message: String) -> u8 {
    eprintln!("kraken_exporter: error: {message}");
    EXIT_CONFIG
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
