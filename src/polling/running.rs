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
use crate::config::AccountSettings;
use crate::config::Settings;
use crate::http::readiness::Readiness;
use crate::http::status::Status;
use crate::kraken::client::{http_client, NonceSequence};
use crate::kraken::public::PublicClient;
use crate::kraken::KrakenClient;
use crate::metrics::Metrics;
use crate::polling::poller::{AccountPoller, KeyPacing, NotBefore};
use crate::polling::schedule::{first_polls, PollTiming, MAX_CONCURRENT_POLLS};
use crate::valuation::prices::PriceRefresher;
use crate::valuation::Valuation;

/// What each API key keeps across reloads, by key (its SHA-256, so no second copy of the key is
/// kept): its nonce sequence, and when its account may be polled next (so a reload never polls a key
/// earlier than its schedule and backoff allow).
#[derive(Default)]
pub struct NonceBook(HashMap<[u8; 32], (NonceSequence, NotBefore)>);

impl NonceBook {
    fn entry_for(&self, api_key: &str) -> (NonceSequence, NotBefore) {
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
    /// What the landing page shows of each account.
    pub status: Arc<Status>,
    /// Kraken's asset names and pairs, so a reload does not ask for them again.
    pub market: Arc<crate::valuation::prices::MarketCache>,
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
            status: Arc::new(Status::default()),
            market: Arc::default(),
        }
    }
}

/// How to make one account's poller, again after its task died.
pub struct PollerRecipe {
    account: AccountSettings,
    /// The settings every account shares (URLs, limits, intervals), without the accounts.
    settings: Arc<Settings>,
    timing: PollTiming,
    http: reqwest::Client,
    nonce: NonceSequence,
    /// The sequence of the account's futures key, if it has one (unused otherwise).
    futures_nonce: NonceSequence,
    /// When each of its keys may be called next.
    pacing: KeyPacing,
    shared: collectors::Shared,
    outputs: Outputs,
}

impl PollerRecipe {
    /// The account's poller: its client (continuing the key's nonce sequence) and its collectors.
    pub fn make(&self) -> AccountPoller {
        let account = &self.account;
        let client = KrakenClient::new(
            self.http.clone(),
            &self.settings.api_url,
            account.api_key.clone(),
            account.api_secret.clone(),
        )
        .continuing(self.nonce.clone())
        .with_otp(account.api_otp.clone());
        let context = collectors::Context {
            http: &self.http,
            settings: &self.settings,
            futures_nonce: &self.futures_nonce,
            shared: &self.shared,
        };
        AccountPoller::new(
            account.name.clone(),
            client,
            collectors::for_account(account, &context, &self.outputs.families),
            Arc::clone(&self.outputs.metrics),
            Arc::clone(&self.outputs.readiness),
            self.timing,
        )
        .pacing(self.pacing.clone())
        .reporting(Arc::clone(&self.outputs.status))
    }

    pub fn account(&self) -> &str {
        &self.account.name
    }
}

/// What one configuration runs, built but not started.
pub struct Parts {
    pub pollers: Vec<AccountPoller>,
    /// One per poller, in the same order.
    pub recipes: Vec<PollerRecipe>,
    pub prices: Option<PriceRefresher>,
    /// The nonce sequence of every key of the configuration.
    pub nonces: NonceBook,
}

/// The HTTP client of a configuration (its `request_timeout`), shared by all its calls.
pub fn http_for(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    http_client(settings.request_timeout).context("cannot create the HTTP client")
}

/// The schedule of every poller of a configuration.
fn timing_of(settings: &Settings) -> PollTiming {
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
        names: Arc::clone(&outputs.market.names),
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
            Arc::clone(&outputs.market),
        )
        .checking(threshold_check(settings))
    });
    let timing = timing_of(settings);
    let shared_settings = Arc::new(Settings {
        accounts: Vec::new(),
        ..settings.clone()
    });
    let mut next_nonces = NonceBook::default();
    let recipes: Vec<PollerRecipe> = settings
        .accounts
        .iter()
        .map(|account| {
            let key = secrecy::ExposeSecret::expose_secret(&account.api_key);
            let (nonce, not_before) = nonces.entry_for(key);
            next_nonces
                .0
                .insert(fingerprint(key), (nonce.clone(), Arc::clone(&not_before)));
            // A futures key has its own sequence and pacing, kept by its own fingerprint (keys are
            // distinct).
            let (futures_nonce, futures_not_before) =
                account.futures.as_ref().map_or_else(Default::default, |f| {
                    let key = secrecy::ExposeSecret::expose_secret(&f.api_key);
                    let entry = nonces.entry_for(key);
                    next_nonces.0.insert(fingerprint(key), entry.clone());
                    entry
                });
            PollerRecipe {
                account: account.clone(),
                settings: Arc::clone(&shared_settings),
                futures_nonce,
                timing,
                http: http.clone(),
                nonce,
                pacing: KeyPacing {
                    spot: not_before,
                    own: futures_not_before,
                },
                shared: shared.clone(),
                outputs: outputs.clone(),
            }
        })
        .collect();
    let pollers: Vec<AccountPoller> = recipes.iter().map(PollerRecipe::make).collect();
    outputs.metrics.update(|metrics| {
        metrics.set_accounts(&names);
        for poller in &pollers {
            poller.configure(metrics);
        }
    });
    let endpoints: Vec<(&str, Vec<&'static str>)> = pollers
        .iter()
        .map(|poller| (poller.account(), poller.endpoints()))
        .collect();
    outputs.status.configure(&endpoints);
    Parts {
        pollers,
        recipes,
        prices,
        nonces: next_nonces,
    }
}

/// Warns about each threshold on an asset Kraken does not list, once Kraken's list is read.
fn threshold_check(settings: &Settings) -> crate::valuation::prices::OnListed {
    let thresholds = collectors::threshold_assets(&settings.accounts);
    Arc::new(move |listed| {
        for warning in collectors::unlisted_threshold_assets(&thresholds, listed) {
            tracing::warn!("{warning}");
        }
    })
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
            recipes,
            prices,
            nonces,
            ..
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
        // Every task's restart counter from 0, in one update.
        self.outputs.metrics.update(|metrics| {
            for recipe in &recipes {
                metrics.declare_task(&format!("poller/{}", recipe.account()));
            }
            if prices.is_some() {
                metrics.declare_task("prices");
            }
        });
        let (stop, stopped) = watch::channel(false);
        let firsts = first_polls(
            tokio::time::Instant::now(),
            settings.poll_interval,
            recipes.len(),
        );
        self.tasks = recipes
            .into_iter()
            .zip(firsts)
            .map(|(recipe, first)| {
                let limiter = Arc::clone(&self.limiter);
                let stopped_poller = stopped.clone();
                let account = recipe.account().to_string();
                // Every start, the first included, makes its poller afresh from the recipe.
                let start = move || {
                    let mut poller = recipe.make();
                    // A key that stays is not called before its schedule or backoff allows.
                    poller.start_at(first);
                    crate::polling::schedule::run(
                        poller,
                        Arc::clone(&limiter),
                        stopped_poller.clone(),
                    )
                };
                let task = format!("poller/{account}");
                tokio::spawn(supervise(
                    task,
                    Some(account),
                    self.outputs.clone(),
                    stopped.clone(),
                    start,
                ))
            })
            .collect();
        if let Some(prices) = prices {
            let interval = settings.price_interval;
            let stopped_prices = stopped.clone();
            // Every start runs a fresh clone of the refresher as it was built.
            let start = move || prices.clone().run(interval, stopped_prices.clone());
            self.tasks.push(tokio::spawn(supervise(
                "prices".to_string(),
                None,
                self.outputs.clone(),
                stopped,
                start,
            )));
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

/// How long a task that died waits before it is started again: doubling from 1 s, at most a minute.
fn restart_delay(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Runs the task `start` makes until `stop` changes; a task that ends any other way (a panic, say)
/// is logged, counted in `kraken_exporter_task_restarts_total{task}` and started again after
/// [`restart_delay`]. Meanwhile the account it polls, if any, shows `kraken_up` 0 and is not ready.
async fn supervise<F, Fut>(
    task: String,
    account: Option<String>,
    outputs: Outputs,
    mut stop: watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut() -> Fut + Send,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut restarts = 0u32;
    loop {
        let mut child = AbortOnDrop(tokio::spawn(start()));
        let ended = child.await_task().await;
        if *stop.borrow() {
            return;
        }
        restarts += 1;
        let wait = restart_delay(restarts);
        tracing::error!(
            task = %task,
            why = %ended,
            restarts,
            restart_in = %humantime::format_duration(wait),
            "a task ended unexpectedly; it is started again"
        );
        outputs.metrics.update(|m| {
            m.record_task_restart(&task);
            if let Some(account) = &account {
                m.mark_down(account);
            }
        });
        if let Some(account) = &account {
            outputs.readiness.mark_waiting(account);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A task that is aborted when its handle is dropped (so an aborted supervisor takes its task along).
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task; what ended it, in words.
    async fn await_task(&mut self) -> String {
        match (&mut self.0).await {
            Ok(()) => "it returned".to_string(),
            Err(err) if err.is_panic() => {
                let payload = err.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                format!("it panicked: {message}")
            }
            Err(_) => "it was cancelled".to_string(),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_counted_shown_down_and_started_again() {
        let outputs = Outputs::new(&["a"]);
        outputs.readiness.mark_succeeded("a");
        outputs.metrics.update(|m| {
            m.record_poll("a", Duration::from_millis(5), None);
        });
        let (stop, stopped) = watch::channel(false);
        let starts = Arc::new(AtomicU32::new(0));
        let start = {
            let starts = Arc::clone(&starts);
            let stopped = stopped.clone();
            move || {
                let attempt = starts.fetch_add(1, Ordering::SeqCst);
                let mut stopped = stopped.clone();
                async move {
                    if attempt == 0 {
                        panic!("injected: the first run dies");
                    }
                    let _ = stopped.changed().await;
                }
            }
        };
        let supervisor = tokio::spawn(supervise(
            "poller/a".to_string(),
            Some("a".to_string()),
            outputs.clone(),
            stopped,
            start,
        ));
        // The panic is seen at once; the restart waits a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = outputs.metrics.render_text();
        assert!(
            text.contains(r#"kraken_exporter_task_restarts_total{task="poller/a"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"kraken_up{account="a"} 0"#), "{text}");
        assert_eq!(outputs.readiness.waiting(), ["a"]);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "started again after 1 s");
        // A stop is not a death: no restart, the supervisor ends.
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert!(outputs
            .metrics
            .render_text()
            .contains(r#"kraken_exporter_task_restarts_total{task="poller/a"} 1"#));
    }

    #[test]
    fn restarts_wait_longer_each_time_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
