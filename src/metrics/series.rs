//! The two kinds of family a collector registers, both replaced per account as a whole by each answer
//! (what was exported before and is missing now is removed, so a strategy or an asset that went away
//! does not linger), and who owns them ([`Scope`]), which is how they are cleared.
//!
//! - [`AccountSeries`]: a `prometheus` gauge family whose first label is `account` (or, for a family
//!   that belongs to no account, no account label at all).
//! - [`RenderedFamilies`]: families rendered by hand into one chunk per account and family, for the
//!   thousands of balance series a registry would make slow.
//!
//! The bookkeeping of both (which label sets each account exports, each account's chunks) lives in
//! the one [`State`](super::State) that [`Metrics::update`](super::Metrics::update) locks.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::GaugeVec;

use super::{Changes, Metrics};
use crate::exposition::{Encoded, GaugeFamily};

/// Who a family belongs to, and so when it is cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Figures an endpoint's answers feed (by Kraken method name): removed when they go stale, when
    /// the account stops polling the endpoint, and with the account.
    Data(&'static str),
    /// What the configuration of an endpoint exports (thresholds): kept when data goes stale,
    /// removed when the account stops polling the endpoint, and with the account.
    Configured(&'static str),
    /// Series of no account (prices): replaced as a whole, never cleared per account.
    Global,
}

impl Scope {
    /// Whether clearing `endpoint` (its configured series too when `configured`) removes this family.
    pub(super) fn cleared_by(self, endpoint: &str, configured: bool) -> bool {
        match self {
            Self::Data(owner) => owner == endpoint,
            Self::Configured(owner) => configured && owner == endpoint,
            Self::Global => false,
        }
    }
}

/// What [`State`](super::State) keeps of one [`AccountSeries`]: per account, the label values (after
/// `account`) exported now.
pub(super) struct Exported {
    pub(super) scope: Scope,
    pub(super) gauge: GaugeVec,
    pub(super) by_account: BTreeMap<String, BTreeSet<Vec<String>>>,
}

impl Exported {
    /// Sets the account's series to exactly `rows`.
    fn replace(&mut self, account: &str, rows: &[(Vec<String>, f64)]) {
        let before = self.by_account.remove(account).unwrap_or_default();
        let mut now = BTreeSet::new();
        for (labels, value) in rows {
            self.gauge
                .with_label_values(&self.label_values(account, labels))
                .set(*value);
            now.insert(labels.clone());
        }
        for labels in before.difference(&now) {
            // Present since it was set; nothing to undo if it is not.
            let _ = self
                .gauge
                .remove_label_values(&self.label_values(account, labels));
        }
        if !now.is_empty() {
            self.by_account.insert(account.to_string(), now);
        }
    }

    pub(super) fn clear(&mut self, account: &str) {
        self.replace(account, &[]);
    }

    fn label_values<'a>(&self, account: &'a str, labels: &'a [String]) -> Vec<&'a str> {
        let owner = (self.scope != Scope::Global).then_some(account);
        owner
            .into_iter()
            .chain(labels.iter().map(String::as_str))
            .collect()
    }
}

/// A registry gauge family replaced per account; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct AccountSeries {
    index: usize,
}

impl AccountSeries {
    /// Registers the family: `labels` are those after `account` (a [`Scope::Global`] family has no
    /// `account` label).
    pub fn register(
        metrics: &Metrics,
        scope: Scope,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Self {
        let all: Vec<&str> = (scope != Scope::Global)
            .then_some("account")
            .into_iter()
            .chain(labels.iter().copied())
            .collect();
        let gauge = metrics.gauge_vec(name, help, &all);
        let mut state = super::lock(&metrics.state);
        state.series.push(Exported {
            scope,
            gauge,
            by_account: BTreeMap::new(),
        });
        Self {
            index: state.series.len() - 1,
        }
    }

    /// Sets the account's series to exactly `rows` (label values after `account`, and the value); for
    /// a global family `account` is ignored.
    pub fn replace(&self, changes: &mut Changes<'_>, account: &str, rows: &[(Vec<String>, f64)]) {
        changes.state.series[self.index].replace(account, rows);
    }

    /// Sets one series of the account, keeping the others.
    pub fn set(&self, changes: &mut Changes<'_>, account: &str, labels: Vec<String>, value: f64) {
        let exported = &mut changes.state.series[self.index];
        exported
            .gauge
            .with_label_values(&exported.label_values(account, &labels))
            .set(value);
        exported
            .by_account
            .entry(account.to_string())
            .or_default()
            .insert(labels);
    }

    /// The value of one series, if it is exported.
    pub fn value(&self, changes: &Changes<'_>, account: &str, labels: &[String]) -> Option<f64> {
        let exported = &changes.state.series[self.index];
        exported.by_account.get(account)?.get(labels)?;
        exported
            .gauge
            .get_metric_with_label_values(&exported.label_values(account, labels))
            .ok()
            .map(|gauge| gauge.get())
    }

    /// Removes every series of the account.
    pub fn clear(&self, changes: &mut Changes<'_>, account: &str) {
        changes.state.series[self.index].clear(account);
    }
}

/// What [`State`](super::State) keeps of one [`RenderedFamilies`]: the families' headers and each
/// account's chunks, one per family, in the families' order.
pub(super) struct Rendered {
    pub(super) scope: Scope,
    pub(super) headers: Vec<Encoded>,
    pub(super) chunks: BTreeMap<String, Vec<Encoded>>,
}

/// Families rendered by hand, one chunk per account and family; see the module docs. They are served
/// before the registry, in the order they were registered.
#[derive(Debug, Clone, Copy)]
pub struct RenderedFamilies {
    index: usize,
}

impl RenderedFamilies {
    pub fn register(metrics: &Metrics, scope: Scope, families: &[GaugeFamily]) -> Self {
        let mut state = super::lock(&metrics.state);
        state.rendered.push(Rendered {
            scope,
            headers: families.iter().map(GaugeFamily::header).collect(),
            chunks: BTreeMap::new(),
        });
        Self {
            index: state.rendered.len() - 1,
        }
    }

    /// Replaces the account's chunks: one per family, in the order the families were registered.
    pub fn replace(&self, changes: &mut Changes<'_>, account: &str, chunks: Vec<Encoded>) {
        let rendered = &mut changes.state.rendered[self.index];
        debug_assert_eq!(chunks.len(), rendered.headers.len(), "one chunk per family");
        rendered.chunks.insert(account.to_string(), chunks);
    }

    /// Removes every series of the account.
    pub fn clear(&self, changes: &mut Changes<'_>, account: &str) {
        changes.state.rendered[self.index].chunks.remove(account);
    }
}
