//! One task per account: poll `BalanceEx` on a fixed schedule and update the metrics.
//!
//! The schedule is a grid `start + k * poll_interval`: a slow poll does not shift later polls (no drift),
//! and polls missed while one hung are skipped rather than fired in a burst. On success the account's
//! balance series are replaced; on failure the last values stay, `kraken_up` drops to 0, the error is
//! counted by reason and logged once with a hint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::kraken::assets::label_all;
use crate::kraken::{KrakenClient, PollError};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The fixed poll grid of one account.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    next_due: Instant,
}

impl Schedule {
    /// A grid whose first slot is `first`.
    pub fn new(first: Instant, interval: Duration) -> Self {
        Self {
            interval,
            next_due: first,
        }
    }

    /// The next slot strictly after `now`, skipping slots missed while a poll ran long.
    pub fn advance(&mut self, now: Instant) -> Instant {
        self.next_due += self.interval;
        if self.next_due <= now {
            let behind = now - self.next_due;
            let missed = behind.as_nanos() / self.interval.as_nanos() + 1;
            let missed = u32::try_from(missed).unwrap_or(u32::MAX);
            self.next_due += self.interval * missed;
        }
        self.next_due
    }
}

/// Polls one account and publishes what it learns.
pub struct AccountPoller {
    account: String,
    client: KrakenClient,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    warned_collisions: HashSet<String>,
    last_failed: Option<bool>,
}

impl AccountPoller {
    pub fn new(
        account: String,
        client: KrakenClient,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Self {
            account,
            client,
            metrics,
            readiness,
            warned_collisions: HashSet::new(),
            last_failed: None,
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Polls once, updates and publishes the metrics, logs the outcome.
    pub async fn poll_once(&mut self) -> Result<(), PollError> {
        let started = Instant::now();
        let result = self.client.balance_ex().await;
        let elapsed = started.elapsed();
        match &result {
            Ok(balances) => {
                let labelled = label_all(balances.assets.iter().map(|a| a.key.as_str()));
                for key in labelled.collisions {
                    if self.warned_collisions.insert(key.clone()) {
                        tracing::warn!(
                            account = %self.account,
                            raw_key = %key,
                            "two asset keys map to the same asset and family; both are exported under their raw key"
                        );
                    }
                }
                self.metrics.replace_balances(
                    &self.account,
                    balances
                        .assets
                        .iter()
                        .map(|a| (&labelled.labels_by_key[&a.key], a)),
                );
                self.metrics.record_poll(&self.account, elapsed, None);
                self.readiness.mark_succeeded(&self.account);
                match self.last_failed {
                    None => {
                        tracing::info!(account = %self.account, assets = balances.assets.len(), "first BalanceEx poll succeeded")
                    }
                    Some(true) => {
                        tracing::info!(account = %self.account, assets = balances.assets.len(), "BalanceEx poll succeeded again")
                    }
                    Some(false) => {
                        tracing::debug!(account = %self.account, assets = balances.assets.len(), duration_ms = elapsed.as_millis() as u64, "BalanceEx poll succeeded")
                    }
                }
                self.last_failed = Some(false);
            }
            Err(err) => {
                self.metrics
                    .record_poll(&self.account, elapsed, Some(err.reason));
                tracing::warn!(
                    account = %self.account,
                    reason = %err.reason,
                    error = %err.message,
                    hint = err.reason.hint(),
                    "BalanceEx poll failed; keeping the last values"
                );
                self.last_failed = Some(true);
            }
        }
        self.metrics.publish();
        result.map(|_| ())
    }

    /// Polls at once, then on the grid, until `shutdown` changes; an in-flight request is abandoned.
    pub async fn run(mut self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut schedule = Schedule::new(Instant::now(), interval);
        loop {
            tokio::select! {
                _ = self.poll_once() => {}
                _ = shutdown.changed() => break,
            }
            let next = schedule.advance(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => break,
            }
        }
        tracing::debug!(account = %self.account, "poller stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn schedule_does_not_drift_when_polls_take_time() {
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        let mut schedule = Schedule::new(start, interval);
        for k in 1..=120u32 {
            // Each poll takes 7 s; the next slot is still exactly k intervals after start.
            tokio::time::advance(Duration::from_secs(7)).await;
            let next = schedule.advance(Instant::now());
            assert_eq!(next, start + interval * k);
            tokio::time::sleep_until(next).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_skips_missed_slots_instead_of_bursting() {
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        let mut schedule = Schedule::new(start, interval);
        // A poll hung for 95 s: slots at 30, 60 and 90 s are gone; the next is 120 s.
        tokio::time::advance(Duration::from_secs(95)).await;
        assert_eq!(schedule.advance(Instant::now()), start + interval * 4);
        // And the one after that is a full interval later, not immediately.
        tokio::time::advance(Duration::from_secs(26)).await;
        assert_eq!(schedule.advance(Instant::now()), start + interval * 5);
    }
}
