//! One task per account: poll its endpoints ([`crate::collectors`]) each on its own schedule and
//! update the metrics.
//!
//! Every endpoint of an account has its own grid `start + k * poll_interval` ([`Schedule`]): a slow
//! call does not shift later ones (no drift), and slots missed while one hung are skipped rather than
//! fired in a burst. Each endpoint has one health record ([`EndpointHealth`]): its backoff after
//! failures (`backoff.rs`), when it is called next, and its last success, after which its series go
//! once `stale_after` has passed. After a failure an endpoint waits out its own backoff, then its grid
//! restarts from there; a success keeps it on its grid. Every call's outcome goes to the metrics,
//! readiness, the status page and the log together ([`Outcomes`]).
//!
//! The endpoint whose table line says `decides_up` (the balances) decides `kraken_up` and
//! `kraken_backoff_seconds`. While it fails
//! (in the round it failed, and while it waits out its backoff) the other endpoints of the same key
//! are not called (the key's problem would fail them too and cost rate budget); they keep their grid.
//! An endpoint with a key of its own (Kraken Futures) is never held back by the spot key: it is
//! called on its own schedule whatever the balances do. On failure the last values stay, the error
//! is counted by reason and logged once with a hint. When each round runs is
//! [`super::schedule`]'s.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::backoff::Backoff;
use super::schedule::{PollTarget, PollTiming, Schedule};
use crate::collectors::{Collector, Polled};
use crate::http::readiness::Readiness;
use crate::kraken::{ErrorReason, KrakenClient, PollError};
use crate::metrics::{Changes, Metrics};

/// The health and schedule of one endpoint of one account.
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
    /// Its outcome is the account's `kraken_up`, readiness and backoff.
    decides_up: bool,
    /// Its grid; restarts from the retry after a failure.
    schedule: Schedule,
    /// When it is called next.
    next_due: Instant,
    /// Whether Kraken offers it to this account: `Some(false)` after a `not_offered` answer.
    offered: Option<bool>,
}

impl EndpointHealth {
    /// Called every `interval` (its table line's), backing off up to `timing.max_backoff`.
    fn new(timing: &PollTiming, interval: Duration, first: Instant, decides_up: bool) -> Self {
        Self {
            decides_up,
            // A random seed per endpoint, so accounts of one exporter do not retry in step.
            backoff: Backoff::new(interval, timing.max_backoff, fastrand::u64(..)),
            retry_at: None,
            wait: Duration::ZERO,
            last_failed: None,
            last_success: None,
            schedule: Schedule::new(first, interval),
            next_due: first,
            offered: None,
        }
    }

    /// Its first call at `first`, on a grid from there.
    fn start_at(&mut self, first: Instant) {
        self.schedule = Schedule::new(first, self.schedule.interval);
        self.next_due = first;
    }

    /// Whether it is in its backoff after a failure at `now`.
    fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    fn succeeded(&mut self, now: Instant) {
        self.back_on_grid(now);
        self.last_failed = Some(false);
        self.last_success = Some(now);
        self.offered = Some(true);
    }

    /// An answer that is not a failure: no backoff, the next slot of its grid.
    fn back_on_grid(&mut self, now: Instant) {
        self.backoff.reset();
        self.retry_at = None;
        self.wait = Duration::ZERO;
        self.next_due = self.schedule.advance(now);
    }

    /// Kraken does not offer the endpoint to the account: not a failure, no backoff; it is asked
    /// again on its grid. Whether that is news (the first such answer, or after it answered).
    fn not_offered(&mut self, now: Instant) -> bool {
        self.back_on_grid(now);
        self.last_success = None;
        self.offered.replace(false) != Some(false)
    }

    fn failed(&mut self, err: &PollError, now: Instant) -> Duration {
        // Never zero, so a round always moves the endpoint's next call past `now`.
        self.wait = self
            .backoff
            .after_failure(err, SystemTime::now())
            .max(Duration::from_millis(1));
        self.retry_at = Some(now + self.wait);
        self.last_failed = Some(true);
        // Once it answers again, its grid restarts from the retry.
        self.start_at(now + self.wait);
        self.wait
    }

    /// Not called this round (its key is failing): its next slot on its grid.
    fn skipped(&mut self, now: Instant) {
        if self.next_due <= now {
            self.next_due = self.schedule.advance(now);
        }
    }

    fn stale_at(&self, stale_after: Option<Duration>) -> Option<Instant> {
        Some(self.last_success? + stale_after?)
    }
}

/// Which endpoints a round calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Those whose schedule says they are due (the running exporter).
    Scheduled,
    /// All at once (`--once`, tests): the balances always, the others unless in their backoff.
    Now,
}

/// When a key may be called next (its schedule or backoff), shared with the next configuration so a
/// reload never calls it earlier.
pub type NotBefore = Arc<std::sync::Mutex<Option<Instant>>>;

/// When each key of an account may be called next: the spot key's (its balances' next call) and,
/// for endpoints with a key of their own, that key's.
#[derive(Clone, Default)]
pub struct KeyPacing {
    pub spot: NotBefore,
    pub own: NotBefore,
}

/// Polls one account's endpoints and publishes what it learns.
pub struct AccountPoller {
    account: String,
    client: KrakenClient,
    /// The endpoints, called in this order when due, each with its health and schedule.
    endpoints: Vec<(Box<dyn Collector>, EndpointHealth)>,
    /// Where every call's outcome goes.
    outcomes: Outcomes,
    /// The wait last exported as `kraken_backoff_seconds`.
    exported_backoff: Duration,
    stale_after: Option<Duration>,
    pacing: KeyPacing,
}

/// Where the outcome of a call goes, always together, so none can be forgotten or get out of step:
/// the metrics (the endpoint's series and health; `kraken_up` for the balances), readiness (the
/// balances' first success), the status page, and the log.
struct Outcomes {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    status: Arc<crate::http::status::Status>,
}

/// One finished call of an account's endpoint.
struct Call<'a> {
    account: &'a str,
    endpoint: &'static str,
    /// The balances: their outcome is `kraken_up` and readiness.
    decides_up: bool,
    elapsed: Duration,
}

impl Outcomes {
    /// A successful call: `collector` applies what it fetched, in the same update as the call's
    /// health, and gives its comparisons to the status page.
    fn succeeded(
        &self,
        call: &Call<'_>,
        collector: &mut dyn Collector,
        items: usize,
        last_failed: Option<bool>,
    ) {
        self.metrics.update(|m| {
            collector.apply(call.account, m);
            if call.decides_up {
                m.record_poll(call.account, call.elapsed, None);
            }
            m.record_endpoint(call.account, call.endpoint, None);
        });
        log_success(call, items, last_failed);
        self.status
            .succeeded(call.account, call.endpoint, items, call.elapsed);
        self.status
            .compared(call.account, call.endpoint, collector.comparisons());
        self.status
            .noted(call.account, call.endpoint, collector.notes());
        if call.decides_up {
            self.readiness.mark_succeeded(call.account);
        }
    }

    /// Kraken does not offer the endpoint to the account (`not_offered`): its data and
    /// `kraken_endpoint_up` go, `kraken_endpoint_offered` is 0, the status page says so, and the
    /// log says it once (`news`), at info: nothing is down.
    fn not_offered(
        &self,
        call: &Call<'_>,
        collector: &mut dyn Collector,
        err: &PollError,
        news: bool,
    ) {
        self.metrics.update(|m| {
            collector.clear(call.account, m);
            m.record_not_offered(call.account, call.endpoint);
        });
        self.status.not_offered(call.account, call.endpoint, err);
        if news {
            tracing::info!(
                account = call.account,
                endpoint = call.endpoint,
                error = %err.message,
                "Kraken does not offer this endpoint to this account or region; not an outage (no alert), asked again now and then"
            );
        }
    }

    /// A failed call, with what the operator can do (`hint`) and, when the exporter will try again,
    /// when (`retry_in`; `None` for `--once`, which retries nothing).
    fn failed(&self, call: &Call<'_>, err: &PollError, hint: &str, retry_in: Option<Duration>) {
        self.metrics.update(|m| {
            if call.decides_up {
                m.record_poll(call.account, call.elapsed, Some(err.reason));
            }
            m.record_endpoint(call.account, call.endpoint, Some(err.reason));
        });
        self.status
            .failed(call.account, call.endpoint, err, hint, call.elapsed);
        // An absent retry_in is left out of the line.
        let retry_in =
            retry_in.map(|wait| humantime::format_duration(round_to_ms(wait)).to_string());
        tracing::warn!(
            account = call.account,
            endpoint = call.endpoint,
            reason = %err.reason,
            error = %err.message,
            hint = %hint,
            retry_in = retry_in.as_ref().map(tracing::field::display),
            "{}",
            if retry_in.is_some() {
                "call failed; its last values stay"
            } else {
                "call failed"
            }
        );
    }
}

impl AccountPoller {
    /// A poller of `account`'s `collectors`; every endpoint backs off and goes stale by `timing`
    /// (that of the account's schedule). Made by [`crate::polling::running::build`].
    pub fn new(
        account: String,
        client: KrakenClient,
        collectors: Vec<Polled>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        timing: PollTiming,
    ) -> Self {
        let now = Instant::now();
        Self {
            account,
            client,
            endpoints: collectors
                .into_iter()
                .map(|polled| {
                    let health =
                        EndpointHealth::new(&timing, polled.interval, now, polled.decides_up);
                    (polled.collector, health)
                })
                .collect(),
            outcomes: Outcomes {
                metrics,
                readiness,
                status: Arc::default(),
            },
            exported_backoff: Duration::ZERO,
            stale_after: timing.stale_after,
            pacing: KeyPacing::default(),
        }
    }

    /// Reports every call and the schedule to `status` (the landing page).
    pub fn reporting(mut self, status: Arc<crate::http::status::Status>) -> Self {
        self.outcomes.status = status;
        self
    }

    /// Shares when each key is called next in `pacing` (kept across reloads per key).
    pub fn pacing(mut self, pacing: KeyPacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// Schedules every endpoint's first call at `first`, or later where its key's pacing (from a
    /// configuration before a reload) says it may not be called yet.
    pub fn start_at(&mut self, first: Instant) {
        let spot = *crate::sync::lock(&self.pacing.spot);
        let own = *crate::sync::lock(&self.pacing.own);
        for (collector, health) in &mut self.endpoints {
            let not_before = if collector.own_key() { own } else { spot };
            health.start_at(not_before.map_or(first, |at| at.max(first)));
        }
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

    /// Calls every endpoint now, in order (the balances always, a later one only when its backoff
    /// allows), publishes each outcome and logs it; the result is the balances'. When they fail, the
    /// others of the same key are not called; an endpoint with a key of its own still is. On
    /// success, the number of rows the balances answered (0: the account holds nothing yet).
    pub async fn poll_once(&mut self) -> Result<usize, PollError> {
        self.round(Round::Now)
            .await
            .expect("a round that calls everything now calls the balances")
    }

    /// One round: calls the endpoints `round` selects, in the table's order; the balances' outcome
    /// when they were called.
    async fn round(&mut self, round: Round) -> Option<Result<usize, PollError>> {
        self.expire(Instant::now());
        let account = self.account.as_str();
        let mut result = None;
        // The spot key is failing: its balances wait out their backoff, or failed in this round.
        let started = Instant::now();
        let mut spot_key_failing = round == Round::Scheduled
            && self.endpoints.iter().any(|(_, health)| {
                health.decides_up && health.next_due > started && health.backing_off(started)
            });
        for (collector, health) in &mut self.endpoints {
            let first = health.decides_up;
            let now = Instant::now();
            let due = match round {
                Round::Scheduled => health.next_due <= now,
                Round::Now => first || !health.backing_off(now),
            };
            if !due {
                continue;
            }
            // While the balances fail, only endpoints with a key of their own are called.
            if spot_key_failing && !collector.own_key() {
                health.skipped(now);
                continue;
            }
            let started = Instant::now();
            let outcome = collector.fetch(&self.client).await;
            let call = Call {
                account,
                endpoint: collector.endpoint(),
                decides_up: first,
                elapsed: started.elapsed(),
            };
            match outcome {
                Ok(items) => {
                    let last_failed = health.last_failed;
                    health.succeeded(Instant::now());
                    self.outcomes
                        .succeeded(&call, collector.as_mut(), items, last_failed);
                    if first {
                        result = Some(Ok(items));
                    }
                }
                Err(err) if err.reason == ErrorReason::NotOffered && !first => {
                    let news = health.not_offered(Instant::now());
                    self.outcomes
                        .not_offered(&call, collector.as_mut(), &err, news);
                }
                Err(err) => {
                    let wait = health.failed(&err, Instant::now());
                    let retry_in = (round == Round::Scheduled).then_some(wait);
                    self.outcomes
                        .failed(&call, &err, &collector.hint(&err), retry_in);
                    if first {
                        result = Some(Err(err));
                        spot_key_failing = true;
                    }
                }
            }
        }
        self.export_backoff();
        self.share_pacing();
        result
    }

    /// When the next call of any endpoint is due.
    pub fn next_due(&self) -> Instant {
        self.endpoints
            .iter()
            .map(|(_, health)| health.next_due)
            .min()
            .unwrap_or_else(Instant::now)
    }

    /// Shares when each key is called next (for a reload) and shows the next call on the status page.
    fn share_pacing(&self) {
        let spot = self
            .endpoints
            .iter()
            .find(|(_, health)| health.decides_up)
            .map(|(_, health)| health.next_due);
        let own = self
            .endpoints
            .iter()
            .filter(|(collector, _)| collector.own_key())
            .map(|(_, health)| health.next_due)
            .min();
        *crate::sync::lock(&self.pacing.spot) = spot;
        if own.is_some() {
            *crate::sync::lock(&self.pacing.own) = own;
        }
        self.outcomes.status.scheduled(
            &self.account,
            self.next_due().saturating_duration_since(Instant::now()),
        );
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
                self.outcomes
                    .metrics
                    .update(|m| collector.clear(account, m));
            }
        }
    }

    /// `kraken_backoff_seconds`: the balances' wait, rendered only when it changes.
    fn export_backoff(&mut self) {
        let wait = self
            .endpoints
            .iter()
            .find(|(_, health)| health.decides_up)
            .map_or(Duration::ZERO, |(_, h)| h.wait);
        if wait != self.exported_backoff {
            self.exported_backoff = wait;
            self.outcomes
                .metrics
                .update(|m| m.set_backoff(&self.account, wait));
        }
    }
}

fn log_success(call: &Call<'_>, items: usize, last_failed: Option<bool>) {
    let Call {
        account,
        endpoint,
        decides_up,
        elapsed,
    } = *call;
    if decides_up && items == 0 && last_failed != Some(false) {
        tracing::info!(
            account,
            endpoint,
            "Kraken reports no balances for this account: it holds nothing yet (new or never funded); kraken_up is 1, and until it holds something its only balance series are the 0s of the assets it has minimums for"
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

impl PollTarget for AccountPoller {
    fn account(&self) -> &str {
        &self.account
    }

    async fn poll(&mut self) {
        self.round(Round::Scheduled).await;
    }

    fn next_due(&self) -> Instant {
        AccountPoller::next_due(self)
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
}

fn round_to_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_offered_is_news_once_until_the_endpoint_answers_again_and_never_backs_off() {
        let timing = PollTiming {
            interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(900),
            stale_after: None,
        };
        let start = Instant::now();
        let interval = Duration::from_secs(900);
        let mut health = EndpointHealth::new(&timing, interval, start, false);
        assert!(health.not_offered(start), "the first answer is news");
        assert!(!health.backing_off(start));
        assert_eq!(health.next_due, start + interval, "on its own grid");
        assert!(!health.not_offered(start + interval), "said once");
        health.succeeded(start + interval * 2);
        assert!(health.not_offered(start + interval * 3), "news again");
    }
}
