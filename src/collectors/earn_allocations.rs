//! `Earn/Allocations` -> what is allocated per strategy and state (`kraken_earn_allocated`), when the
//! funds on their way out become spendable, and what each strategy has rewarded. Polled with
//! `earn = true`.

use std::sync::Arc;

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch, Shared};
use crate::config::OptionSpec;
use crate::exposition::to_f64;
use crate::kraken::earn_allocations::{Allocation, METHOD, PERMISSION};
use crate::kraken::KrakenClient;
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};

/// The table's line: accounts with `earn = true`.
pub(super) const ENDPOINT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |_| 1,
    decides_up: false,
    register: |metrics| Arc::new(EarnFamilies::register(metrics)),
    polls: |account| account.options.is_on("earn", false),
    interval: super::every_poll,
    options: OptionSpec {
        account_keys: &["earn"],
        global_keys: &[],
        check: |_, account, at| account.options.flag(at, "earn").map(|_| ()),
    },
    thresholds: |_| Vec::new(),
};

impl EndpointFamilies for EarnFamilies {
    fn collector(
        self: Arc<Self>,
        account: &crate::config::AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        account.options.is_on("earn", false).then(|| {
            Box::new(EarnAllocationsCollector {
                shared: context.shared.clone(),
                families: self,
                fetched: None,
            }) as Box<dyn Collector>
        })
    }
}

/// The families `Earn/Allocations` feeds.
pub struct EarnFamilies {
    allocated: AccountSeries,
    next_release: AccountSeries,
    rewarded: AccountSeries,
}

impl EarnFamilies {
    fn register(metrics: &Metrics) -> Self {
        let data = Scope::Data(METHOD);
        Self {
            allocated: AccountSeries::register(metrics, data, "kraken_earn_allocated", "Amount allocated to an Earn strategy in each state Kraken reports (total, bonding, allocated, exit_queue, unbonding), in units of the asset.", &["asset", "strategy", "state"]),
            next_release: AccountSeries::register(metrics, data, "kraken_earn_next_release_timestamp_seconds", "Unix time when the earliest unbonding or exit-queue tranche of an Earn strategy becomes spendable; absent when nothing is on its way out.", &["asset", "strategy"]),
            rewarded: AccountSeries::register(metrics, data, "kraken_earn_rewarded", "Total rewarded by an Earn strategy, in units of the asset.", &["asset", "strategy"]),
        }
    }
}

/// Polls `Earn/Allocations`.
pub struct EarnAllocationsCollector {
    shared: Shared,
    families: Arc<EarnFamilies>,
    fetched: Option<Vec<Allocation>>,
}

impl Collector for EarnAllocationsCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let allocations = client.earn_allocations().await?;
            let count = allocations.len();
            self.fetched = Some(allocations);
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        let Some(allocations) = self.fetched.take() else {
            return;
        };
        let mut allocated = Vec::new();
        let mut releases = Vec::new();
        let mut rewarded = Vec::new();
        for allocation in &allocations {
            // The asset label as BalanceEx rows get it (XXBT and XBT both XBT).
            let asset = self.shared.names.classify(&allocation.native_asset).asset;
            let strategy = allocation.strategy_id.clone();
            for (state, amount) in &allocation.states {
                allocated.push((
                    vec![asset.clone(), strategy.clone(), state.clone()],
                    to_f64(*amount),
                ));
            }
            if let Some(at) = allocation.next_release {
                releases.push((vec![asset.clone(), strategy.clone()], at as f64));
            }
            rewarded.push((vec![asset, strategy], to_f64(allocation.rewarded)));
        }
        self.families
            .allocated
            .replace(metrics, account, &allocated);
        self.families
            .next_release
            .replace(metrics, account, &releases);
        self.families.rewarded.replace(metrics, account, &rewarded);
    }
}
