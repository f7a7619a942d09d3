//! Golden tests on what Kraken really sends: every answer under `tests/fixtures/kraken/` (provenance in
//! its `SOURCES.md`) is served byte for byte by the simulator, after Kraken's signature and nonce checks,
//! to the real binary (`--once`). The expected series are computed here from the fixture's own numbers,
//! in exact decimals, by a reader that shares nothing with the exporter's decoder but `serde_json`.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use kraken_exporter::kraken::{earn_allocations, trade_balance, BALANCE_EX_PATH};
use kraken_exporter::simulator::{Portfolio, Simulator};

use crate::helpers::{once, Samples, TestAccount};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!(
        "{}/tests/fixtures/kraken/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&full).unwrap_or_else(|err| panic!("{full}: {err}"))
}

/// A JSON string or number, exactly.
fn exact(raw: &RawValue) -> Decimal {
    let text = raw.get().trim().trim_matches('"');
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn f64_of(amount: Decimal) -> f64 {
    amount.to_f64().expect("every fixture amount fits an f64")
}

/// The labels every key of the corpus must get, written out by hand: (asset, family).
fn labels_of(key: &str) -> (&'static str, &'static str) {
    match key {
        "ZUSD" => ("USD", "spot"),
        "ZEUR" => ("EUR", "spot"),
        "XXBT" => ("XBT", "spot"),
        "XETH" => ("ETH", "spot"),
        "USDT" => ("USDT", "spot"),
        "ETHW" => ("ETHW", "spot"),
        "1INCH" => ("1INCH", "spot"),
        "KFEE" => ("KFEE", "fee_credits"),
        "USD.F" => ("USD", "auto_earn"),
        "XBT.F" => ("XBT", "auto_earn"),
        "USD.HOLD" => ("USD", "hold"),
        "AMBRx.T" => ("AMBRx", "tokenized"),
        "DOT.S" => ("DOT", "staked"),
        other => panic!("no expected labels for {other}: add them here"),
    }
}

#[derive(Deserialize)]
struct BalanceExAnswer<'a> {
    #[serde(borrow)]
    result: Option<BTreeMap<String, BTreeMap<String, &'a RawValue>>>,
}

struct Row {
    asset: &'static str,
    family: &'static str,
    balance: Decimal,
    hold: Decimal,
    credit: Decimal,
    credit_used: Decimal,
}

impl Row {
    fn available(&self) -> Decimal {
        self.balance + self.credit - self.credit_used - self.hold
    }
}

fn expected_rows(body: &[u8]) -> Vec<Row> {
    let answer: BalanceExAnswer = serde_json::from_slice(body).expect("the fixture is JSON");
    let zero = |row: &BTreeMap<String, &RawValue>, field: &str| {
        row.get(field).map_or(Decimal::ZERO, |raw| exact(raw))
    };
    answer
        .result
        .unwrap_or_default()
        .iter()
        .map(|(key, row)| {
            let (asset, family) = labels_of(key);
            Row {
                asset,
                family,
                balance: exact(row["balance"]),
                hold: exact(row["hold_trade"]),
                credit: zero(row, "credit"),
                credit_used: zero(row, "credit_used"),
            }
        })
        .collect()
}

async fn simulator_serving(account: &TestAccount, path: &'static str, body: Vec<u8>) -> Simulator {
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(account.api_key, &account.secret, Portfolio::new());
    simulator.set_recorded(account.api_key, path, Some(body));
    simulator
}

/// Runs `--once` with `file` as the BalanceEx answer and checks every series against the fixture.
async fn balance_ex_golden(file: &str) -> (Samples, String) {
    let main = TestAccount::new("main", "KEY-golden");
    let body = fixture(&format!("balance_ex/{file}"));
    let rows = expected_rows(&body);
    let simulator = simulator_serving(&main, BALANCE_EX_PATH, body).await;
    let (code, m, logs) = once(&simulator, &main, "").await;
    assert_eq!(code, Some(0), "{file}: {logs}");
    assert_eq!(m.up("main"), 1.0, "{file}");
    for row in &rows {
        // The credit series only on rows with a credit line.
        let credit_line = !row.credit.is_zero() || !row.credit_used.is_zero();
        for (metric, amount, exported) in [
            ("kraken_balance", row.balance, true),
            ("kraken_balance_hold", row.hold, true),
            ("kraken_balance_credit", row.credit, credit_line),
            ("kraken_balance_credit_used", row.credit_used, credit_line),
            ("kraken_balance_available", row.available(), true),
        ] {
            assert_eq!(
                m.balance(metric, "main", row.asset, row.family),
                exported.then(|| f64_of(amount)),
                "{file}: {metric} {} {}",
                row.asset,
                row.family
            );
        }
    }
    // Every row exactly once: as many series per family as rows, none more.
    assert_eq!(
        m.count_for_account("kraken_balance", "main"),
        rows.len(),
        "{file}"
    );
    // What can be spent: spot and auto-earn rows summed per asset; fee credits, fiat on hold,
    // staked and tokenized rows never.
    let mut spendable: BTreeMap<&str, Decimal> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| matches!(r.family, "spot" | "auto_earn"))
    {
        *spendable.entry(row.asset).or_default() += row.available();
    }
    for (asset, amount) in &spendable {
        assert_eq!(
            m.get(&format!(
                r#"kraken_spendable{{account="main",asset="{asset}"}}"#
            )),
            Some(f64_of(*amount)),
            "{file}: spendable {asset}"
        );
    }
    assert_eq!(
        m.count_for_account("kraken_spendable", "main"),
        spendable.len(),
        "{file}: no other spendable series\n{}",
        m.text
    );
    assert_eq!(
        simulator
            .requests()
            .iter()
            .filter(|r| r.path == BALANCE_EX_PATH && r.signature_valid && r.error.is_none())
            .count(),
        1,
        "{file}: one signed, accepted BalanceEx call"
    );
    (m, logs)
}

#[tokio::test]
async fn kraken_documentation_example_with_json_numbers() {
    balance_ex_golden("kraken_docs_example.json").await;
}

#[tokio::test]
async fn live_account_with_fee_credits_and_per_asset_precision() {
    let (m, _) = balance_ex_golden("live_account_with_fee_credits.json").await;
    // Fee credits: exported as a balance, never spendable.
    assert_eq!(
        m.balance("kraken_balance", "main", "KFEE", "fee_credits"),
        Some(7328.19)
    );
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="KFEE"}"#),
        None
    );
    // 21.9050 - 17.2000 on hold.
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="USD"}"#),
        Some(4.705)
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "XBT", "spot"),
        Some(0.000000003)
    );
}

#[tokio::test]
async fn handmade_auto_earn_hold_rows_and_unknown_fields() {
    let (m, _) = balance_ex_golden("handmade_auto_earn_hold_and_precision.json").await;
    // The auto-earn rows pay for the holds charged to their base rows: 100 + 1000 - 250, 1.2 - 0.5.
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="USD"}"#),
        Some(850.0)
    );
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="XBT"}"#),
        Some(0.7)
    );
}

#[tokio::test]
async fn never_funded_and_fresh_accounts_hold_nothing_and_are_up() {
    for file in [
        "never_funded_no_result.json",
        "fresh_account_empty_result.json",
    ] {
        let (m, logs) = balance_ex_golden(file).await;
        assert_eq!(m.count_for_account("kraken_balance", "main"), 0, "{file}");
        assert!(
            logs.contains("it holds nothing yet") && logs.contains(r#"account="main""#),
            "{file}: {logs}"
        );
        assert_eq!(
            m.get(r#"kraken_poll_errors_total{account="main",reason="decode"}"#),
            Some(0.0),
            "{file}"
        );
    }
}

#[tokio::test]
async fn trade_balance_documentation_example() {
    let main = TestAccount::new("main", "KEY-golden-margin");
    let body = fixture("trade_balance/kraken_docs_example.json");
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: BTreeMap<String, &'a RawValue>,
    }
    let answer: Answer = serde_json::from_slice(&body).unwrap();
    let figure = |field: &str| exact(answer.result[field]);
    let simulator = simulator_serving(&main, trade_balance::PATH, body.clone()).await;
    let (code, m, logs) = once(&simulator, &main, "margin = true").await;
    assert_eq!(code, Some(0), "{logs}");
    for (metric, field) in [
        ("kraken_margin_equivalent_balance", "eb"),
        ("kraken_margin_trade_balance", "tb"),
        ("kraken_margin_used", "m"),
        ("kraken_margin_unrealized_pnl", "n"),
        ("kraken_margin_cost_basis", "c"),
        ("kraken_margin_positions_value", "v"),
        ("kraken_margin_equity", "e"),
        ("kraken_margin_free", "mf"),
    ] {
        assert_eq!(
            m.get(&format!(r#"{metric}{{account="main",quote="USD"}}"#)),
            Some(f64_of(figure(field))),
            "{metric}"
        );
    }
    assert_eq!(
        m.get(r#"kraken_margin_level_ratio{account="main"}"#),
        Some(f64_of(figure("ml") / Decimal::ONE_HUNDRED))
    );
}

#[tokio::test]
async fn earn_allocations_documentation_example_with_next_cursor() {
    let main = TestAccount::new("main", "KEY-golden-earn");
    let body = fixture("earn_allocations/kraken_docs_example_next_cursor.json");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let item = &answer["result"]["items"][0];
    let strategy = item["strategy_id"].as_str().unwrap();
    let asset = item["native_asset"].as_str().unwrap();
    let simulator = simulator_serving(&main, earn_allocations::PATH, body.clone()).await;
    let (code, m, logs) = once(&simulator, &main, "earn = true").await;
    assert_eq!(code, Some(0), "{logs}");
    let states = item["amount_allocated"].as_object().unwrap();
    for (state, amounts) in states {
        let native = Decimal::from_str(amounts["native"].as_str().unwrap()).unwrap();
        assert_eq!(
            m.get(&format!(
                r#"kraken_earn_allocated{{account="main",asset="{asset}",state="{state}",strategy="{strategy}"}}"#
            )),
            Some(f64_of(native)),
            "{state}"
        );
    }
    assert_eq!(
        m.count_for_account("kraken_earn_allocated", "main"),
        states.len()
    );
    let rewarded = Decimal::from_str(item["total_rewarded"]["native"].as_str().unwrap()).unwrap();
    assert_eq!(
        m.get(&format!(
            r#"kraken_earn_rewarded{{account="main",asset="{asset}",strategy="{strategy}"}}"#
        )),
        Some(f64_of(rewarded))
    );
    // Only bonding is in flight here, and bonding releases nothing.
    assert_eq!(
        m.count_for_account("kraken_earn_next_release_timestamp_seconds", "main"),
        0
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="Earn/Allocations"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_running_exporter_drops_the_balances_of_an_account_that_answers_with_no_result() {
    use crate::helpers::{portfolio, settings_for, TestApp};
    use kraken_exporter::simulator::SimBalance;

    let main = TestAccount::new("main", "KEY-golden-running");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(
        main.api_key,
        &main.secret,
        portfolio(&[
            ("ZUSD", SimBalance::new("21.9050", "0.0000", 4)),
            ("KFEE", SimBalance::new("7328.19", "0.00", 2)),
        ]),
    );
    let mut settings = settings_for(&simulator, &[&main]);
    settings.quote_currencies = vec![];
    let app = TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("balances", |s| {
            s.balance("kraken_balance", "main", "USD", "spot").is_some()
        })
        .await;
    assert_eq!(
        m.balance("kraken_balance", "main", "KFEE", "fee_credits"),
        Some(7328.19)
    );
    assert_eq!(m.count_for_account("kraken_spendable", "main"), 1);
    simulator.set_recorded(
        main.api_key,
        BALANCE_EX_PATH,
        Some(fixture("balance_ex/never_funded_no_result.json")),
    );
    let m = app
        .scrape_until("the balances removed", |s| {
            s.count_for_account("kraken_balance", "main") == 0
        })
        .await;
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(m.count_for_account("kraken_spendable", "main"), 0);
    assert_eq!(
        m.get(r#"kraken_poll_errors_total{account="main",reason="decode"}"#),
        Some(0.0)
    );
    app.stop().await;
}
