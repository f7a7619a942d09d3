//! `Ledgers` -> every ledger entry counted once: `kraken_ledger_entries_total`,
//! `kraken_ledger_amount_total{direction}`, `kraken_ledger_fee_total` per type and asset, and the time
//! of each type's newest entry. Polled with `ledger = true`, every `ledger_interval` (1 minute by
//! default), at most `ledger_pages` pages (3 by default, 2 points each) per poll; a larger backlog is
//! read over the next polls.
//!
//! How entries are counted once is [`book`]'s; how the book survives a restart is [`file`]'s (with a
//! top-level `state_dir`; without one the counters start at 0 with the process). The book of each
//! account is kept by the families, which live as long as the process, so a reload neither resets
//! the counters nor starts over.

pub mod book;
pub mod file;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch, Shared};
use crate::config::{AccountSettings, ConfigError, OptionSpec, Settings};
use crate::exposition::to_f64;
use crate::kraken::ledgers::{COST, METHOD, PERMISSION};
use crate::kraken::KrakenClient;
use crate::metrics::{AccountSeries, Changes, Kind, Metrics, Scope};
use book::Book;
use file::StateFile;

/// The table's line: accounts with `ledger = true`.
pub(super) const ENDPOINT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |settings| COST * ledger_pages(settings),
    decides_up: false,
    register: |metrics| Arc::new(LedgerFamilies::register(metrics)),
    polls: |account| account.options.is_on("ledger", false),
    interval: ledger_interval,
    options: OptionSpec {
        account_keys: &["ledger"],
        global_keys: &["state_dir", "ledger_interval", "ledger_pages"],
        check: |settings, account, at| {
            account.options.flag(at, "ledger")?;
            checked_interval(settings)?;
            checked_pages(settings)?;
            checked_state_dir(settings).map(|_| ())
        },
    },
    thresholds: |_| Vec::new(),
};

pub const DEFAULT_LEDGER_INTERVAL: Duration = Duration::from_secs(60);
const MIN_LEDGER_INTERVAL: Duration = Duration::from_secs(1);
const MAX_LEDGER_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_LEDGER_PAGES: u32 = 3;
const MAX_LEDGER_PAGES: u32 = 20;

fn checked_interval(settings: &Settings) -> Result<Duration, ConfigError> {
    settings.options.duration(
        "ledger_interval",
        DEFAULT_LEDGER_INTERVAL,
        MIN_LEDGER_INTERVAL,
        MAX_LEDGER_INTERVAL,
    )
}

fn checked_pages(settings: &Settings) -> Result<u32, ConfigError> {
    settings.options.integer(
        "",
        "ledger_pages",
        DEFAULT_LEDGER_PAGES,
        1..=MAX_LEDGER_PAGES,
    )
}

/// `state_dir`, which must be a directory when set.
fn checked_state_dir(settings: &Settings) -> Result<Option<PathBuf>, ConfigError> {
    let Some(dir) = settings.options.text("", "state_dir")? else {
        return Ok(None);
    };
    let path = PathBuf::from(dir.trim());
    if !path.is_dir() {
        return Err(crate::config::err(format!(
            "state_dir = {dir:?} is not a directory; create it, writable by the exporter (the systemd unit's StateDirectory= and the container's volume do), or leave state_dir out (the ledger counters then start at 0 with the process)"
        )));
    }
    Ok(Some(path))
}

/// `ledger_interval` (checked when the configuration was loaded).
pub fn ledger_interval(settings: &Settings) -> Duration {
    checked_interval(settings).unwrap_or(DEFAULT_LEDGER_INTERVAL)
}

/// `ledger_pages` (checked when the configuration was loaded).
pub fn ledger_pages(settings: &Settings) -> u32 {
    checked_pages(settings).unwrap_or(DEFAULT_LEDGER_PAGES)
}

/// The families `Ledgers` feeds, and each account's book (kept across reloads).
pub struct LedgerFamilies {
    entries: AccountSeries,
    amount: AccountSeries,
    fee: AccountSeries,
    last: AccountSeries,
    books: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Kept>>>>,
}

/// An account's book, and whether it changed since it was last saved.
struct Kept {
    book: Book,
    dirty: bool,
}

impl LedgerFamilies {
    /// Registers the families (once per [`Metrics`]).
    pub fn register(metrics: &Metrics) -> Self {
        let data = Scope::Data(METHOD);
        let counter = |name: &str, help: &str, labels: &[&str]| {
            AccountSeries::register_kind(metrics, Kind::Counter, data, name, help, labels)
        };
        Self {
            entries: counter("kraken_ledger_entries_total", "Ledger entries counted, by Kraken's type and asset (since the state began: the state file, or the process start).", &["type", "asset"]),
            amount: counter("kraken_ledger_amount_total", "Sum of ledger entry amounts by type and asset: direction=\"in\" the positive amounts, \"out\" the magnitudes of the negative ones (in units of the asset). Net change = in - out - fee.", &["type", "asset", "direction"]),
            fee: counter("kraken_ledger_fee_total", "Sum of the fees of ledger entries by type and asset, in units of the asset.", &["type", "asset"]),
            last: AccountSeries::register(metrics, data, "kraken_ledger_last_entry_timestamp_seconds", "Unix time of the newest ledger entry of each type (known from the first poll, history included).", &["type"]),
            books: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the account's series from its book: the totals and the newest entry times.
    pub fn publish(&self, metrics: &mut Changes<'_>, account: &str, book: &Book) {
        let mut entries = Vec::new();
        let mut amount = Vec::new();
        let mut fee = Vec::new();
        for row in &book.totals {
            let labels = vec![row.kind.clone(), row.asset.clone()];
            entries.push((labels.clone(), row.totals.entries as f64));
            for (direction, sum) in [("in", row.totals.amount_in), ("out", row.totals.amount_out)] {
                let mut labels = labels.clone();
                labels.push(direction.to_string());
                amount.push((labels, to_f64(sum)));
            }
            fee.push((labels, to_f64(row.totals.fee)));
        }
        let last: Vec<(Vec<String>, f64)> = book
            .last_times()
            .map(|(kind, time)| (vec![kind.to_string()], time))
            .collect();
        self.entries.replace(metrics, account, &entries);
        self.amount.replace(metrics, account, &amount);
        self.fee.replace(metrics, account, &fee);
        self.last.replace(metrics, account, &last);
    }

    /// The account's book: the one kept since the process started, or the state file's, or fresh.
    /// Marked to be saved, so a reload that sets or moves `state_dir` writes it there.
    fn kept(&self, account: &str, file: Option<&StateFile>) -> Arc<tokio::sync::Mutex<Kept>> {
        let mut books = crate::sync::lock(&self.books);
        if let Some(kept) = books.get(account) {
            if let Ok(mut kept) = kept.try_lock() {
                kept.dirty = true;
            }
            return Arc::clone(kept);
        }
        let book = file.map(|f| f.load(account)).unwrap_or_default();
        let kept = Arc::new(tokio::sync::Mutex::new(Kept { book, dirty: true }));
        books.insert(account.to_string(), Arc::clone(&kept));
        kept
    }
}

impl EndpointFamilies for LedgerFamilies {
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        if !account.options.is_on("ledger", false) {
            return None;
        }
        let file = checked_state_dir(context.settings)
            .ok()
            .flatten()
            .map(|dir| StateFile::new(&dir, &account.name));
        let kept = self.kept(&account.name, file.as_ref());
        Some(Box::new(LedgersCollector {
            account: account.name.clone(),
            file,
            shared: context.shared.clone(),
            families: self,
            kept,
            pages: ledger_pages(context.settings),
            fetched: None,
        }))
    }
}

/// Polls `Ledgers` for one account.
pub struct LedgersCollector {
    account: String,
    /// Where the book is saved (`state_dir`), as the configuration applied says.
    file: Option<StateFile>,
    shared: Shared,
    families: Arc<LedgerFamilies>,
    kept: Arc<tokio::sync::Mutex<Kept>>,
    pages: u32,
    fetched: Option<Book>,
}

impl Collector for LedgersCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let mut kept = self.kept.lock().await;
            let names = Arc::clone(&self.shared.names);
            let label = move |asset: &str| names.classify(asset).asset;
            let mut counted = 0;
            let mut result = Ok(());
            for call in 0..self.pages {
                let query = kept.book.next_query();
                match client.ledgers(&query).await {
                    Ok(page) => {
                        counted += kept.book.take(&query, &page, &label);
                        kept.dirty = true;
                    }
                    // The pages read so far stay counted; the rest is read next poll.
                    Err(err) if call > 0 => {
                        tracing::debug!(account = %self.account, error = %err, "a later Ledgers page failed; the rest is read next poll");
                        break;
                    }
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
                if !kept.book.wants_more() {
                    break;
                }
            }
            // Saved until a save succeeds: a failed write is tried again at the next poll.
            if let Some(file) = self.file.as_ref().filter(|_| kept.dirty) {
                match file.save(&self.account, &kept.book) {
                    Ok(()) => kept.dirty = false,
                    Err(err) => {
                        tracing::warn!(account = %self.account, file = %file.path().display(), error = %err, "cannot save the ledger state; the counters go on and the next poll tries again, but a restart now would count from the last saved state")
                    }
                }
            }
            result?;
            self.fetched = Some(kept.book.clone());
            Ok(counted)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        if let Some(book) = self.fetched.take() {
            self.families.publish(metrics, account, &book);
        }
    }
}
