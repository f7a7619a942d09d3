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
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::collectors;
use crate::config::Settings;
use crate::kraken::assets::AssetNames;
use crate::kraken::client::http_client;
use crate::kraken::public::PublicClient;
use crate::kraken::{KrakenClient, PollError};
use crate::metrics::Metrics;
use crate::poller::{first_polls, AccountPoller, PollTiming, MAX_CONCURRENT_POLLS};
use crate::prices::PriceRefresher;
use crate::readiness::Readiness;
use crate::valuation::Valuation;
use crate::web_config::WebConfig;

/// A built, not yet running exporter.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    pollers: Vec<AccountPoller>,
    prices: Option<PriceRefresher>,
    price_interval: Duration,
    timing: PollTiming,
    web: WebConfig,
}

/// Everything a configuration runs: shared metrics and readiness, one poller per account, and the
/// price task when valuation is on.
pub struct Parts {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub pollers: Vec<AccountPoller>,
    pub prices: Option<PriceRefresher>,
}

/// Builds the [`Parts`] of a configuration, without starting anything.
pub fn build_pollers(settings: &Settings) -> anyhow::Result<Parts> {
    let names: Vec<&str> = settings.accounts.iter().map(|a| a.name.as_str()).collect();
    let metrics = Arc::new(Metrics::new(&names));
    metrics.update(|metrics| {
        for account in &settings.accounts {
            metrics.set_minimums(
                &account.name,
                &account.min_available,
                &account.min_spendable,
            );
        }
    });
    let readiness = Arc::new(Readiness::new(&names));
    let http = http_client(settings.request_timeout).context("cannot create the HTTP client")?;
    let shared = collectors::Shared {
        names: Arc::new(AssetNames::default()),
        valuation: (!settings.quote_currencies.is_empty())
            .then(|| Arc::new(Valuation::new(settings.quote_currencies.clone()))),
    };
    let prices = shared.valuation.as_ref().map(|valuation| {
        PriceRefresher::new(
            PublicClient::new(http.clone(), &settings.api_url),
            Arc::clone(valuation),
            Arc::clone(&metrics),
            Arc::clone(&shared.names),
        )
    });
    let pollers = settings
        .accounts
        .iter()
        .map(|account| {
            let client = KrakenClient::new(
                http.clone(),
                &settings.api_url,
                account.api_key.clone(),
                account.api_secret.clone(),
            );
            AccountPoller::new(
                account.name.clone(),
                client,
                collectors::for_account(settings.rebase_multiplier, &shared),
                Arc::clone(&metrics),
                Arc::clone(&readiness),
            )
        })
        .collect();
    Ok(Parts {
        metrics,
        readiness,
        pollers,
        prices,
    })
}

impl Application {
    /// Binds `listen_address` (`HOST:PORT`; port 0 picks a free one) and prepares the pollers.
    pub async fn build(settings: &Settings, listen_address: &str) -> anyhow::Result<Self> {
        Self::build_with_web(settings, listen_address, WebConfig::default()).await
    }

    /// As [`Application::build`], serving with TLS, authentication and headers from `web`.
    pub async fn build_with_web(
        settings: &Settings,
        listen_address: &str,
        web: WebConfig,
    ) -> anyhow::Result<Self> {
        let Parts {
            metrics,
            readiness,
            pollers,
            prices,
        } = build_pollers(settings)?;
        let listener = TcpListener::bind(listen_address).await.with_context(|| {
            format!("cannot listen on {listen_address}; pick a free HOST:PORT with --web.listen-address")
        })?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            metrics,
            readiness,
            pollers,
            prices,
            price_interval: settings.price_interval,
            timing: PollTiming {
                interval: settings.poll_interval,
                max_backoff: settings.max_backoff,
                stale_after: settings.stale_after,
            },
            web,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves and polls until `shutdown` resolves.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let first_polls = first_polls(
            tokio::time::Instant::now(),
            self.timing.interval,
            self.pollers.len(),
        );
        let limiter = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
        let mut poll_tasks: Vec<_> = self
            .pollers
            .into_iter()
            .zip(first_polls)
            .map(|(poller, first_poll)| {
                tokio::spawn(crate::poller::run(
                    poller,
                    self.timing,
                    first_poll,
                    Arc::clone(&limiter),
                    stop_rx.clone(),
                ))
            })
            .collect();
        if let Some(prices) = self.prices {
            poll_tasks.push(tokio::spawn(
                prices.run(self.price_interval, stop_rx.clone()),
            ));
        }
        tracing::info!(
            address = %self.local_addr,
            tls = self.web.tls.is_some(),
            basic_auth = !self.web.basic_auth_users.is_empty(),
            "serving /metrics"
        );
        let router = crate::server::router(self.metrics, self.readiness, &self.web);
        crate::listener::serve(self.listener, router, self.web.tls.clone(), async move {
            shutdown.await;
            tracing::info!("shutting down: polling stopped, finishing in-flight responses");
            let _ = stop_tx.send(true);
        })
        .await;
        for task in poll_tasks {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Polls every account once, concurrently; returns the exposition text and the failures.
pub async fn poll_all_once(
    settings: &Settings,
) -> anyhow::Result<(String, Vec<(String, PollError)>)> {
    let Parts {
        metrics,
        pollers,
        prices,
        ..
    } = build_pollers(settings)?;
    if let Some(mut prices) = prices {
        // Values need prices; a failure here costs the values, not the balances or the exit code.
        if let Err(err) = prices.refresh().await {
            tracing::warn!(reason = %err.reason, error = %err.message, "cannot read prices; balances are printed without values");
            metrics.update(|metrics| metrics.record_price_refresh(false));
        }
    }
    let results = poll_each_once(pollers).await;
    let failures = results
        .into_iter()
        .filter_map(|(account, result)| result.err().map(|err| (account, err)))
        .collect();
    Ok((metrics.render_text(), failures))
}

async fn poll_each_once(pollers: Vec<AccountPoller>) -> Vec<(String, Result<(), PollError>)> {
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
    pub mode: Mode,
}

/// Runs what `launch` asks for and returns the process exit code.
pub async fn launch(launch: Launch) -> u8 {
    // In demo mode the simulator must outlive every poll, so it is held here until exit.
    let (_simulator, settings) = if launch.demo {
        match crate::demo::start_demo().await {
            Ok((simulator, settings)) => {
                tracing::warn!(api_url = %settings.api_url, "DEMO MODE: polling a simulated Kraken with generated keys; every number is simulated");
                (Some(simulator), settings)
            }
            Err(err) => return fail(format!("cannot start the demo simulator: {err}")),
        }
    } else {
        match Settings::load(launch.config_file.as_deref(), launch.environment) {
            Ok(settings) => (None, settings),
            Err(err) => return fail(err.to_string()),
        }
    };

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
        return EXIT_OK;
    }

    if launch.mode == Mode::Once {
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
            account = %account.name,
            api_key = %key_hint(secrecy::ExposeSecret::expose_secret(&account.api_key)),
            thresholds = account.min_available.len(),
            "account configured"
        );
    }
    let app = match Application::build_with_web(&settings, &launch.listen_address, web).await {
        Ok(app) => app,
        Err(err) => return fail(format!("{err:#}")),
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => EXIT_OK,
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
