//! One task per account: poll `BalanceEx` on a fixed schedule and update the metrics.
//!
//! The schedule is a grid `start + k * poll_interval`: a slow poll does not shift later polls (no drift),
//! and polls missed while one hung are skipped rather than fired in a burst. On success the account's
//! balance series are replaced; on failure the last values stay, `kraken_up` drops to 0, the error is
//! counted by reason and logged once with a hint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
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

    /// Polls at `first_poll`, then on the grid, backing off after failures, until `shutdown` changes.
    /// An in-flight request is abandoned at shutdown.
    pub async fn run(
        mut self,
        timing: PollTiming,
        first_poll: Instant,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut schedule = Schedule::new(first_poll, timing.interval);
        let mut backoff =
            Backoff::new(timing.interval, timing.max_backoff, seed_for(&self.account));
        let mut staleness = Staleness::new(timing.stale_after);
        let mut next = first_poll;
        loop {
            if !self.wait_until(next, &mut staleness, &mut shutdown).await {
                break;
            }
            let result = {
                let metrics = Arc::clone(&self.metrics);
                let account = self.account.clone();
                let poll = self.poll_once();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        result = &mut poll => break Some(result),
                        _ = shutdown.changed() => break None,
                        () = staleness.expired() => staleness.clear(&metrics, &account),
                    }
                }
            };
            let Some(result) = result else { break };
            let now = Instant::now();
            next = match result {
                Ok(()) => {
                    backoff.reset();
                    staleness.succeeded(now);
                    self.metrics.set_backoff(&self.account, Duration::ZERO);
                    schedule.advance(now)
                }
                Err(err) => {
                    let wait = backoff.after_failure(&err, SystemTime::now());
                    tracing::info!(account = %self.account, wait = %humantime::format_duration(round_to_ms(wait)), "next BalanceEx attempt after backoff");
                    self.metrics.set_backoff(&self.account, wait);
                    // Once polls succeed again, the grid restarts from the retry.
                    schedule = Schedule::new(now + wait, timing.interval);
                    now + wait
                }
            };
            self.metrics.publish();
        }
        tracing::debug!(account = %self.account, "poller stopped");
    }

    /// Sleeps until `deadline`, removing stale series on the way; false when shut down.
    async fn wait_until(
        &self,
        deadline: Instant,
        staleness: &mut Staleness,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                _ = shutdown.changed() => return false,
                () = staleness.expired() => staleness.clear(&self.metrics, &self.account),
            }
        }
    }
}

/// The timing settings of every poller.
#[derive(Debug, Clone, Copy)]
pub struct PollTiming {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub stale_after: Option<Duration>,
}

/// Tracks when an account's balances go stale (`stale_after` since the last success).
struct Staleness {
    stale_after: Option<Duration>,
    /// When the exported balances go stale; `None` when off, before the first success, or already cleared.
    deadline: Option<Instant>,
}

impl Staleness {
    fn new(stale_after: Option<Duration>) -> Self {
        Self {
            stale_after,
            deadline: None,
        }
    }

    fn succeeded(&mut self, at: Instant) {
        self.deadline = self.stale_after.map(|after| at + after);
    }

    /// Resolves when the balances go stale; never while there is nothing to expire.
    async fn expired(&self) {
        match self.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    fn clear(&mut self, metrics: &Metrics, account: &str) {
        self.deadline = None;
        metrics.clear_balances(account);
        metrics.publish();
        tracing::warn!(
            account = %account,
            stale_after = %humantime::format_duration(self.stale_after.unwrap_or_default()),
            "no successful BalanceEx poll within stale_after; balance series removed until the next success"
        );
    }
}

/// A per-account jitter seed, so accounts of one exporter do not retry in step.
fn seed_for(account: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.hash(&mut hasher);
    SystemTime::now().hash(&mut hasher);
    hasher.finish()
}

fn round_to_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
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
