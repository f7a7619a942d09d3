//! How long to wait after a failed poll.
//!
//! Repeating a failing request never helps and sometimes hurts: Kraken extends a lockout when bad nonces
//! or signatures keep coming, and counts rate-limited calls against the key. So after a failure the next
//! attempt waits twice as long as the wait before it (the first failure waits `2 x poll_interval`), with
//! +-20% jitter so several exporters do not retry in step, never longer than `max_backoff` (at the cap,
//! the jitter spreads waits below it).
//! `EGeneral:Temporary lockout` waits `max_backoff` at once; `EService: Throttled: <ts>` waits until that
//! time (capped). A success resets it all.

use std::time::{Duration, SystemTime};

use crate::kraken::{ErrorReason, PollError};

/// The jitter range: each wait is scaled by a factor in `[1 - JITTER, 1 + JITTER]`.
const JITTER: f64 = 0.2;

/// Exponential backoff state of one account.
#[derive(Debug, Clone)]
pub struct Backoff {
    poll_interval: Duration,
    max_backoff: Duration,
    /// The un-jittered wait of the last failure; `None` after a success.
    current: Option<Duration>,
    rng: fastrand::Rng,
}

impl Backoff {
    /// `seed` makes the jitter reproducible in tests; any value works.
    pub fn new(poll_interval: Duration, max_backoff: Duration, seed: u64) -> Self {
        Self {
            poll_interval,
            max_backoff,
            current: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A success: the next failure starts over.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The wait before the next attempt after `error`, observed at wall-clock time `now`.
    pub fn after_failure(&mut self, error: &PollError, now: SystemTime) -> Duration {
        let base = self
            .current
            .map_or(self.poll_interval * 2, |last| last.saturating_mul(2))
            .min(self.max_backoff);
        self.current = Some(base);
        match error.reason {
            ErrorReason::Lockout => {
                self.current = Some(self.max_backoff);
                self.max_backoff
            }
            ErrorReason::RateLimited => match error.retry_at {
                Some(at) => at
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
                    .max(self.poll_interval)
                    .min(self.max_backoff),
                None => self.jittered(base),
            },
            _ => self.jittered(base),
        }
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        // Jitter needs spread, not cryptographic quality.
        let unit = self.rng.f64(); // [0, 1)
        let factor = 1.0 - JITTER + 2.0 * JITTER * unit;
        base.mul_f64(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn error(reason: ErrorReason) -> PollError {
        PollError::new(reason, "test")
    }

    fn within_jitter(wait: Duration, base: Duration) -> bool {
        wait >= base.mul_f64(0.8) && wait <= base.mul_f64(1.2)
    }

    #[test]
    fn waits_double_from_twice_the_interval_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(900), 7);
        let now = SystemTime::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(backoff.after_failure(&error(ErrorReason::Timeout), now));
        }
        for (wait, base) in waits.iter().zip([60, 120, 240, 480]) {
            assert!(
                within_jitter(*wait, Duration::from_secs(base)),
                "{wait:?} vs {base}"
            );
        }
        for wait in &waits[4..] {
            assert!(
                *wait <= Duration::from_secs(900) && *wait >= Duration::from_secs(720),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_waits() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(900), 99);
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                backoff.reset();
                backoff.after_failure(&error(ErrorReason::Http), SystemTime::now())
            })
            .collect();
        assert!(waits.len() > 10, "{waits:?}");
        assert!(waits
            .iter()
            .all(|w| within_jitter(*w, Duration::from_secs(60))));
    }

    #[test]
    fn success_resets_the_backoff() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(900), 3);
        for _ in 0..5 {
            backoff.after_failure(&error(ErrorReason::Decode), SystemTime::now());
        }
        backoff.reset();
        let wait = backoff.after_failure(&error(ErrorReason::Decode), SystemTime::now());
        assert!(within_jitter(wait, Duration::from_secs(20)), "{wait:?}");
    }

    #[test]
    fn lockout_waits_the_full_maximum_at_once() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(900), 5);
        let wait = backoff.after_failure(&error(ErrorReason::Lockout), SystemTime::now());
        assert_eq!(wait, Duration::from_secs(900));
    }

    #[test]
    fn throttled_waits_until_the_named_time_capped() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(900), 5);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let soon = PollError::from_kraken_errors(&["EService: Throttled: 1700000120".into()]);
        assert_eq!(backoff.after_failure(&soon, now), Duration::from_secs(120));
        let far = PollError::from_kraken_errors(&["EService: Throttled: 1700090000".into()]);
        assert_eq!(backoff.after_failure(&far, now), Duration::from_secs(900));
    }

    #[test]
    fn auth_and_nonce_errors_back_off_too() {
        for reason in [
            ErrorReason::InvalidKey,
            ErrorReason::InvalidSignature,
            ErrorReason::InvalidNonce,
            ErrorReason::PermissionDenied,
        ] {
            let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(900), 11);
            let first = backoff.after_failure(&error(reason), SystemTime::now());
            let second = backoff.after_failure(&error(reason), SystemTime::now());
            assert!(within_jitter(first, Duration::from_secs(60)), "{reason}");
            assert!(within_jitter(second, Duration::from_secs(120)), "{reason}");
        }
    }
}
