//! `Earn/Allocations` -> what is allocated per strategy and state (`kraken_earn_allocated`), when the
//! funds on their way out become spendable, and what each strategy has rewarded.

use super::{Collector, Fetch, Shared};
use crate::kraken::earn_allocations::{Allocation, METHOD, PERMISSION};
use crate::kraken::KrakenClient;
use crate::metrics::Changes;

/// Polls `Earn/Allocations`.
pub struct EarnAllocationsCollector {
    shared: Shared,
    fetched: Option<Vec<Allocation>>,
}

impl EarnAllocationsCollector {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            fetched: None,
        }
    }
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

    fn apply(&mut self, account: &str, metrics: &Changes<'_>) {
        if let Some(allocations) = self.fetched.take() {
            // The asset label as BalanceEx rows get it (XXBT and XBT both XBT).
            metrics.replace_earn(account, &allocations, |code| {
                self.shared.names.classify(code).asset
            });
        }
    }

    fn clear(&mut self, account: &str, metrics: &Changes<'_>) {
        metrics.clear_earn(account);
    }
}
