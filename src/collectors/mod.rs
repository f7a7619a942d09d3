//! What each Kraken endpoint feeds into the metrics: one collector per endpoint, beside its request
//! and decoder in [`crate::kraken`], and the one table of endpoints, [`ENDPOINTS`] (as node_exporter's
//! collectors register in one table).
//!
//! An endpoint is its files (`kraken/<endpoint>.rs` for the request and the decoder, a collector
//! here with its families) plus one line in [`ENDPOINTS`]. Its entry says its Kraken method, the
//! permission the key needs, its cost on the rate counter, how its families are registered (once per
//! [`Metrics`]) and which accounts poll it. Every family it registers is owned by its method
//! ([`Scope`](crate::metrics::Scope)), which is how the generic machinery clears them: data when it
//! goes stale, data and thresholds when an account stops polling the endpoint or goes away.
//!
//! The poller of an account walks its collectors in the table's order, one call at a time (one nonce
//! sequence per key). A collector fetches (the network part, outside any lock) and computes
//! everything it will export; then it applies that inside the account's
//! [`Metrics::update`](crate::metrics::Metrics::update), together with the poll's own bookkeeping, so
//! a scrape never sees half of a poll. The first endpoint of the table holds the account's balances:
//! its outcome is `kraken_up`, readiness and the schedule's backoff. A failure of a later one never
//! touches the balances, `kraken_up` or the other endpoints; `kraken_endpoint_up{endpoint}` reports
//! each.

mod balance_ex;
mod earn_allocations;
mod futures_accounts;
mod trade_balance;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use balance_ex::{BalanceExCollector, BalanceFamilies};
pub use futures_accounts::FuturesFamilies;

use crate::config::AccountSettings;
use crate::kraken::assets::AssetNames;
use crate::kraken::{KrakenClient, PollError, RebaseMultiplier};
use crate::metrics::{Changes, Metrics};
use crate::prices::ValuationFamilies;
use crate::valuation::Valuation;

/// The future of one fetch: on success, how many items the answer had (for the log).
pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<usize, PollError>> + Send + 'a>>;

/// One endpoint's part of an account's poll.
pub trait Collector: Send {
    /// Kraken's method name (`BalanceEx`), for logs and the `endpoint` label.
    fn endpoint(&self) -> &'static str;
    /// The permission the key needs for this endpoint, named when Kraken refuses it.
    fn permission(&self) -> &'static str;
    /// Whether the endpoint is called with a key of its own (Kraken Futures), so a failure of the
    /// account's spot key does not keep it from being polled.
    fn own_key(&self) -> bool {
        false
    }
    /// What the operator can do about `err` (the log line's `hint`).
    fn hint(&self, err: &PollError) -> String {
        match err.reason {
            crate::kraken::ErrorReason::PermissionDenied => format!(
                "the key lacks the \"{}\" permission; add it to the key on Kraken (or turn this endpoint off)",
                self.permission()
            ),
            reason => reason.hint().to_string(),
        }
    }
    /// Exports what the account's configuration says about this endpoint (thresholds); called once
    /// when the configuration is applied.
    fn configure(&self, _account: &str, _metrics: &mut Changes<'_>) {}
    /// Calls the endpoint once and keeps what a successful answer will export.
    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a>;
    /// Sets the account's series from the last successful fetch.
    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>);
    /// Removes the account's data series of this endpoint (they went stale); thresholds stay.
    fn clear(&mut self, account: &str, metrics: &mut Changes<'_>) {
        metrics.clear_endpoint(account, self.endpoint(), false);
    }
}

/// An endpoint's families as registered, handed back to its collector constructor.
pub type RegisteredFamilies = Arc<dyn Any + Send + Sync>;

/// One line of the table of endpoints.
pub struct Endpoint {
    /// Kraken's method name, the `endpoint` label and the owner of the endpoint's families.
    pub method: &'static str,
    /// The permission the key needs, named in the log when Kraken refuses a call.
    pub permission: &'static str,
    /// Points one call costs on the spot key's rate counter (0: another key and budget).
    pub cost: u32,
    /// Registers the endpoint's families on the metrics, once per [`Metrics`].
    pub register: fn(&Metrics) -> RegisteredFamilies,
    /// The account's collector, if its configuration polls this endpoint.
    pub collector:
        fn(&AccountSettings, &Context<'_>, &RegisteredFamilies) -> Option<Box<dyn Collector>>,
}

/// Every endpoint, in the order an account polls them. The first is the account's balances: every
/// account polls it.
pub const ENDPOINTS: &[Endpoint] = &[
    balance_ex::ENDPOINT,
    trade_balance::ENDPOINT,
    earn_allocations::ENDPOINT,
    futures_accounts::ENDPOINT,
];

/// The families of every endpoint and of the valuation, registered once on one [`Metrics`] and kept
/// across reloads.
pub struct Registered {
    endpoints: Vec<RegisteredFamilies>,
    pub valuation: Arc<ValuationFamilies>,
}

impl Registered {
    /// Registers every family: the endpoints' in the table's order, then the valuation's.
    pub fn on(metrics: &Metrics) -> Self {
        let endpoints = ENDPOINTS
            .iter()
            .map(|endpoint| (endpoint.register)(metrics))
            .collect();
        Self {
            endpoints,
            valuation: Arc::new(ValuationFamilies::register(metrics)),
        }
    }
}

/// An endpoint's own families from what its [`Endpoint::register`] returned.
fn families_of<T: Send + Sync + 'static>(registered: &RegisteredFamilies) -> Arc<T> {
    Arc::clone(registered)
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("each endpoint's register and collector share one type"))
}

/// What the collectors of every account share: asset names learnt from Kraken, the valuation's
/// families and, when valuation is on, the prices.
#[derive(Clone)]
pub struct Shared {
    pub names: Arc<AssetNames>,
    pub valuation: Option<Arc<Valuation>>,
    pub valuation_families: Arc<ValuationFamilies>,
}

/// What a collector is made from besides its account.
pub struct Context<'a> {
    /// The configuration's HTTP client, for endpoints with a client of their own.
    pub http: &'a reqwest::Client,
    /// `futures_api_url`.
    pub futures_api_url: &'a str,
    /// The nonce sequence of the account's futures key (kept across reloads).
    pub futures_nonce: &'a crate::kraken::client::NonceSequence,
    pub rebase_multiplier: Option<RebaseMultiplier>,
    /// The most rows a balances answer may have (`max_assets`).
    pub max_assets: usize,
    pub shared: &'a Shared,
}

/// The collectors of one account, in the order they are polled: every line of [`ENDPOINTS`] whose
/// configuration asks for it.
pub fn for_account(
    account: &AccountSettings,
    context: &Context<'_>,
    registered: &Registered,
) -> Vec<Box<dyn Collector>> {
    ENDPOINTS
        .iter()
        .zip(&registered.endpoints)
        .filter_map(|(endpoint, families)| (endpoint.collector)(account, context, families))
        .collect()
}
