//! What each Kraken endpoint feeds into the metrics: one collector per endpoint, beside its request
//! and decoder in [`crate::kraken`].
//!
//! The poller of an account walks [`for_account`]'s list in order, one call at a time (one nonce
//! sequence per key). A collector fetches (the network part, outside any lock) and then applies what
//! it fetched inside the account's [`Metrics::update`](crate::metrics::Metrics::update), together with
//! the poll's own bookkeeping, so a scrape never sees half of a poll. Adding an endpoint is adding its
//! module under `kraken/`, its collector here, and one line in [`for_account`].
//!
//! The first collector is `BalanceEx`: its outcome is `kraken_up`, readiness and the schedule's backoff.
//! The others are optional: each has its own backoff, and a failure of one never touches the balances,
//! `kraken_up` or the other endpoints; `kraken_endpoint_up{endpoint}` reports each.

mod balance_ex;
mod earn_allocations;
mod trade_balance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use balance_ex::BalanceExCollector;
pub use earn_allocations::EarnAllocationsCollector;
pub use trade_balance::TradeBalanceCollector;

use crate::config::AccountSettings;
use crate::kraken::assets::AssetNames;
use crate::kraken::{KrakenClient, PollError, RebaseMultiplier};
use crate::metrics::Changes;
use crate::valuation::Valuation;

/// The future of one fetch: on success, how many items the answer had (for the log).
pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<usize, PollError>> + Send + 'a>>;

/// One endpoint's part of an account's poll.
pub trait Collector: Send {
    /// Kraken's method name (`BalanceEx`), for logs and the `endpoint` label.
    fn endpoint(&self) -> &'static str;
    /// The permission the key needs for this endpoint, named when Kraken refuses it.
    fn permission(&self) -> &'static str;
    /// Calls the endpoint once and keeps a successful answer for [`Collector::apply`].
    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a>;
    /// Sets the account's series from the last successful fetch.
    fn apply(&mut self, account: &str, metrics: &Changes<'_>);
    /// Removes the account's series of this endpoint (they went stale).
    fn clear(&mut self, account: &str, metrics: &Changes<'_>);
}

/// What the collectors of every account share: asset names learnt from Kraken and, when valuation is
/// on, the prices.
#[derive(Clone, Default)]
pub struct Shared {
    pub names: Arc<AssetNames>,
    pub valuation: Option<Arc<Valuation>>,
}

/// The collectors of one account, in the order they are polled: the list of endpoints. `BalanceEx`
/// always; `TradeBalance` with `margin = true`; `Earn/Allocations` with `earn = true`.
pub fn for_account(
    account: &AccountSettings,
    rebase_multiplier: Option<RebaseMultiplier>,
    shared: &Shared,
) -> Vec<Box<dyn Collector>> {
    let mut collectors: Vec<Box<dyn Collector>> = vec![Box::new(BalanceExCollector::new(
        rebase_multiplier,
        shared.clone(),
    ))];
    if let Some(margin) = &account.margin {
        collectors.push(Box::new(TradeBalanceCollector::new(&margin.asset)));
    }
    if account.earn {
        collectors.push(Box::new(EarnAllocationsCollector::new(shared.clone())));
    }
    collectors
}
