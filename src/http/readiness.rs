//! Which accounts have completed a successful poll; `/ready` answers 200 only once all have.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// One flag per configured account, set by its poller after its first success and cleared only
/// while its poller is being started again after it died; a reload adds and removes accounts.
#[derive(Debug, Default)]
pub struct Readiness {
    accounts: RwLock<BTreeMap<String, bool>>,
}

impl Readiness {
    pub fn new<S: AsRef<str>>(accounts: &[S]) -> Self {
        let readiness = Self::default();
        readiness.set_accounts(accounts);
        readiness
    }

    /// Keeps the flags of accounts that stay, adds new ones as waiting, forgets removed ones.
    pub fn set_accounts<S: AsRef<str>>(&self, accounts: &[S]) {
        let mut flags = crate::sync::write(&self.accounts);
        let kept: BTreeMap<String, bool> = accounts
            .iter()
            .map(|name| {
                let name = name.as_ref();
                (name.to_string(), flags.get(name).copied().unwrap_or(false))
            })
            .collect();
        *flags = kept;
    }

    pub fn mark_succeeded(&self, account: &str) {
        let mut flags = crate::sync::write(&self.accounts);
        if let Some(flag) = flags.get_mut(account) {
            *flag = true;
        }
    }

    /// The account waits again for a successful poll (its poller died and is started again).
    pub fn mark_waiting(&self, account: &str) {
        if let Some(flag) = crate::sync::write(&self.accounts).get_mut(account) {
            *flag = false;
        }
    }

    /// The accounts still waiting for their first successful poll (empty when ready).
    pub fn waiting(&self) -> Vec<String> {
        crate::sync::read(&self.accounts)
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(name, _)| name.clone())
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

    #[test]
    fn a_reload_keeps_the_flags_of_accounts_that_stay() {
        let readiness = Readiness::new(&["a", "b"]);
        readiness.mark_succeeded("a");
        readiness.mark_succeeded("b");
        readiness.set_accounts(&["a", "c"]);
        assert_eq!(readiness.waiting(), vec!["c"]);
    }
}
