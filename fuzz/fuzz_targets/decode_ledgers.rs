//! Fuzzes the `Ledgers`, `WithdrawStatus` and `DepositStatus` decoders and the ledger book that
//! counts what they decode: any answer is entries or an error, never a panic, and the book counts an
//! id at most once however often it is answered.
#![no_main]

use kraken_exporter::collectors::ledgers::book::Book;
use kraken_exporter::kraken::funding::decode_funding_status;
use kraken_exporter::kraken::ledgers::{decode_ledgers, Query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_funding_status(data);
    let Ok(page) = decode_ledgers(data) else {
        return;
    };
    let mut book = Book {
        started: true,
        ..Book::default()
    };
    let label = |asset: &str| asset.to_string();
    let first = book.take(&Query::default(), &page, &label);
    let query = book.next_query();
    let again = book.take(&query, &page, &label);
    let distinct: std::collections::HashSet<&str> =
        page.entries.iter().map(|e| e.id.as_str()).collect();
    assert!(first + again <= distinct.len());
});
