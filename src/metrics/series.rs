//! The families collectors register, all rendered by hand into one chunk per account and family (the
//! one render path), and who owns them ([`Scope`]), which is how they are cleared.
//!
//! - [`AccountSeries`]: a gauge or counter family whose first label is `account` (or, for a family
//!   that belongs to no account, no account label at all), set row by row or replaced per account
//!   as a whole (what was exported before and is missing now is removed, so a strategy or an asset
//!   that went away does not linger). Two registrations of one name share the family, each owning
//!   its own rows (the key families of the spot and the futures key, told apart by `api`).
//! - [`RenderedFamilies`]: families whose chunks the collector renders itself, for the thousands of
//!   balance series.
//! - [`Histogram`]: a histogram per account (the poll durations).
//!
//! A change marks the account's part of the family. A histogram's chunk is rendered again when
//! [`Metrics::update`](super::Metrics::update) ends; a gauge or counter family is one text (its only
//! rendered copy), and the next scrape renders the marked accounts' lines into it and copies
//! everyone else's from the last text. Either way an update or a scrape renders what changed,
//! whatever the number of accounts. The bookkeeping lives in the one [`State`](super::State) that
//! `update` locks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

use super::{Changes, Metrics, State};
use crate::exposition::{render_labels, render_labels_into, write_value, Encoded, GaugeFamily};

/// Who a family belongs to, and so when it is cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Figures an endpoint's answers feed (by Kraken method name): removed when they go stale, when
    /// the account stops polling the endpoint, and with the account.
    Data(&'static str),
    /// What the configuration of an endpoint exports (thresholds): kept when data goes stale,
    /// removed when the account stops polling the endpoint, and with the account.
    Configured(&'static str),
    /// The account's own health (`kraken_up`): removed with the account only.
    Account,
    /// Series of no account (prices): replaced as a whole, never cleared per account.
    Global,
}

impl Scope {
    /// Whether clearing `endpoint` (its configured series too when `configured`) removes this family.
    pub(super) fn cleared_by(self, endpoint: &str, configured: bool) -> bool {
        match self {
            Self::Data(owner) => owner == endpoint,
            Self::Configured(owner) => configured && owner == endpoint,
            Self::Account | Self::Global => false,
        }
    }
}

/// The key of a family that belongs to no account in the per-account maps.
const NO_ACCOUNT: &str = "";

/// One slot of the exposition, in registration order.
pub(super) enum Slot {
    Series(Exported),
    Rendered(Rendered),
    Histogram(HistogramSlot),
}

impl Slot {
    /// Removes every series of `account` (it went away), global families apart.
    pub(super) fn remove_account(&mut self, account: &str) {
        match self {
            Self::Series(exported) => {
                if exported.per_account {
                    for owner in &mut exported.owners {
                        owner.rows.remove(account);
                    }
                    if exported.lengths.contains_key(account) {
                        exported.mark(account);
                    }
                }
            }
            Self::Rendered(rendered) => {
                rendered.chunks.remove(account);
            }
            Self::Histogram(histogram) => {
                if histogram.accounts.remove(account).is_some() {
                    histogram.joined = None;
                }
            }
        }
    }

    /// Removes the account's series `endpoint` owns (its configured ones too with `configured`);
    /// whether any were removed (the account's part of the family is then marked).
    pub(super) fn clear_endpoint(
        &mut self,
        account: &str,
        endpoint: &str,
        configured: bool,
    ) -> bool {
        match self {
            Self::Series(exported) => {
                let mut changed = false;
                for owner in &mut exported.owners {
                    if owner.scope.cleared_by(endpoint, configured) {
                        changed |= owner.rows.remove(account).is_some();
                    }
                }
                changed
            }
            Self::Rendered(rendered) => {
                rendered.scope.cleared_by(endpoint, configured)
                    && rendered.chunks.remove(account).is_some()
            }
            Self::Histogram(_) => false,
        }
    }

    /// Renders the account's chunk again from its rows (a gauge or counter family's lines are
    /// rendered by the next scrape, into the family's text).
    pub(super) fn render(&mut self, account: &str) {
        match self {
            Self::Series(exported) => exported.mark(account),
            Self::Histogram(histogram) => histogram.render(account),
            Self::Rendered(_) => {}
        }
    }

    /// Appends this slot's part of the exposition: each family's header, then its chunks by account.
    /// The small chunks of a gauge, counter or histogram family are joined into one text (one gzip
    /// member, which compresses far better than a member per line), kept until the family changes;
    /// the large chunks of rendered families are served as they are.
    pub(super) fn assemble(&mut self, parts: &mut Vec<Encoded>) {
        match self {
            Self::Series(exported) => {
                if !exported.dirty.is_empty() || exported.joined.is_none() {
                    exported.splice();
                }
                if let (false, Some(joined)) = (exported.lengths.is_empty(), &exported.joined) {
                    parts.push(joined.clone());
                }
            }
            Self::Rendered(rendered) => {
                for (index, header) in rendered.headers.iter().enumerate() {
                    let lines: Vec<&Encoded> = rendered
                        .chunks
                        .values()
                        .map(|account| &account[index])
                        .filter(|chunk| !chunk.is_empty())
                        .collect();
                    if !lines.is_empty() {
                        parts.push(header.clone());
                        parts.extend(lines.into_iter().cloned());
                    }
                }
            }
            Self::Histogram(histogram) => {
                if !histogram.accounts.is_empty() {
                    let joined = histogram.joined.get_or_insert_with(|| {
                        join(
                            &histogram.header,
                            histogram.accounts.values().map(|(_, chunk)| chunk),
                        )
                    });
                    parts.push(joined.clone());
                }
            }
        }
    }
}

/// `header` and `chunks` as one text.
fn join<'a>(header: &Encoded, chunks: impl Iterator<Item = &'a Bytes> + Clone) -> Encoded {
    let length = header.plain().len() + chunks.clone().map(|c| c.len()).sum::<usize>();
    let mut text = Vec::with_capacity(length);
    text.extend_from_slice(header.plain());
    for chunk in chunks {
        text.extend_from_slice(chunk);
    }
    Encoded::of(text)
}

/// A histogram's chunk: its text only (it is served joined, never compressed on its own).
fn chunk(text: String) -> Bytes {
    crate::exposition::kept(text.into_bytes())
}

/// A gauge or counter family rendered from its rows.
pub(super) struct Exported {
    name: String,
    header: Encoded,
    /// The label names after `account`, as registered (the order of the label values callers pass).
    labels: Vec<String>,
    /// The indices of `labels` in the order of their names: a row's key renders its pairs so.
    sorted: Vec<usize>,
    per_account: bool,
    owners: Vec<Owner>,
    /// The header and every account's lines as one text (the family's only rendered copy: at
    /// 1,000 accounts a family has a thousand accounts of a line or two, which as chunks of their
    /// own cost more in bookkeeping than in text), as of the last scrape.
    joined: Option<Encoded>,
    /// The length of each account's lines in `joined`, in account order (one entry, under
    /// [`NO_ACCOUNT`], for a family of no account).
    lengths: BTreeMap<Account, usize>,
    /// Accounts whose rows changed since `joined` was made: the next scrape renders their lines
    /// again and copies everyone else's from `joined`.
    dirty: BTreeSet<Account>,
    /// Accounts rendered, for tests that an update renders only what it changed.
    #[cfg(test)]
    pub(super) renders: usize,
}

/// What one registration of a family exports: per account, its rows.
struct Owner {
    scope: Scope,
    rows: BTreeMap<Account, Rows>,
}

/// An account's name as the families' maps keep it: one shared copy for all of them (with 1,000
/// accounts, some fifty families each kept a copy of every name in each of their maps).
type Account = Arc<str>;

/// The shared copy of `account`'s name. A name stays after its account is removed: the names an
/// instance was ever configured with.
fn account_name(account: &str) -> Account {
    static NAMES: std::sync::Mutex<BTreeSet<Account>> = std::sync::Mutex::new(BTreeSet::new());
    crate::sync::intern(&NAMES, account, |name: &str| Arc::from(name))
}

/// An account's rows, sorted by key: the label pairs after `account` rendered as they are served
/// (`asset="XBT",family="spot"`: one allocation per row, where a vector of label values took one per
/// value and a map node besides; at 1,000 accounts that was most of the exporter's memory), and the
/// value.
type Rows = Vec<(Box<str>, f64)>;

thread_local! {
    /// The key a series is looked up by (a poll sets a dozen health series; each rendered its key
    /// into a text of its own).
    static SCRATCH_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `f` with this thread's key text, emptied, for a key rendered only to look a row up.
fn with_scratch_key<R>(f: impl FnOnce(&mut String) -> R) -> R {
    SCRATCH_KEY.with_borrow_mut(|key| {
        key.clear();
        f(key)
    })
}

/// Where the row of `key` is in `rows`, or where it would go.
fn find(rows: &Rows, key: &str) -> Result<usize, usize> {
    rows.binary_search_by(|(k, _)| (**k).cmp(key))
}

impl Exported {
    /// Marks the account's lines to be rendered again by the next scrape.
    fn mark(&mut self, account: &str) {
        if !self.dirty.contains(account) {
            self.dirty.insert(account_name(account));
        }
    }

    /// The length of a row's key ([`Exported::key_into`]) when no value needs escaping.
    fn key_length(&self, values: &[String]) -> usize {
        self.labels
            .iter()
            .zip(values)
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum()
    }

    /// The key of a row, appended to `out`: its label values (after `account`, in registration
    /// order) rendered as pairs in the order of the label names, as the `prometheus` crate writes
    /// them. Rendered into a text that is used again ([`with_scratch_key`], or one text for a poll's
    /// rows), so a row is looked up, or a poll's rows compared with the exported ones, without a
    /// text of its own (most polls change few rows, or none).
    fn key_into(&self, values: &[String], out: &mut String) {
        let pairs = self
            .sorted
            .iter()
            .filter_map(|&i| Some((self.labels[i].as_str(), values.get(i)?.as_str())));
        for (index, pair) in pairs.enumerate() {
            if index > 0 {
                out.push(',');
            }
            render_labels_into(&[pair], out);
        }
    }

    /// Makes the family's text again: the lines of each dirty account rendered from its rows,
    /// everyone else's copied from the last text.
    fn splice(&mut self) {
        let old = self.joined.take();
        let old = old.as_ref().map_or(&[][..], |joined| joined.plain());
        let dirty = std::mem::take(&mut self.dirty);
        let old_lengths = std::mem::take(&mut self.lengths);
        let mut text = Vec::with_capacity(old.len() + dirty.len() * 128);
        text.extend_from_slice(self.header.plain());
        // Where the next account's lines start in the old text (after its header).
        let mut at = self.header.plain().len().min(old.len());
        let mut lines = String::new();
        let accounts = Merged::new(&old_lengths, &dirty);
        for (account, old_length, is_dirty) in accounts {
            let old_length = old_length.unwrap_or(0);
            let length = if is_dirty {
                lines.clear();
                self.render_into(account, &mut lines);
                text.extend_from_slice(lines.as_bytes());
                #[cfg(test)]
                {
                    self.renders += 1;
                }
                lines.len()
            } else {
                text.extend_from_slice(&old[at..at + old_length]);
                old_length
            };
            at += old_length;
            if length > 0 {
                self.lengths.insert(Arc::clone(account), length);
            }
        }
        self.joined = Some(Encoded::of(text));
    }

    /// Appends the account's lines, rendered from every owner's rows.
    fn render_into(&self, account: &str, text: &mut String) {
        let mut merged: Vec<(&str, f64)> = Vec::new();
        for owner in &self.owners {
            if let Some(rows) = owner.rows.get(account) {
                merged.extend(rows.iter().map(|(key, value)| (&**key, *value)));
            }
        }
        if merged.is_empty() {
            return;
        }
        if self.owners.len() > 1 {
            // Each owner's rows are sorted; the family's lines are too.
            merged.sort_by(|a, b| a.0.cmp(b.0));
        }
        // `name{account="..."`, the part every line of the account shares (the `account` label first:
        // no other label name sorts before it).
        let mut prefix = self.name.clone();
        if self.per_account {
            prefix.push('{');
            render_labels_into(&[("account", account)], &mut prefix);
        }
        text.reserve(merged.len() * (prefix.len() + 40));
        for (key, value) in merged {
            text.push_str(&prefix);
            match (self.per_account, key.is_empty()) {
                (true, true) => text.push('}'),
                (true, false) => {
                    text.push(',');
                    text.push_str(key);
                    text.push('}');
                }
                (false, true) => {}
                (false, false) => {
                    text.push('{');
                    text.push_str(key);
                    text.push('}');
                }
            }
            text.push(' ');
            write_value(value, text);
            text.push('\n');
        }
    }
}

/// The accounts of the last text (with their lengths) and the dirty ones as one sorted sequence,
/// each account once: (account, its length in the last text, whether it is dirty).
struct Merged<'a> {
    old: std::iter::Peekable<std::collections::btree_map::Iter<'a, Account, usize>>,
    dirty: std::iter::Peekable<std::collections::btree_set::Iter<'a, Account>>,
}

impl<'a> Merged<'a> {
    fn new(old: &'a BTreeMap<Account, usize>, dirty: &'a BTreeSet<Account>) -> Self {
        Self {
            old: old.iter().peekable(),
            dirty: dirty.iter().peekable(),
        }
    }
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a Account, Option<usize>, bool);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.old.peek(), self.dirty.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((old, _)), Some(dirty)) => (*old).cmp(*dirty),
        };
        Some(match order {
            std::cmp::Ordering::Less => {
                let (account, length) = self.old.next()?;
                (account, Some(*length), false)
            }
            std::cmp::Ordering::Equal => {
                self.dirty.next();
                let (account, length) = self.old.next()?;
                (account, Some(*length), true)
            }
            std::cmp::Ordering::Greater => (self.dirty.next()?, None, true),
        })
    }
}

/// Whether a family is a gauge or a counter (its `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// A gauge or counter family of per-account rows; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct AccountSeries {
    slot: usize,
    owner: usize,
}

impl AccountSeries {
    /// Registers a gauge family: `labels` are those after `account` (a [`Scope::Global`] family has
    /// no `account` label). A second registration of `name` shares the family, with rows of its own.
    pub fn register(
        metrics: &Metrics,
        scope: Scope,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Self {
        Self::register_kind(metrics, Kind::Gauge, scope, name, help, labels)
    }

    /// As [`AccountSeries::register`], of a `kind`.
    pub fn register_kind(
        metrics: &Metrics,
        kind: Kind,
        scope: Scope,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Self {
        let mut state = super::lock(&metrics.state);
        register_in(&mut state, kind, scope, name, help, labels)
    }

    /// Sets the account's series to exactly `rows` (label values after `account`, and the value); for
    /// a global family `account` is ignored. Rows equal to those exported (same labels, values the
    /// same to the bit) change nothing: the account's chunk is not rendered again and the family's
    /// joined text is kept.
    pub fn replace(&self, changes: &mut Changes<'_>, account: &str, rows: &[(Vec<String>, f64)]) {
        let account = self.key(changes.state, account);
        let exported = self.exported(changes.state);
        // The keys rendered into one text, then sorted; of two rows with one key the last is kept.
        // Rows are made (a text each) only when they differ from those exported.
        let mut keys = String::with_capacity(
            rows.iter()
                .map(|(labels, _)| exported.key_length(labels))
                .sum(),
        );
        let mut new: Vec<(std::ops::Range<usize>, f64)> = Vec::with_capacity(rows.len());
        for (labels, value) in rows {
            let start = keys.len();
            exported.key_into(labels, &mut keys);
            new.push((start..keys.len(), *value));
        }
        // Compared as bytes: the order of `str` (and no char boundary to check on every comparison).
        let bytes = keys.as_bytes();
        new.sort_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
        new.dedup_by(|later, kept| {
            let same = bytes[later.0.clone()] == bytes[kept.0.clone()];
            if same {
                kept.1 = later.1;
            }
            same
        });
        let owner = &mut exported.owners[self.owner];
        if new.is_empty() {
            if owner.rows.remove(account).is_none() {
                return;
            }
        } else {
            let old = owner.rows.get_mut(account);
            if let Some(old) = &old {
                // The same series with the same values, to the bit (a NaN equals the same NaN, so
                // a NaN figure is not rendered again on every poll).
                let same = old.len() == new.len()
                    && old.iter().zip(&new).all(|((key, value), (range, new))| {
                        key.as_bytes() == &bytes[range.clone()] && value.to_bits() == new.to_bits()
                    });
                if same {
                    return;
                }
            }
            let new: Rows = new
                .into_iter()
                .map(|(range, value)| (Box::from(&keys[range]), value))
                .collect();
            match old {
                Some(old) => *old = new,
                None => {
                    owner.rows.insert(account_name(account), new);
                }
            }
        }
        changes.mark(self.slot, account);
    }

    /// Sets one series of the account, keeping the others (nothing changes when it already has
    /// this value).
    pub fn set(&self, changes: &mut Changes<'_>, account: &str, labels: Vec<String>, value: f64) {
        self.change(changes, account, &labels, |old| match old {
            Some(old) if old.to_bits() == value.to_bits() => None,
            _ => Some(value),
        });
    }

    /// Adds `delta` to one series of the account (a counter), creating it at `delta`.
    pub fn add(&self, changes: &mut Changes<'_>, account: &str, labels: Vec<String>, delta: f64) {
        self.change(changes, account, &labels, |old| match old {
            Some(_) if delta == 0.0 => None,
            Some(old) => Some(old + delta),
            None => Some(delta),
        });
    }

    /// Sets one series of the account to what `new` makes of its value (`None` when it has none),
    /// or leaves it when `new` gives nothing.
    fn change(
        &self,
        changes: &mut Changes<'_>,
        account: &str,
        labels: &[String],
        new: impl FnOnce(Option<f64>) -> Option<f64>,
    ) {
        let account = self.key(changes.state, account);
        let exported = self.exported(changes.state);
        let changed = with_scratch_key(|key| {
            exported.key_into(labels, key);
            let owner = &mut exported.owners[self.owner];
            let rows = match owner.rows.get_mut(account) {
                Some(rows) => rows,
                None => owner.rows.entry(account_name(account)).or_default(),
            };
            match find(rows, key) {
                Ok(at) => match new(Some(rows[at].1)) {
                    Some(value) => rows[at].1 = value,
                    None => return false,
                },
                Err(at) => match new(None) {
                    Some(value) => rows.insert(at, (Box::from(key.as_str()), value)),
                    None => {
                        if rows.is_empty() {
                            owner.rows.remove(account);
                        }
                        return false;
                    }
                },
            }
            true
        });
        if changed {
            changes.mark(self.slot, account);
        }
    }

    /// Removes one series of the account.
    pub fn remove(&self, changes: &mut Changes<'_>, account: &str, labels: &[String]) {
        let account = self.key(changes.state, account);
        let exported = self.exported(changes.state);
        let removed = with_scratch_key(|key| {
            exported.key_into(labels, key);
            let owner = &mut exported.owners[self.owner];
            let Some(rows) = owner.rows.get_mut(account) else {
                return false;
            };
            let Ok(at) = find(rows, key) else {
                return false;
            };
            rows.remove(at);
            if rows.is_empty() {
                owner.rows.remove(account);
            }
            true
        });
        if removed {
            changes.mark(self.slot, account);
        }
    }

    /// The value of one series, if it is exported.
    pub fn value(&self, changes: &Changes<'_>, account: &str, labels: &[String]) -> Option<f64> {
        let Slot::Series(exported) = &changes.state.slots[self.slot] else {
            unreachable!("an AccountSeries names a series slot");
        };
        let account = if exported.per_account {
            account
        } else {
            NO_ACCOUNT
        };
        let rows = exported.owners[self.owner].rows.get(account)?;
        with_scratch_key(|key| {
            exported.key_into(labels, key);
            let at = find(rows, key).ok()?;
            Some(rows[at].1)
        })
    }

    /// Removes every series of the account.
    pub fn clear(&self, changes: &mut Changes<'_>, account: &str) {
        self.replace(changes, account, &[]);
    }

    fn exported<'s>(&self, state: &'s mut State) -> &'s mut Exported {
        let Slot::Series(exported) = &mut state.slots[self.slot] else {
            unreachable!("an AccountSeries names a series slot");
        };
        exported
    }

    /// The key of `account`'s rows: the account, or none for a global family.
    fn key<'a>(&self, state: &State, account: &'a str) -> &'a str {
        match &state.slots[self.slot] {
            Slot::Series(exported) if !exported.per_account => NO_ACCOUNT,
            _ => account,
        }
    }
}

/// Registers a family (or another owner of it) in `state`.
pub(super) fn register_in(
    state: &mut State,
    kind: Kind,
    scope: Scope,
    name: &str,
    help: &str,
    labels: &[&str],
) -> AccountSeries {
    let owner = Owner {
        scope,
        rows: BTreeMap::new(),
    };
    if let Some(&slot) = state.names.get(name) {
        let Slot::Series(exported) = &mut state.slots[slot] else {
            unreachable!("a name registered as a series family");
        };
        exported.owners.push(owner);
        return AccountSeries {
            slot,
            owner: exported.owners.len() - 1,
        };
    }
    let per_account = scope != Scope::Global;
    let kind_name = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    state.slots.push(Slot::Series(Exported {
        name: name.to_string(),
        header: Encoded::of(format!("# HELP {name} {help}\n# TYPE {name} {kind_name}\n")),
        labels: labels.iter().copied().map(str::to_string).collect(),
        sorted: {
            let mut sorted: Vec<usize> = (0..labels.len()).collect();
            sorted.sort_by_key(|&i| labels[i]);
            sorted
        },
        per_account,
        owners: vec![owner],
        joined: None,
        lengths: BTreeMap::new(),
        dirty: BTreeSet::new(),
        #[cfg(test)]
        renders: 0,
    }));
    let slot = state.slots.len() - 1;
    state.names.insert(name.to_string(), slot);
    AccountSeries { slot, owner: 0 }
}

/// Families rendered by the collector, one chunk per account and family, for the thousands of
/// balance series.
pub(super) struct Rendered {
    pub(super) scope: Scope,
    pub(super) headers: Vec<Encoded>,
    pub(super) chunks: BTreeMap<Account, Vec<Encoded>>,
}

/// Families rendered by hand, one chunk per account and family; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct RenderedFamilies {
    slot: usize,
}

impl RenderedFamilies {
    pub fn register(metrics: &Metrics, scope: Scope, families: &[GaugeFamily]) -> Self {
        let mut state = super::lock(&metrics.state);
        state.slots.push(Slot::Rendered(Rendered {
            scope,
            headers: families.iter().map(GaugeFamily::header).collect(),
            chunks: BTreeMap::new(),
        }));
        Self {
            slot: state.slots.len() - 1,
        }
    }

    fn rendered<'s>(&self, state: &'s mut State) -> &'s mut Rendered {
        let Slot::Rendered(rendered) = &mut state.slots[self.slot] else {
            unreachable!("a RenderedFamilies names a rendered slot");
        };
        rendered
    }

    /// Replaces the account's chunks: one per family, in the order the families were registered.
    /// A chunk whose text did not change keeps its bytes (and its gzip).
    pub fn replace(&self, changes: &mut Changes<'_>, account: &str, chunks: Vec<Encoded>) {
        let rendered = self.rendered(changes.state);
        debug_assert_eq!(chunks.len(), rendered.headers.len(), "one chunk per family");
        let chunks = match rendered.chunks.get(account) {
            Some(old) => chunks
                .into_iter()
                .zip(old)
                .map(|(new, old)| {
                    if new.plain() == old.plain() {
                        old.clone()
                    } else {
                        new
                    }
                })
                .collect(),
            None => chunks,
        };
        rendered.chunks.insert(account_name(account), chunks);
        changes.state.version += 1;
    }

    /// Removes every series of the account.
    pub fn clear(&self, changes: &mut Changes<'_>, account: &str) {
        self.rendered(changes.state).chunks.remove(account);
        changes.state.version += 1;
    }
}

/// A histogram per account: its bucket counts, sum and count, and its rendered chunk.
pub(super) struct HistogramSlot {
    name: String,
    header: Encoded,
    bounds: Vec<f64>,
    /// The `le` label values of the bounds, then `+Inf`.
    les: Vec<String>,
    accounts: BTreeMap<Account, (Observed, Bytes)>,
    /// The header and every chunk as one text, until a chunk changes.
    joined: Option<Encoded>,
}

#[derive(Default, Clone)]
struct Observed {
    /// Per bound: observations at or below it (not cumulative).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl HistogramSlot {
    fn render(&mut self, account: &str) {
        self.joined = None;
        let Some((observed, chunk)) = self.accounts.get_mut(account) else {
            return;
        };
        let mut text = String::with_capacity((self.les.len() + 2) * (self.name.len() + 60));
        let mut cumulative = 0;
        for (index, le) in self.les.iter().enumerate() {
            cumulative += observed.buckets.get(index).copied().unwrap_or(0);
            let count = if index == self.bounds.len() {
                observed.count
            } else {
                cumulative
            };
            text.push_str(&self.name);
            text.push_str("_bucket{");
            text.push_str(&render_labels(&[("account", account), ("le", le)]));
            text.push_str("} ");
            text.push_str(&count.to_string());
            text.push('\n');
        }
        let labels = render_labels(&[("account", account)]);
        text.push_str(&format!("{}_sum{{{labels}}} ", self.name));
        write_value(observed.sum, &mut text);
        text.push('\n');
        text.push_str(&format!(
            "{}_count{{{labels}}} {}\n",
            self.name, observed.count
        ));
        *chunk = self::chunk(text);
    }
}

/// A histogram family with the label `account`; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Histogram {
    slot: usize,
}

impl Histogram {
    /// Registers the family with these bucket upper bounds (ascending; `+Inf` is added).
    pub(super) fn register(state: &mut State, name: &str, help: &str, bounds: &[f64]) -> Self {
        state.slots.push(Slot::Histogram(HistogramSlot {
            name: name.to_string(),
            header: Encoded::of(format!("# HELP {name} {help}\n# TYPE {name} histogram\n")),
            bounds: bounds.to_vec(),
            les: bounds
                .iter()
                .map(|bound| bound.to_string())
                .chain(std::iter::once("+Inf".to_string()))
                .collect(),
            accounts: BTreeMap::new(),
            joined: None,
        }));
        Self {
            slot: state.slots.len() - 1,
        }
    }

    fn slot<'s>(&self, state: &'s mut State) -> &'s mut HistogramSlot {
        let Slot::Histogram(histogram) = &mut state.slots[self.slot] else {
            unreachable!("a Histogram names a histogram slot");
        };
        histogram
    }

    /// Creates the account's series with no observation.
    pub(super) fn declare(&self, changes: &mut Changes<'_>, account: &str) {
        let histogram = self.slot(changes.state);
        if !histogram.accounts.contains_key(account) {
            let observed = Observed {
                buckets: vec![0; histogram.bounds.len()],
                ..Observed::default()
            };
            histogram
                .accounts
                .insert(account_name(account), (observed, Bytes::new()));
            changes.mark(self.slot, account);
        }
    }

    /// Records one observation of the account.
    pub(super) fn observe(&self, changes: &mut Changes<'_>, account: &str, value: f64) {
        self.declare(changes, account);
        let histogram = self.slot(changes.state);
        let bucket = histogram.bounds.iter().position(|bound| value <= *bound);
        if let Some((observed, _)) = histogram.accounts.get_mut(account) {
            if let Some(bucket) = bucket {
                observed.buckets[bucket] += 1;
            }
            observed.count += 1;
            observed.sum += value;
        }
        changes.mark(self.slot, account);
    }
}

/// The chunks to render again at the end of an update: (slot, account).
pub(super) type Marked = BTreeSet<(usize, String)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_keeps_one_shared_copy_of_an_account_name() {
        let metrics = Metrics::new(&["desk-1"]);
        let first = AccountSeries::register(
            &metrics,
            Scope::Data("X"),
            "test_first",
            "First.",
            &["asset"],
        );
        let second = AccountSeries::register(
            &metrics,
            Scope::Data("X"),
            "test_second",
            "Second.",
            &["asset"],
        );
        metrics.update(|m| {
            first.set(m, "desk-1", vec!["XBT".to_string()], 1.0);
            second.set(m, "desk-1", vec!["ETH".to_string()], 2.0);
        });
        let _ = metrics.scrape();
        let state = super::super::lock(&metrics.state);
        let names: Vec<&Account> = state
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Series(exported) if exported.name.starts_with("test_") => Some(exported),
                _ => None,
            })
            .flat_map(|exported| {
                let rows = exported.owners.iter().flat_map(|o| o.rows.keys());
                rows.chain(exported.lengths.keys())
            })
            .collect();
        assert_eq!(names.len(), 4, "rows and lengths of both families");
        assert!(names.iter().all(|name| &***name == "desk-1"));
        assert!(names.iter().all(|name| Arc::ptr_eq(name, names[0])));
    }
}
