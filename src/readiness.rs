//! Which accounts have completed a successful poll; `/ready` answers 200 only once all have.

use std::sync::atomic::{AtomicBool, Ordering};

/// One flag per account, set by the poller after its first success and never cleared.
#[derive(Debug)]
pub struct Readiness {
    accounts: Vec<(String, AtomicBool)>,
}

impl Readiness {
    pub fn new<S: AsRef<str>>(accounts: &[S]) -> Self {
        Self {
            accounts: accounts
                .iter()
                .map(|a| (a.as_ref().to_string(), AtomicBool::new(false)))
                .collect(),
        }
    }

    pub fn mark_succeeded(&self, account: &str) {
        if let Some((_, flag)) = self.accounts.iter().find(|(name, _)| name == account) {
            flag.store(true, Ordering::Release);
        }
    }

    /// The accounts still waiting for their first successful poll (empty when ready).
    pub fn waiting(&self) -> Vec<&str> {
        self.accounts
            .iter()
            .filter(|(_, flag)| !flag.load(Ordering::Acquire))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_every_account_succeeded_once() {
        let readiness = Readiness::new(&["a", "b"]);
        assert_eq!(readiness.waiting(), vec!["a", "b"]);
        readiness.mark_succeeded("a");
        assert_eq!(readiness.waiting(), vec!["b"]);
        readiness.mark_succeeded("b");
        assert!(readiness.waiting().is_empty());
    }
}
