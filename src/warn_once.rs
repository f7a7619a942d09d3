//! Warnings given once per thing (an asset without a price, a colliding key), with a bounded memory
//! of what was warned about: an upstream that sends new names on every answer would otherwise grow
//! the set, and the log, without end.

use std::collections::HashSet;
use std::hash::Hash;

/// How many distinct things one set remembers; past it, one warning says so and the rest are quiet.
pub const WARN_ONCE_LIMIT: usize = 1000;

/// What to do about one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warn {
    /// New: warn about it.
    Now,
    /// Warned about before, or past the limit: stay quiet.
    Quiet,
    /// The limit was reached with this one: warn once that no more are named.
    LimitReached,
}

/// The things already warned about, at most [`WARN_ONCE_LIMIT`].
#[derive(Debug)]
pub struct WarnOnce<K> {
    seen: HashSet<K>,
    full: bool,
}

impl<K> Default for WarnOnce<K> {
    fn default() -> Self {
        Self {
            seen: HashSet::new(),
            full: false,
        }
    }
}

impl<K: Hash + Eq> WarnOnce<K> {
    /// Whether to warn about `key`.
    pub fn check(&mut self, key: K) -> Warn {
        if self.full || self.seen.contains(&key) {
            return Warn::Quiet;
        }
        if self.seen.len() == WARN_ONCE_LIMIT {
            self.full = true;
            // What was remembered is no longer needed: nothing more is warned about.
            self.seen = HashSet::new();
            return Warn::LimitReached;
        }
        self.seen.insert(key);
        Warn::Now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thing_is_warned_about_once_and_memory_stops_at_the_limit() {
        let mut warned = WarnOnce::default();
        assert_eq!(warned.check("XBT".to_string()), Warn::Now);
        assert_eq!(warned.check("XBT".to_string()), Warn::Quiet);
        for n in 1..WARN_ONCE_LIMIT {
            assert_eq!(warned.check(format!("asset{n}")), Warn::Now);
        }
        assert_eq!(warned.check("one too many".to_string()), Warn::LimitReached);
        assert_eq!(warned.seen.len(), 0, "memory given back");
        for n in 0..10_000 {
            assert_eq!(warned.check(format!("new{n}")), Warn::Quiet);
        }
        assert!(warned.seen.capacity() < WARN_ONCE_LIMIT);
    }
}
