//! Registry families whose series belong to one account and are replaced as a whole by each answer:
//! the series set before and missing now are removed, so a strategy or a position that went away does
//! not linger.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::GaugeVec;

use super::lock;

/// A gauge family whose first label is `account`.
pub(super) struct AccountSeries {
    gauge: GaugeVec,
    /// Per account, the label values (after `account`) exported now.
    exported: Mutex<BTreeMap<String, BTreeSet<Vec<String>>>>,
}

impl AccountSeries {
    pub(super) fn new(gauge: GaugeVec) -> Self {
        Self {
            gauge,
            exported: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the account's series to exactly `rows` (label values after `account`, and the value).
    pub(super) fn replace(&self, account: &str, rows: &[(Vec<String>, f64)]) {
        let mut exported = lock(&self.exported);
        let before = exported.remove(account).unwrap_or_default();
        let mut now = BTreeSet::new();
        for (labels, value) in rows {
            let values = with_account(account, labels);
            self.gauge.with_label_values(&values).set(*value);
            now.insert(labels.clone());
        }
        for labels in before.difference(&now) {
            // Present since it was set; nothing to undo if it is not.
            let _ = self
                .gauge
                .remove_label_values(&with_account(account, labels));
        }
        if !now.is_empty() {
            exported.insert(account.to_string(), now);
        }
    }

    /// Sets one series of the account, keeping the others.
    pub(super) fn set(&self, account: &str, labels: Vec<String>, value: f64) {
        let mut exported = lock(&self.exported);
        self.gauge
            .with_label_values(&with_account(account, &labels))
            .set(value);
        exported
            .entry(account.to_string())
            .or_default()
            .insert(labels);
    }

    /// The value of one series, if it is exported.
    pub(super) fn value(&self, account: &str, labels: &[String]) -> Option<f64> {
        let exported = lock(&self.exported);
        exported.get(account)?.get(labels)?;
        self.gauge
            .get_metric_with_label_values(&with_account(account, labels))
            .ok()
            .map(|gauge| gauge.get())
    }

    /// Removes every series of the account.
    pub(super) fn clear(&self, account: &str) {
        self.replace(account, &[]);
    }
}

fn with_account<'a>(account: &'a str, labels: &'a [String]) -> Vec<&'a str> {
    std::iter::once(account)
        .chain(labels.iter().map(String::as_str))
        .collect()
}
