//! When an account's endpoints are called: the drift-free grid of each endpoint ([`Schedule`]), the
//! loop that wakes a [`PollTarget`] whenever something of it is due ([`run`]), and how accounts are
//! spread over the first interval ([`first_polls`]) and bounded in flight
//! ([`MAX_CONCURRENT_POLLS`]). It knows no endpoint, so it is tested with paused time and no network.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// The fixed poll grid of one account.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub(super) interval: Duration,
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

/// What the schedule drives: one account's endpoints.
pub trait PollTarget: Send {
    /// The account name, for logs.
    fn account(&self) -> &str;
    /// Calls whatever is due now; afterwards [`PollTarget::next_due`] is later than now.
    fn poll(&mut self) -> impl std::future::Future<Output = ()> + Send;
    /// When the next call is due.
    fn next_due(&self) -> Instant;
    /// When series go stale next, if ever; the schedule wakes then and calls [`PollTarget::expire`].
    fn stale_at(&self) -> Option<Instant>;
    /// Removes what went stale by `now`.
    fn expire(&mut self, now: Instant);
}

/// Calls `target` whenever something of it is due, until `shutdown` changes. At most as many rounds
/// as `limiter` has permits run at once across all accounts; an in-flight request is abandoned at
/// shutdown.
pub async fn run<T: PollTarget>(
    mut target: T,
    limiter: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Wait for the next call, removing stale series if they expire meanwhile.
        loop {
            let next = target.next_due();
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
        tokio::select! {
            () = async {
                let _permit = limiter.acquire().await;
                target.poll().await;
            } => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The first poll of each of `accounts` accounts, spread evenly over one interval from `start`, so
/// many accounts do not all call Kraken at the same moment; at most one slot per [`MIN_SLOT`]. Past
/// that, accounts share a slot (a thousand over ten seconds: fifty every 500 ms, at most
/// [`MAX_CONCURRENT_POLLS`] in flight): their calls go out in few wake-ups and their answers are read
/// together, where one account every 10 ms woke the exporter twice per call. At a thousand accounts
/// that took the exporter's CPU per round from 185-560 ms to about 100 ms (BENCHMARKS.md: one start
/// every 10 ms, 50 ms, 200 ms and 500 ms measured side by side).
pub fn first_polls(start: Instant, interval: Duration, accounts: usize) -> Vec<Instant> {
    let count = u32::try_from(accounts.max(1)).unwrap_or(u32::MAX);
    let most = u32::try_from(interval.as_nanos() / MIN_SLOT.as_nanos()).unwrap_or(u32::MAX);
    let slots = count.min(most.max(1));
    (0..count)
        .map(|i| {
            let slot = u64::from(i) * u64::from(slots) / u64::from(count);
            start + interval / slots * u32::try_from(slot).unwrap_or(u32::MAX)
        })
        .collect()
}

/// The shortest time between two different first-poll times (accounts that share one start together).
pub const MIN_SLOT: Duration = Duration::from_millis(500);

/// How many polls may be in flight at once across all accounts.
pub const MAX_CONCURRENT_POLLS: usize = 8;

/// The timing settings of every poller.
#[derive(Debug, Clone, Copy)]
pub struct PollTiming {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub stale_after: Option<Duration>,
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
        schedule: Schedule,
        next: Instant,
    }

    impl PollTarget for FakeTarget {
        fn account(&self) -> &str {
            &self.name
        }

        async fn poll(&mut self) {
            self.starts.lock().unwrap().push((self.id, Instant::now()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.next = self.schedule.advance(Instant::now());
        }

        fn next_due(&self) -> Instant {
            self.next
        }

        fn stale_at(&self) -> Option<Instant> {
            None
        }

        fn expire(&mut self, _now: Instant) {}
    }

    #[test]
    fn a_thousand_accounts_share_slots_500_ms_apart_fifty_each() {
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        let firsts = first_polls(start, interval, 1000);
        assert_eq!(firsts.len(), 1000);
        let mut slots: Vec<(Instant, usize)> = Vec::new();
        for first in &firsts {
            match slots.last_mut() {
                Some((at, accounts)) if at == first => *accounts += 1,
                _ => slots.push((*first, 1)),
            }
        }
        assert_eq!(slots.len(), 20, "one slot per 500 ms of the interval");
        for (index, (at, accounts)) in slots.iter().enumerate() {
            assert_eq!(*at, start + MIN_SLOT * index as u32);
            assert_eq!(*accounts, 50);
        }
        // Fewer accounts than slots: one each, evenly.
        let few = first_polls(start, interval, 7);
        assert!(few.windows(2).all(|pair| pair[1] - pair[0] == interval / 7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_accounts_are_spread_bounded_and_do_not_drift_over_an_hour() {
        let interval = Duration::from_secs(30);
        let accounts = 100;
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
                    schedule: Schedule::new(*first, interval),
                    next: *first,
                };
                tokio::spawn(run(target, Arc::clone(&limiter), stopped.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3600) + Duration::from_millis(100)).await;
        stop.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }

        let starts = starts.lock().unwrap().clone();
        // Spread: the 100 first polls take all 60 slots of 500 ms of the first interval, one or two
        // accounts each, not all at once.
        let mut slots = std::collections::BTreeMap::new();
        for first in &firsts {
            let offset = *first - start;
            assert!(offset < interval);
            assert_eq!(offset.as_nanos() % MIN_SLOT.as_nanos(), 0);
            *slots.entry(*first).or_insert(0) += 1;
        }
        assert_eq!(slots.len(), 60);
        assert!(slots.values().all(|accounts| (1..=2).contains(accounts)));
        // Bounded: never more polls in flight than the limit.
        assert!(most_in_flight.load(Ordering::SeqCst) <= MAX_CONCURRENT_POLLS);
        // No drift: every poll of every account sits exactly on its grid, for the whole hour.
        for (id, first) in firsts.iter().enumerate() {
            let mine: Vec<Instant> = starts
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, t)| *t)
                .collect();
            // Slots at first + 30 s * k up to the end of the hour: 121 for the accounts starting at 0 s.
            let expected = if *first == start { 121 } else { 120 };
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
