//! One task per account: poll its endpoints ([`crate::collectors`]) on a fixed schedule and update the
//! metrics.
//!
//! The schedule is a grid `start + k * poll_interval`: a slow poll does not shift later polls (no drift),
//! and polls missed while one hung are skipped rather than fired in a burst. Each endpoint of an
//! account has one health record ([`EndpointHealth`]): its backoff after failures (`backoff.rs`), when
//! it may be called again, and its last success, after which its series go once `stale_after` has
//! passed. The first endpoint (the balances) decides `kraken_up` and the account's schedule: after its
//! failure the next attempt waits out its backoff, then the grid restarts; a later endpoint that fails
//! waits out its own backoff on the account's grid and never delays the balances. On failure the last
//! values stay, the error is counted by reason and logged once with a hint. Accounts start spread over
//! one interval ([`first_polls`]) and share a bound of [`MAX_CONCURRENT_POLLS`] requests in flight.
//! [`run`] only schedules any [`PollTarget`], so the schedule is tested with paused time and no
//! network.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::collectors::Collector;
use crate::kraken::{KrakenClient, PollError};
use crate::metrics::{Changes, Metrics};
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

/// The health of one endpoint of one account.
struct EndpointHealth {
    backoff: Backoff,
    /// After a failure: when the endpoint may be called again.
    retry_at: Option<Instant>,
    /// The wait its last failure asked for (zero while it succeeds).
    wait: Duration,
    /// `None` before the first answer.
    last_failed: Option<bool>,
    /// When its series were last set; they are removed once older than `stale_after`.
    last_success: Option<Instant>,
}

impl EndpointHealth {
    fn new(timing: &PollTiming) -> Self {
        Self {
            // A random seed per endpoint, so accounts of one exporter do not retry in step.
            backoff: Backoff::new(timing.interval, timing.max_backoff, fastrand::u64(..)),
            retry_at: None,
            wait: Duration::ZERO,
            last_failed: None,
            last_success: None,
        }
    }

    fn succeeded(&mut self, now: Instant) {
        self.backoff.reset();
        self.retry_at = None;
        self.wait = Duration::ZERO;
        self.last_failed = Some(false);
        self.last_success = Some(now);
    }

    fn failed(&mut self, err: &PollError, now: Instant) -> Duration {
        self.wait = self.backoff.after_failure(err, SystemTime::now());
        self.retry_at = Some(now + self.wait);
        self.last_failed = Some(true);
        self.wait
    }

    fn stale_at(&self, stale_after: Option<Duration>) -> Option<Instant> {
        Some(self.last_success? + stale_after?)
    }
}

/// When an account's key may be polled next (its schedule or backoff), shared with the next
/// configuration so a reload never polls earlier.
pub type NotBefore = Arc<std::sync::Mutex<Option<Instant>>>;

/// Polls one account's endpoints and publishes what it learns.
pub struct AccountPoller {
    account: String,
    client: KrakenClient,
    /// The endpoints, polled in this order, each with its health; the first decides `kraken_up`.
    endpoints: Vec<(Box<dyn Collector>, EndpointHealth)>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// The wait last exported as `kraken_backoff_seconds`.
    exported_backoff: Duration,
    stale_after: Option<Duration>,
    not_before: NotBefore,
    status: Arc<crate::status::Status>,
}

impl AccountPoller {
    /// A poller of `account`'s `collectors`; every endpoint backs off and goes stale by `timing`
    /// (that of the account's schedule). Made by [`crate::running::build`].
    pub fn new(
        account: String,
        client: KrakenClient,
        collectors: Vec<Box<dyn Collector>>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        timing: PollTiming,
    ) -> Self {
        Self {
            account,
            client,
            endpoints: collectors
                .into_iter()
                .map(|collector| (collector, EndpointHealth::new(&timing)))
                .collect(),
            metrics,
            readiness,
            exported_backoff: Duration::ZERO,
            stale_after: timing.stale_after,
            not_before: NotBefore::default(),
            status: Arc::default(),
        }
    }

    /// Reports every call and the schedule to `status` (the landing page).
    pub fn reporting(mut self, status: Arc<crate::status::Status>) -> Self {
        self.status = status;
        self
    }

    /// Shares when the next poll is due in `not_before` (kept across reloads for this key).
    pub fn pacing(mut self, not_before: NotBefore) -> Self {
        self.not_before = not_before;
        self
    }

    /// When the schedule last said the next poll is due, if it has run.
    pub fn not_before(&self) -> Option<Instant> {
        *crate::sync::lock(&self.not_before)
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Kraken's method names of the endpoints this account polls, in order.
    pub fn endpoints(&self) -> Vec<&'static str> {
        self.endpoints.iter().map(|(c, _)| c.endpoint()).collect()
    }

    /// Declares the account's endpoints and exports what its configuration says about each
    /// (thresholds), in the update that applies a configuration.
    pub fn configure(&self, metrics: &mut Changes<'_>) {
        metrics.set_endpoints(&self.account, &self.endpoints());
        for (collector, _) in &self.endpoints {
            collector.configure(&self.account, metrics);
        }
    }

    /// Polls every endpoint once, in order (a later one only when its backoff allows), publishes each
    /// outcome and logs it; the result is the first endpoint's. When it fails, the others of the same
    /// key are not called (the key's problem would fail them too and cost rate budget); an endpoint
    /// with a key of its own (Kraken Futures) still is. On success, the number of
    /// rows the balances answered (0: the account holds nothing yet).
    pub async fn poll_once(&mut self) -> Result<usize, PollError> {
        self.expire(Instant::now());
        let account = self.account.as_str();
        let mut result = Ok(0);
        let mut balances_failed = false;
        for (index, (collector, health)) in self.endpoints.iter_mut().enumerate() {
            let first = index == 0;
            if health.retry_at.is_some_and(|at| Instant::now() < at) && !first {
                continue;
            }
            // After the balances failed, only endpoints with a key of their own are called.
            if balances_failed && !collector.own_key() {
                continue;
            }
            let endpoint = collector.endpoint();
            let started = Instant::now();
            let outcome = collector.fetch(&self.client).await;
            let elapsed = started.elapsed();
            match outcome {
                Ok(items) => {
                    self.metrics.update(|m| {
                        collector.apply(account, m);
                        if first {
                            m.record_poll(account, elapsed, None);
                        }
                        m.record_endpoint(account, endpoint, None);
                    });
                    log_success(account, endpoint, items, elapsed, health.last_failed, first);
                    self.status.succeeded(account, endpoint, items, elapsed);
                    health.succeeded(Instant::now());
                    if first {
                        self.readiness.mark_succeeded(account);
                        result = Ok(items);
                    }
                }
                Err(err) => {
                    self.metrics.update(|m| {
                        if first {
                            m.record_poll(account, elapsed, Some(err.reason));
                        }
                        m.record_endpoint(account, endpoint, Some(err.reason));
                    });
                    let wait = health.failed(&err, Instant::now());
                    let hint = collector.hint(&err);
                    self.status.failed(account, endpoint, &err, &hint, elapsed);
                    tracing::warn!(
                        account,
                        endpoint,
                        reason = %err.reason,
                        error = %err.message,
                        hint = %hint,
                        retry_in = %humantime::format_duration(round_to_ms(wait)),
                        "call failed; its last values stay"
                    );
                    if first {
                        result = Err(err);
                        balances_failed = true;
                    }
                }
            }
        }
        self.export_backoff();
        result
    }

    /// Removes the series of every endpoint whose last success is older than `stale_after`.
    fn expire(&mut self, now: Instant) {
        let account = self.account.as_str();
        for (collector, health) in &mut self.endpoints {
            if health
                .stale_at(self.stale_after)
                .is_some_and(|at| at <= now)
            {
                // Its figures would otherwise stay exported however old.
                health.last_success = None;
                tracing::warn!(
                    account,
                    endpoint = collector.endpoint(),
                    stale_after = %humantime::format_duration(self.stale_after.unwrap_or_default()),
                    "no successful call within stale_after; its series are removed until the next success"
                );
                self.metrics.update(|m| collector.clear(account, m));
            }
        }
    }

    /// `kraken_backoff_seconds`: the first endpoint's wait, rendered only when it changes.
    fn export_backoff(&mut self) {
        let wait = self
            .endpoints
            .first()
            .map_or(Duration::ZERO, |(_, h)| h.wait);
        if wait != self.exported_backoff {
            self.exported_backoff = wait;
            self.metrics.update(|m| m.set_backoff(&self.account, wait));
        }
    }
}

fn log_success(
    account: &str,
    endpoint: &str,
    items: usize,
    elapsed: Duration,
    last_failed: Option<bool>,
    first: bool,
) {
    if first && items == 0 && last_failed != Some(false) {
        tracing::info!(
            account,
            endpoint,
            "Kraken reports no balances for this account: it holds nothing yet (new or never funded); kraken_up is 1 and no balance series are exported until it does"
        );
    }
    match last_failed {
        None => tracing::info!(account, endpoint, items, "first call succeeded"),
        Some(true) => tracing::info!(account, endpoint, items, "endpoint answers again"),
        Some(false) => tracing::debug!(
            account,
            endpoint,
            items,
            duration_ms = elapsed.as_millis() as u64,
            "call succeeded"
        ),
    }
}

/// What the schedule drives: one account's poll.
pub trait PollTarget: Send {
    /// The account name, for logs.
    fn account(&self) -> &str;
    /// Polls once: `Ok`, or the wait its failure asks for before the next attempt.
    fn poll(&mut self) -> impl std::future::Future<Output = Result<(), Duration>> + Send;
    /// When series go stale next, if ever; the schedule wakes then and calls [`PollTarget::expire`].
    fn stale_at(&self) -> Option<Instant>;
    /// Removes what went stale by `now`.
    fn expire(&mut self, now: Instant);
    /// The schedule's next poll is due at `next`.
    fn scheduled(&mut self, _next: Instant) {}
}

impl PollTarget for AccountPoller {
    fn account(&self) -> &str {
        &self.account
    }

    async fn poll(&mut self) -> Result<(), Duration> {
        match self.poll_once().await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.exported_backoff),
        }
    }

    fn stale_at(&self) -> Option<Instant> {
        self.endpoints
            .iter()
            .filter_map(|(_, health)| health.stale_at(self.stale_after))
            .min()
    }

    fn expire(&mut self, now: Instant) {
        AccountPoller::expire(self, now);
    }

    fn scheduled(&mut self, next: Instant) {
        *crate::sync::lock(&self.not_before) = Some(next);
        self.status.scheduled(
            &self.account,
            next.saturating_duration_since(Instant::now()),
        );
    }
}

/// Polls `target` at `first_poll`, then on the grid; after a failure, once its wait is over, after
/// which the grid restarts; until `shutdown` changes. At most as many polls as `limiter` has permits
/// run at once across all accounts; an in-flight request is abandoned at shutdown.
pub async fn run<T: PollTarget>(
    mut target: T,
    timing: PollTiming,
    first_poll: Instant,
    limiter: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut schedule = Schedule::new(first_poll, timing.interval);
    let mut next = first_poll;
    loop {
        // Wait for the next slot, removing stale series if they expire meanwhile.
        loop {
            let stale_at = target.stale_at().filter(|at| *at < next);
            let stale = async {
                match stale_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => break,
                _ = shutdown.changed() => return,
                () = stale => target.expire(Instant::now()),
            }
        }
        let result = tokio::select! {
            result = async {
                let _permit = limiter.acquire().await;
                target.poll().await
            } => result,
            _ = shutdown.changed() => return,
        };
        let now = Instant::now();
        next = match result {
            Ok(()) => schedule.advance(now),
            Err(wait) => {
                tracing::info!(account = %target.account(), wait = %humantime::format_duration(round_to_ms(wait)), "next attempt after backoff");
                // Once polls succeed again, the grid restarts from the retry.
                schedule = Schedule::new(now + wait, timing.interval);
                now + wait
            }
        };
        target.scheduled(next);
    }
}

/// The first poll of each of `accounts` accounts, spread evenly over one interval from `start`, so
/// many accounts do not all call Kraken at the same moment.
pub fn first_polls(start: Instant, interval: Duration, accounts: usize) -> Vec<Instant> {
    let count = u32::try_from(accounts.max(1)).unwrap_or(u32::MAX);
    (0..count).map(|i| start + interval / count * i).collect()
}

/// How many polls may be in flight at once across all accounts.
pub const MAX_CONCURRENT_POLLS: usize = 8;

/// The timing settings of every poller.
#[derive(Debug, Clone, Copy)]
pub struct PollTiming {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub stale_after: Option<Duration>,
}

fn round_to_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A target that takes `latency` per poll and records when each poll started.
    struct FakeTarget {
        name: String,
        id: usize,
        latency: Duration,
        starts: Arc<Mutex<Vec<(usize, Instant)>>>,
        in_flight: Arc<AtomicUsize>,
        most_in_flight: Arc<AtomicUsize>,
    }

    impl PollTarget for FakeTarget {
        fn account(&self) -> &str {
            &self.name
        }

        async fn poll(&mut self) -> Result<(), Duration> {
            self.starts.lock().unwrap().push((self.id, Instant::now()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }

        fn stale_at(&self) -> Option<Instant> {
            None
        }

        fn expire(&mut self, _now: Instant) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_accounts_are_spread_bounded_and_do_not_drift_over_an_hour() {
        let interval = Duration::from_secs(30);
        let accounts = 100;
        let timing = PollTiming {
            interval,
            max_backoff: Duration::from_secs(900),
            stale_after: None,
        };
        let starts = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most_in_flight = Arc::new(AtomicUsize::new(0));
        let limiter = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
        let (stop, stopped) = watch::channel(false);
        let start = Instant::now();
        let firsts = first_polls(start, interval, accounts);
        let tasks: Vec<_> = firsts
            .iter()
            .enumerate()
            .map(|(id, first)| {
                let target = FakeTarget {
                    name: format!("account{id}"),
                    id,
                    latency: Duration::from_secs(2),
                    starts: Arc::clone(&starts),
                    in_flight: Arc::clone(&in_flight),
                    most_in_flight: Arc::clone(&most_in_flight),
                };
                tokio::spawn(run(
                    target,
                    timing,
                    *first,
                    Arc::clone(&limiter),
                    stopped.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3600) + Duration::from_millis(100)).await;
        stop.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }

        let starts = starts.lock().unwrap().clone();
        // Spread: account i first polls 300 ms after account i-1, not all at once.
        for (id, first) in firsts.iter().enumerate() {
            assert_eq!(*first, start + Duration::from_millis(300) * id as u32);
        }
        // Bounded: never more polls in flight than the limit.
        assert!(most_in_flight.load(Ordering::SeqCst) <= MAX_CONCURRENT_POLLS);
        // No drift: every poll of every account sits exactly on its grid, for the whole hour.
        for (id, first) in firsts.iter().enumerate() {
            let mine: Vec<Instant> = starts
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, t)| *t)
                .collect();
            // Slots at first + 30 s * k up to the end of the hour: 121 for the account starting at 0 s.
            let expected = if id == 0 { 121 } else { 120 };
            assert_eq!(mine.len(), expected, "account {id}");
            for (k, at) in mine.iter().enumerate() {
                assert_eq!(*at, *first + interval * k as u32, "account {id} poll {k}");
            }
        }
        // No herd: in any one-second window, at most 4 of the 100 accounts start a poll.
        let mut times: Vec<Instant> = starts.iter().map(|(_, t)| *t).collect();
        times.sort();
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(in_window <= 4, "{in_window} polls within a second");
        }
    }

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
