//! The per-key nonce: `max(last + 1, milliseconds since the epoch)`.
//!
//! Kraken rejects any nonce not strictly greater than the last one it saw for the key, ever. Milliseconds
//! since the epoch survive restarts; `last + 1` survives clock steps backwards and bursts within one
//! millisecond. The client holds a [`NonceCounter`] under the same lock that signs and sends, so two
//! requests of one account can never be reordered on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out strictly increasing nonces for one API key.
#[derive(Debug, Default)]
pub struct NonceCounter {
    last: u64,
}

impl NonceCounter {
    /// The next nonce, given the current wall clock in milliseconds since the epoch.
    pub fn next_at(&mut self, now_ms: u64) -> u64 {
        let nonce = now_ms.max(self.last.saturating_add(1));
        self.last = nonce;
        nonce
    }

    /// The next nonce at the current wall clock.
    pub fn next_now(&mut self) -> u64 {
        self.next_at(now_ms())
    }
}

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970 (then `last + 1` still increases).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_clock_when_it_moves_forward() {
        let mut counter = NonceCounter::default();
        assert_eq!(counter.next_at(1_000), 1_000);
        assert_eq!(counter.next_at(5_000), 5_000);
    }

    #[test]
    fn increases_within_one_millisecond_and_across_clock_steps_back() {
        let mut counter = NonceCounter::default();
        assert_eq!(counter.next_at(1_000), 1_000);
        assert_eq!(counter.next_at(1_000), 1_001);
        assert_eq!(counter.next_at(10), 1_002);
    }

    #[test]
    fn wall_clock_nonce_is_milliseconds_since_epoch() {
        let before = now_ms();
        let nonce = NonceCounter::default().next_now();
        // 2020-01-01 in ms: a seconds or microseconds nonce would fall far outside this range.
        assert!(nonce >= before && nonce > 1_577_836_800_000 && nonce < 10_000_000_000_000);
    }
}
