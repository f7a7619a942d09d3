//! The running configuration: one poll task per account and the price task, built from [`Settings`] and
//! replaced as a whole by a reload.
//!
//! A reload builds the new configuration's clients first (so a failure there changes nothing), stops the
//! tasks of the old one (a request in flight is abandoned), makes the metrics and `/ready` follow the new
//! account list (removed accounts lose every series; thresholds are replaced; with other quote
//! currencies, values and prices are cleared until the next prices), and starts the new tasks. Each API
//! key keeps its nonce sequence across reloads, so a key that stays never sends a nonce Kraken has
//! seen. Every account's schedule restarts, spread over one interval, and backoff starts afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::collectors;
use crate::config::Settings;
use crate::kraken::assets::AssetNames;
use crate::kraken::client::{http_client, NonceSequence};
use crate::kraken::public::PublicClient;
use crate::kraken::KrakenClient;
use crate::metrics::Metrics;
use crate::poller::{first_polls, AccountPoller, PollTiming, MAX_CONCURRENT_POLLS};
use crate::prices::PriceRefresher;
use crate::readiness::Readiness;
use crate::valuation::Valuation;

/// Nonce sequences by API key (its SHA-256, so no second copy of the key is kept).
#[derive(Default)]
pub struct NonceBook(HashMap<[u8; 32], NonceSequence>);

impl NonceBook {
    fn sequence_for(&self, api_key: &str) -> NonceSequence {
        self.0
            .get(&fingerprint(api_key))
            .cloned()
            .unwrap_or_default()
    }
}

fn fingerprint(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

/// What every configuration writes to, made once and kept across reloads: the metrics with every
/// endpoint's families registered on them, and readiness.
#[derive(Clone)]
pub struct Outputs {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub families: Arc<collectors::Registered>,
}

impl Outputs {
    /// The metrics and readiness of `accounts`, with every endpoint's families registered.
    pub fn new(accounts: &[&str]) -> Self {
        let metrics = Arc::new(Metrics::new(accounts));
        let families = Arc::new(collectors::Registered::on(&metrics));
        Self {
            metrics,
            readiness: Arc::new(Readiness::new(accounts)),
            families,
        }
    }
}

/// What one configuration runs, built but not started.
pub struct Parts {
    pub pollers: Vec<AccountPoller>,
    pub prices: Option<PriceRefresher>,
    /// The nonce sequence of every key of the configuration.
    pub nonces: NonceBook,
}

/// The HTTP client of a configuration (its `request_timeout`), shared by all its calls.
pub fn http_for(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    http_client(settings.request_timeout).context("cannot create the HTTP client")
}

/// The schedule of every poller of a configuration.
pub fn timing_of(settings: &Settings) -> PollTiming {
    PollTiming {
        interval: settings.poll_interval,
        max_backoff: settings.max_backoff,
        stale_after: settings.stale_after,
    }
}

/// Builds the pollers and the price task of `settings` on `outputs`, calling through `http` and
/// continuing the nonce sequences in `nonces`; makes the metrics and readiness follow the configured
/// accounts and the endpoints each polls. The one way pollers are made, for the exporter and the
/// tests alike.
pub fn build(
    settings: &Settings,
    http: &reqwest::Client,
    outputs: &Outputs,
    nonces: &NonceBook,
) -> Parts {
    let names: Vec<&str> = settings.accounts.iter().map(|a| a.name.as_str()).collect();
    outputs.readiness.set_accounts(&names);
    let shared = collectors::Shared {
        names: Arc::new(AssetNames::default()),
        valuation: (!settings.quote_currencies.is_empty())
            .then(|| Arc::new(Valuation::new(settings.quote_currencies.clone()))),
        valuation_families: Arc::clone(&outputs.families.valuation),
    };
    let prices = shared.valuation.as_ref().map(|valuation| {
        PriceRefresher::new(
            PublicClient::new(http.clone(), &settings.api_url),
            Arc::clone(valuation),
            Arc::clone(&outputs.metrics),
            Arc::clone(&outputs.families.valuation),
            Arc::clone(&shared.names),
        )
    });
    let context = collectors::Context {
        rebase_multiplier: settings.rebase_multiplier,
        shared: &shared,
    };
    let timing = timing_of(settings);
    let mut next_nonces = NonceBook::default();
    let pollers: Vec<AccountPoller> = settings
        .accounts
        .iter()
        .map(|account| {
            let key = secrecy::ExposeSecret::expose_secret(&account.api_key);
            let nonce = nonces.sequence_for(key);
            next_nonces.0.insert(fingerprint(key), nonce.clone());
            let client = KrakenClient::new(
                http.clone(),
                &settings.api_url,
                account.api_key.clone(),
                account.api_secret.clone(),
            )
            .continuing(nonce)
            .with_otp(account.api_otp.clone());
            AccountPoller::new(
                account.name.clone(),
                client,
                collectors::for_account(account, &context, &outputs.families),
                Arc::clone(&outputs.metrics),
                Arc::clone(&outputs.readiness),
                timing,
            )
        })
        .collect();
    outputs.metrics.update(|metrics| {
        metrics.set_accounts(&names);
        for poller in &pollers {
            poller.configure(metrics);
        }
    });
    Parts {
        pollers,
        prices,
        nonces: next_nonces,
    }
}

/// The tasks of the current configuration.
pub(crate) struct Running {
    outputs: Outputs,
    limiter: Arc<Semaphore>,
    nonces: NonceBook,
    quotes: Option<Vec<String>>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn new(outputs: Outputs) -> Self {
        Self {
            outputs,
            limiter: Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS)),
            nonces: NonceBook::default(),
            quotes: None,
            stop: None,
            tasks: Vec::new(),
        }
    }

    /// Stops what runs (if anything) and starts `settings` in its place.
    pub(crate) async fn start(&mut self, settings: &Settings) -> anyhow::Result<()> {
        // Made before anything stops, so a failure leaves the running configuration alone.
        let http = http_for(settings)?;
        self.stop().await;
        let quotes_changed = self
            .quotes
            .as_ref()
            .is_some_and(|quotes| *quotes != settings.quote_currencies);
        let Parts {
            pollers,
            prices,
            nonces,
        } = build(settings, &http, &self.outputs, &self.nonces);
        if quotes_changed {
            // Values in the old quotes go; the next prices and polls value in the new ones.
            let families = &self.outputs.families.valuation;
            self.outputs.metrics.update(|metrics| {
                for account in &settings.accounts {
                    families.clear_values(metrics, &account.name);
                }
                families.set_prices(metrics, &[]);
            });
        }
        self.nonces = nonces;
        self.quotes = Some(settings.quote_currencies.clone());
        let timing = timing_of(settings);
        let (stop, stopped) = watch::channel(false);
        let firsts = first_polls(
            tokio::time::Instant::now(),
            settings.poll_interval,
            pollers.len(),
        );
        self.tasks = pollers
            .into_iter()
            .zip(firsts)
            .map(|(poller, first)| {
                tokio::spawn(crate::poller::run(
                    poller,
                    timing,
                    first,
                    Arc::clone(&self.limiter),
                    stopped.clone(),
                ))
            })
            .collect();
        if let Some(prices) = prices {
            self.tasks
                .push(tokio::spawn(prices.run(settings.price_interval, stopped)));
        }
        self.stop = Some(stop);
        Ok(())
    }

    /// Stops every task and waits for them (a request in flight is abandoned).
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                tracing::warn!("a poll task did not stop within 5 s; aborted");
                task.abort();
            }
        }
    }
}
