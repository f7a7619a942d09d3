//! The operations whose instruction counts CI holds to a budget (`bench/budgets.sh`, which runs this
//! under `valgrind --tool=callgrind` and counts only the `measured_*` functions):
//!
//! - `decode_apply`: decode a 1,000-asset `BalanceEx` answer, label it, work out spendable amounts and
//!   publish the account's series;
//! - `scrape`: serve one plain-text `/metrics` of 3,000 assets and a Kraken Futures account (the
//!   documented `accounts` answer: cash, flex and a margin wallet) and a ledger account (the counters
//!   of Kraken's documented 15-entry `Ledgers` answer) through the router;
//! - `value`: value 1,000 balance rows and their spendable amounts in two quote currencies;
//! - `update_10` and `update_1000`: one account's poll (a 50-asset `BalanceEx` answer decoded and
//!   applied with the poll's health, in one update) with 10 and with 1,000 accounts registered, each
//!   holding 50 assets and scraped once before: the cost of an update must not grow with the number
//!   of accounts (their budgets are the same number).
//!
//! ```sh
//! cargo run --release --example budgets -- decode_apply
//! ```

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;

use kraken_exporter::collectors::ledgers::book::Book;
use kraken_exporter::collectors::ledgers::LedgerFamilies;
use kraken_exporter::collectors::{BalanceFamilies, FuturesFamilies};
use kraken_exporter::http::readiness::Readiness;
use kraken_exporter::http::web_config::WebConfig;
use kraken_exporter::kraken::assets::{label_all_with, AssetNames};
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use kraken_exporter::kraken::futures::accounts::decode_accounts;
use kraken_exporter::kraken::ledgers::Query;
use kraken_exporter::metrics::Metrics;
use kraken_exporter::simulator::synthetic_balance_ex;
use kraken_exporter::spendable::spendable_by_asset;
use kraken_exporter::valuation::{value_holdings, HeldRow, Holdings, Market};
use rust_decimal::Decimal;

/// Decodes, labels and publishes one answer, as a successful poll does.
fn apply(metrics: &Metrics, families: &BalanceFamilies, names: &AssetNames, body: &[u8]) {
    apply_to(metrics, families, names, body, "account0");
}

/// [`apply`] for `account`, with the poll's own health in the same update.
fn apply_to(
    metrics: &Metrics,
    families: &BalanceFamilies,
    names: &AssetNames,
    body: &[u8],
    account: &str,
) {
    let balances = decode_balance_ex(body).expect("the body is valid");
    let labelled = label_all_with(names, balances.assets.iter().map(|a| a.key.as_str()));
    let spendable = spendable_by_asset(names, &balances.assets, &labelled)
        .expect("synthetic amounts are in range");
    metrics.update(|m| {
        families.replace_balances(m, account, labelled.labels.iter().zip(&balances.assets));
        families.replace_spendable(m, account, &spendable);
        m.record_poll(account, std::time::Duration::from_millis(120), None);
        m.record_endpoint(account, "BalanceEx", None);
    });
}

#[inline(never)]
fn measured_update_10(
    metrics: &Metrics,
    families: &BalanceFamilies,
    names: &AssetNames,
    body: &[u8],
    account: &str,
) {
    // Distinct from measured_update_1000, so the linker does not fold the two into one symbol.
    black_box(10);
    apply_to(metrics, families, names, body, account);
}

#[inline(never)]
fn measured_update_1000(
    metrics: &Metrics,
    families: &BalanceFamilies,
    names: &AssetNames,
    body: &[u8],
    account: &str,
) {
    black_box(1000);
    apply_to(metrics, families, names, body, account);
}

#[inline(never)]
fn measured_decode_apply(
    metrics: &Metrics,
    families: &BalanceFamilies,
    names: &AssetNames,
    body: &[u8],
) {
    apply(metrics, families, names, body);
}

#[inline(never)]
fn measured_scrape(runtime: &tokio::runtime::Runtime, router: &axum::Router) -> usize {
    runtime.block_on(scrape(router))
}

async fn scrape(router: &axum::Router) -> usize {
    use tower::ServiceExt;
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .expect("a static request is valid");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body is in memory")
        .len()
}

#[inline(never)]
fn measured_value(market: &Market, quotes: &[String], holdings: &Holdings) -> usize {
    value_holdings(market, quotes, holdings).0.rows.len()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let names = AssetNames::default();
    match which.as_str() {
        "decode_apply" => {
            let body = synthetic_balance_ex(1000);
            let metrics = Metrics::new(&["account0"]);
            let families = BalanceFamilies::register(&metrics);
            // One warm-up, so lazily built state is not counted.
            apply(&metrics, &families, &names, body.as_bytes());
            measured_decode_apply(&metrics, &families, &names, black_box(body.as_bytes()));
        }
        "scrape" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime starts");
            let metrics = Arc::new(Metrics::new(&["account0"]));
            let families = BalanceFamilies::register(&metrics);
            apply(
                &metrics,
                &families,
                &names,
                synthetic_balance_ex(3000).as_bytes(),
            );
            let futures = FuturesFamilies::register(&metrics);
            let wallets = decode_accounts(
                include_bytes!("../tests/fixtures/futures/accounts_documented.json"),
                100,
            )
            .expect("the documented answer decodes");
            metrics.update(|m| futures.publish(m, "account0", &wallets, None));
            // The ledger's counters of Kraken's documented example, all counted.
            let ledgers = LedgerFamilies::register(&metrics);
            let page = kraken_exporter::kraken::ledgers::decode_ledgers(include_bytes!(
                "../tests/fixtures/kraken/ledgers/kraken_docs_2021_fifteen_trades.json"
            ))
            .expect("the documented answer decodes");
            let mut book = Book {
                started: true,
                ..Book::default()
            };
            book.take(&Query::default(), &page, &|asset| {
                names.classify(asset).asset
            });
            metrics.update(|m| ledgers.publish(m, "account0", &book));
            let router = kraken_exporter::http::server::router(
                Arc::clone(&metrics),
                Arc::new(Readiness::new(&["account0"])),
                &WebConfig::default(),
                &kraken_exporter::http::server::Routes::default(),
            );
            // The warm-up renders the process metrics, which are then reused for a second.
            runtime.block_on(scrape(&router));
            black_box(measured_scrape(&runtime, &router));
        }
        "value" => {
            let body = synthetic_balance_ex(1000);
            let balances = decode_balance_ex(body.as_bytes()).expect("the body is valid");
            let labelled = label_all_with(&names, balances.assets.iter().map(|a| a.key.as_str()));
            let spendable = spendable_by_asset(&names, &balances.assets, &labelled)
                .expect("synthetic amounts are in range");
            let price = |text: &str| Decimal::from_str(text).expect("a valid price");
            // Every eighth asset has a direct USD pair; the rest go through one hop via XBT or are
            // unpriced, as on real accounts with many small tokens.
            let mut triples: Vec<(String, String, Decimal)> = vec![
                ("XBT".into(), "USD".into(), price("95000.1")),
                ("XBT".into(), "EUR".into(), price("88000.2")),
                ("EUR".into(), "USD".into(), price("1.0795")),
            ];
            for i in 0..125 {
                let quote = if i % 2 == 0 { "USD" } else { "XBT" };
                triples.push((format!("AST{i}"), quote.into(), price("1.2345")));
            }
            let market = Market::from_prices(
                triples
                    .iter()
                    .map(|(base, quote, price)| (base.as_str(), quote.as_str(), *price)),
            );
            let holdings = Holdings {
                rows: labelled
                    .labels
                    .into_iter()
                    .zip(&balances.assets)
                    .map(|(labels, row)| HeldRow::new(labels, row))
                    .collect(),
                spendable,
            };
            let quotes = vec!["USD".to_string(), "EUR".to_string()];
            black_box(measured_value(&market, &quotes, black_box(&holdings)));
        }
        "update_10" | "update_1000" => {
            let count = if which == "update_10" { 10 } else { 1000 };
            let accounts: Vec<String> = (0..count).map(|i| format!("account{i}")).collect();
            let metrics = Metrics::new(&accounts);
            let families = BalanceFamilies::register(&metrics);
            let body = synthetic_balance_ex(50);
            for account in &accounts {
                metrics.update(|m| m.set_endpoints(account, &["BalanceEx"]));
                apply_to(&metrics, &families, &names, body.as_bytes(), account);
            }
            // A scrape between polls, as Prometheus makes them.
            black_box(metrics.scrape());
            // The next poll of one account (its answer a little different, as balances move).
            let next = synthetic_balance_ex(51);
            let measured = if count == 10 {
                measured_update_10
            } else {
                measured_update_1000
            };
            measured(
                &metrics,
                &families,
                &names,
                black_box(next.as_bytes()),
                "account7",
            );
        }
        other => {
            eprintln!(
                "usage: budgets decode_apply|scrape|value|update_10|update_1000 (got {other:?})"
            );
            std::process::exit(2);
        }
    }
}
