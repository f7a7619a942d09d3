//! Wiring: settings -> clients -> pollers -> metrics -> server, with an explicit lifecycle.
//!
//! [`Application::build`] binds the port and prepares everything without starting work, so tests can
//! learn the port first; [`Application::run_until_stopped`] runs pollers and server until the shutdown
//! future resolves, then stops the pollers and lets in-flight responses finish.

use std::future::Future;
use std::net::SocketAddr;
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
            metrics.set_minimums(&account.name, &account.min_available);
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
