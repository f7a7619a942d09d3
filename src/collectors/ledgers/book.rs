//! The ledger book of one account: which entries were counted, their totals, and where the next
//! call reads. Pure (no I/O): the collector asks [`Book::next_query`], calls Kraken and gives the
//! page back to [`Book::take`]. Every entry is counted once:
//!
//! - A **window** is frozen at its first page: `start` is where the last window ended (exclusive,
//!   [`OVERLAP_SECONDS`] earlier to see entries Kraken commits a little late), `end` the first
//!   page's newest second (inclusive), so entries arriving while the window is paged (newer) stay
//!   out of it and do not shift its offsets. Pages are read newest first at offsets 0, 50, 100...; a
//!   window larger than one poll's pages is continued by the next polls (and after a restart, from
//!   the state file).
//! - Offsets assume Kraken orders entries of one `time` the same way on every call (nothing says
//!   otherwise; its answers keep the order of ids). An entry Kraken writes with a time older than a
//!   window already read, by more than the overlap, is not seen.
//! - An entry whose id was already counted is skipped: entries several pages share when one is
//!   inserted while paging, entries sharing one `time` on both sides of a page boundary, and the
//!   overlap between windows. Ids are forgotten once they are older than the next window's start.
//! - A **first start** (no state) counts from that moment: the newest page is history (its entries
//!   and everything before its newest `time` are never counted), and the newest entry of each type
//!   still sets the last-entry time; the newest withdrawal and deposit are looked up when the
//!   first page does not show all of the ledger.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::kraken::ledgers::{Entry, Page, Query, PAGE};

/// Seconds a new window reaches back before the end of the last one.
pub const OVERLAP_SECONDS: u64 = 10;

/// The types whose newest entry a first start looks up when its first page does not show them.
pub const LOOKED_UP: [&str; 2] = ["withdrawal", "deposit"];

/// What was counted of one type and asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub entries: u64,
    /// Sum of the positive amounts (and of negative fees, which are money in).
    pub amount_in: Decimal,
    /// Sum of the magnitudes of the negative amounts.
    pub amount_out: Decimal,
    /// Sum of the positive fees.
    pub fee: Decimal,
}

/// A window being paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Option<u64>,
    pub end: u64,
    /// The offset of the next page.
    pub offset: usize,
}

/// One row of the totals, as the state file keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub asset: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The ledger book of one account (what the state file holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Book {
    /// Whether the first page has been read (before it, the book knows nothing of the ledger).
    pub started: bool,
    /// Entries before this time are history: never counted (those of its own time that were
    /// history are in `seen`).
    pub history_until: Option<Decimal>,
    /// Where the next window starts (exclusive; `None`: the beginning of the ledger).
    pub next_start: Option<u64>,
    pub window: Option<Window>,
    /// Counted ids newer than `next_start`, with their times.
    pub seen: BTreeMap<String, Decimal>,
    /// What is counted, by type and asset label.
    pub totals: Vec<TotalsRow>,
    /// The newest entry's time of each type.
    pub last: BTreeMap<String, Decimal>,
    /// Types whose newest entry is still to be looked up (a first start).
    pub lookups: Vec<String>,
}

impl Book {
    /// The call to make next.
    pub fn next_query(&self) -> Query {
        if !self.started {
            return Query::default();
        }
        if let Some(kind) = self.lookups.first() {
            let kind = LOOKED_UP.into_iter().find(|k| k == kind);
            return Query {
                kind,
                ..Query::default()
            };
        }
        match &self.window {
            Some(window) => Query {
                start: window.start,
                end: Some(window.end),
                offset: window.offset,
                kind: None,
            },
            None => Query {
                start: self.next_start,
                ..Query::default()
            },
        }
    }

    /// Whether a call is still due this poll: a window half read or a lookup left.
    pub fn wants_more(&self) -> bool {
        self.window.is_some() || !self.lookups.is_empty()
    }

    /// Takes the answer to `query` ([`Book::next_query`]'s); `label` names an asset as balances do.
    /// Returns how many entries it counted.
    pub fn take(&mut self, query: &Query, page: &Page, label: &dyn Fn(&str) -> String) -> usize {
        if query.kind.is_some() {
            self.lookups.retain(|k| Some(k.as_str()) != query.kind);
            for entry in &page.entries {
                self.note_last(entry);
            }
            return 0;
        }
        if !self.started {
            self.take_history(page, label);
            return 0;
        }
        let floor = query.start.map(Decimal::from);
        let mut counted = 0;
        for entry in &page.entries {
            self.note_last(entry);
            let history = self.history_until.is_some_and(|until| entry.time < until);
            let before_start = floor.is_some_and(|floor| entry.time <= floor);
            if history || before_start || self.seen.contains_key(&entry.id) {
                continue;
            }
            self.seen.insert(entry.id.clone(), entry.time);
            self.count(entry, label);
            counted += 1;
        }
        // Complete on an empty page, or on a short one that `count` does not contradict (Kraken's
        // `count` has been reported wrong both ways: a short page it says is not the last, or a full
        // one it says is, costs one more call rather than an entry).
        let read = (query.offset + page.entries.len()) as u64;
        let complete = page.entries.is_empty()
            || (page.entries.len() < PAGE && page.count.is_none_or(|count| read >= count));
        match (&mut self.window, page.entries.first()) {
            // A window's first page.
            (None, Some(newest)) => {
                // The second after the newest one's: a time Kraken shows rounded still falls inside.
                let end = floor_seconds(newest.time) + 1;
                if complete {
                    self.finish(end);
                } else {
                    self.window = Some(Window {
                        start: query.start,
                        end,
                        offset: PAGE,
                    });
                }
            }
            // Nothing new.
            (None, None) => {}
            (Some(window), _) => {
                let end = window.end;
                window.offset += PAGE;
                if complete {
                    self.finish(end);
                }
            }
        }
        counted
    }

    /// The first page of a first start: its entries are history.
    fn take_history(&mut self, page: &Page, label: &dyn Fn(&str) -> String) {
        self.started = true;
        for entry in &page.entries {
            self.note_last(entry);
            // The series are there, at 0, before their first increase.
            self.totals_of(&entry.kind, &label(&entry.asset));
        }
        if let (Some(newest), Some(oldest)) = (page.entries.first(), page.entries.last()) {
            let full = page.entries.len() >= PAGE;
            // A full page of one time may hide more history of that time behind it: all of that
            // time is history then.
            let tie = if full && oldest.time == newest.time {
                Decimal::new(1, 9)
            } else {
                Decimal::ZERO
            };
            self.history_until = Some(newest.time + tie);
            let start = (floor_seconds(newest.time) + 1).saturating_sub(OVERLAP_SECONDS);
            self.next_start = Some(start);
            // History of the overlap is skipped by id; an entry arriving later with the newest
            // history's time is counted.
            for entry in &page.entries {
                if entry.time > Decimal::from(start) {
                    self.seen.insert(entry.id.clone(), entry.time);
                }
            }
        }
        let whole_ledger =
            page.entries.len() < PAGE || page.count.is_some_and(|c| c <= page.entries.len() as u64);
        if !whole_ledger {
            self.lookups = LOOKED_UP
                .iter()
                .filter(|kind| !self.last.contains_key(**kind))
                .map(|kind| kind.to_string())
                .collect();
        }
    }

    /// A window is read up to `end`: the next one starts [`OVERLAP_SECONDS`] before it.
    fn finish(&mut self, end: u64) {
        self.window = None;
        let start = end.saturating_sub(OVERLAP_SECONDS);
        if self.next_start.is_none_or(|next| next < start) {
            self.next_start = Some(start);
        }
        let floor = Decimal::from(self.next_start.unwrap_or(0));
        self.seen.retain(|_, time| *time > floor);
    }

    fn note_last(&mut self, entry: &Entry) {
        let last = self.last.entry(entry.kind.clone()).or_insert(entry.time);
        if *last < entry.time {
            *last = entry.time;
        }
    }

    fn totals_of(&mut self, kind: &str, asset: &str) -> &mut Totals {
        let at = match self
            .totals
            .iter()
            .position(|row| row.kind == kind && row.asset == asset)
        {
            Some(at) => at,
            None => {
                self.totals.push(TotalsRow {
                    kind: kind.to_string(),
                    asset: asset.to_string(),
                    totals: Totals::default(),
                });
                self.totals.len() - 1
            }
        };
        &mut self.totals[at].totals
    }

    fn count(&mut self, entry: &Entry, label: &dyn Fn(&str) -> String) {
        let totals = self.totals_of(&entry.kind, &label(&entry.asset));
        totals.entries += 1;
        if entry.amount.is_sign_positive() {
            totals.amount_in += entry.amount;
        } else {
            totals.amount_out -= entry.amount;
        }
        if entry.fee.is_sign_positive() {
            totals.fee += entry.fee;
        } else {
            totals.amount_in -= entry.fee;
        }
    }

    /// The newest counted or known entry time of each type, as unix seconds.
    pub fn last_times(&self) -> impl Iterator<Item = (&str, f64)> {
        self.last
            .iter()
            .map(|(kind, time)| (kind.as_str(), time.to_f64().unwrap_or(0.0)))
    }
}

/// The whole second at or before `time`.
fn floor_seconds(time: Decimal) -> u64 {
    time.floor().to_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A ledger as Kraken keeps it: entries with their ids and times, answered newest first.
    struct Ledger(Vec<Entry>);

    fn entry(id: usize, time: &str, kind: &str, amount: &str, fee: &str) -> Entry {
        Entry {
            id: format!("L{id:06}"),
            time: Decimal::from_str(time).unwrap(),
            kind: kind.to_string(),
            asset: "XXBT".to_string(),
            amount: Decimal::from_str(amount).unwrap(),
            fee: Decimal::from_str(fee).unwrap(),
        }
    }

    impl Ledger {
        fn answer(&self, query: &Query) -> Page {
            let mut matching: Vec<&Entry> = self
                .0
                .iter()
                .filter(|e| query.start.is_none_or(|s| e.time > Decimal::from(s)))
                .filter(|e| query.end.is_none_or(|end| e.time <= Decimal::from(end)))
                .filter(|e| query.kind.is_none_or(|k| e.kind == k))
                .collect();
            matching.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
            Page {
                count: Some(matching.len() as u64),
                entries: matching
                    .into_iter()
                    .skip(query.offset)
                    .take(PAGE)
                    .cloned()
                    .collect(),
            }
        }
    }

    fn poll(book: &mut Book, ledger: &Ledger, pages: usize) -> usize {
        let mut counted = 0;
        for _ in 0..pages {
            let query = book.next_query();
            counted += book.take(&query, &ledger.answer(&query), &|a| a.to_string());
            if !book.wants_more() {
                break;
            }
        }
        counted
    }

    #[test]
    fn a_first_start_counts_nothing_of_history_but_knows_the_last_withdrawal() {
        let mut ledger = Ledger(Vec::new());
        ledger.0.push(entry(0, "100", "withdrawal", "-1", "0.1"));
        for i in 1..=60 {
            ledger
                .0
                .push(entry(i, &format!("{}", 200 + i), "trade", "1", "0"));
        }
        let mut book = Book::default();
        assert_eq!(poll(&mut book, &ledger, 3), 0);
        assert_eq!(book.last["withdrawal"], Decimal::from(100));
        assert_eq!(book.last["trade"], Decimal::from(260));
        assert!(book
            .totals
            .iter()
            .all(|row| row.totals == Totals::default()));
        // New entries: one at history's newest time (it arrived after: counted), one older than
        // it (history, late), one newer.
        ledger.0.push(entry(61, "260", "trade", "5", "0"));
        ledger.0.push(entry(62, "259.5", "trade", "7", "0"));
        ledger.0.push(entry(63, "261.5", "trade", "-2", "0.5"));
        assert_eq!(poll(&mut book, &ledger, 3), 2);
        let row = &book.totals[0];
        assert_eq!(
            (
                row.totals.entries,
                row.totals.amount_in,
                row.totals.amount_out,
                row.totals.fee
            ),
            (2, Decimal::from(5), Decimal::from(2), Decimal::new(5, 1))
        );
        assert_eq!(poll(&mut book, &ledger, 3), 0, "nothing twice");
    }

    #[test]
    fn a_backlog_larger_than_a_poll_is_counted_once_over_several_polls_while_entries_arrive() {
        let mut ledger = Ledger(Vec::new());
        let mut book = Book::default();
        poll(&mut book, &ledger, 2);
        let mut id = 0;
        let mut expected = Decimal::ZERO;
        // 1,000 entries, 7 to a second (page boundaries fall inside shared times), arriving in
        // bursts between calls of polls that read 2 pages each.
        for burst in 0..20 {
            for _ in 0..50 {
                let time = 1_000 + id / 7;
                let amount = Decimal::new(id as i64 + 1, 3);
                expected += amount;
                ledger.0.push(Entry {
                    amount,
                    ..entry(id, &time.to_string(), "trade", "0", "0")
                });
                id += 1;
            }
            if burst % 3 == 0 {
                poll(&mut book, &ledger, 2);
            }
        }
        for _ in 0..40 {
            poll(&mut book, &ledger, 2);
        }
        let row = &book.totals[0];
        assert_eq!(row.totals.entries, 1_000);
        assert_eq!(row.totals.amount_in, expected);
        assert!(book.seen.len() < 200, "{}", book.seen.len());
    }

    #[test]
    fn a_restart_from_the_saved_book_in_the_middle_of_a_window_counts_nothing_twice() {
        let mut ledger = Ledger(Vec::new());
        let mut book = Book::default();
        poll(&mut book, &ledger, 1);
        for i in 0..300 {
            ledger
                .0
                .push(entry(i, &format!("{}", 5_000 + i / 3), "deposit", "2", "0"));
        }
        poll(&mut book, &ledger, 2);
        assert!(book.window.is_some());
        let saved = serde_json::to_string(&book).unwrap();
        let mut restarted: Book = serde_json::from_str(&saved).unwrap();
        assert_eq!(restarted, book);
        for _ in 0..10 {
            poll(&mut restarted, &ledger, 2);
        }
        assert_eq!(restarted.totals[0].totals.entries, 300);
        assert_eq!(restarted.totals[0].totals.amount_in, Decimal::from(600));
    }

    #[test]
    fn fee_credits_and_rebates_keep_in_minus_out_minus_fee_exact() {
        let mut book = Book {
            started: true,
            ..Book::default()
        };
        let page = Page {
            entries: vec![
                Entry {
                    asset: "KFEE".into(),
                    ..entry(2, "11", "trade", "0", "1.25")
                },
                entry(1, "10", "trade", "-3", "-0.01"),
            ],
            count: Some(2),
        };
        book.take(&Query::default(), &page, &|a| a.to_string());
        let xbt = book.totals.iter().find(|r| r.asset == "XXBT").unwrap();
        assert_eq!(
            xbt.totals.amount_in - xbt.totals.amount_out - xbt.totals.fee,
            Decimal::from_str("-2.99").unwrap()
        );
        let kfee = book.totals.iter().find(|r| r.asset == "KFEE").unwrap();
        assert_eq!(
            (kfee.totals.amount_in, kfee.totals.fee),
            (Decimal::ZERO, Decimal::from_str("1.25").unwrap())
        );
        assert_eq!(
            book.next_start,
            Some(2),
            "the second after the newest (11), less the overlap"
        );
    }
}
