//! Kraken Futures wallets through the binary against the simulator: every figure of the documented
//! answers exactly, the margin ratio and its absence, isolation from spot both ways, nonces that
//! keep growing across a restart, and secrets kept out of logs and metrics.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::value::RawValue;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::futures::accounts::PATH as FUTURES_ACCOUNTS_PATH;
use kraken_exporter::kraken::BALANCE_EX_PATH;
use kraken_exporter::simulator::{generate_secret, Fault, SimFlex, SimFutures, Simulator};

use crate::helpers::{default_timing, direct_poller, once_at, Samples, TestAccount};

const FUTURES_KEY: &str = "FUTURES-KEY-main";

/// The account's spot key and a futures key pair on one simulator; the futures secret.
async fn simulator_with_futures(main: &TestAccount, wallets: SimFutures) -> (Simulator, Vec<u8>) {
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    let secret = generate_secret();
    simulator.add_futures(FUTURES_KEY, &secret, wallets);
    (simulator, secret)
}

/// Runs `--once` with the futures secret in place.
async fn run_once(
    simulator: &Simulator,
    main: &TestAccount,
    secret: &[u8],
    extra: &str,
    level: &'static str,
) -> (Option<i32>, Samples, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::helpers::write_secret_file(dir.path(), "futures-secret", secret);
    let extra = format!(
        "futures_api_key = \"{FUTURES_KEY}\"\nfutures_api_secret_file = \"{}\"\n{extra}\n",
        file.display()
    );
    once_at(simulator, main, &extra, level).await
}

/// The number at `path` in a JSON text, parsed from its own text (a reader that shares nothing with
/// the exporter's decoder).
fn number(json: &str, path: &[&str]) -> f64 {
    let mut raw: Box<RawValue> = serde_json::from_str(json).unwrap();
    for key in path {
        let object: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw.get()).unwrap();
        raw = object
            .get(*key)
            .unwrap_or_else(|| panic!("{key} in {path:?}"))
            .clone();
    }
    raw.get().trim_matches('"').parse().unwrap()
}

fn main_series(m: &Samples, name: &str, labels: &str) -> Option<f64> {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(",{labels}")
    };
    m.get(&format!(r#"{name}{{account="main"{labels}}}"#))
}

const DOCUMENTED: &str = include_str!("../fixtures/futures/accounts_documented.json");
const OLDER_DOCS: &str = include_str!("../fixtures/futures/accounts_kraken_net_older_docs.json");

#[tokio::test]
async fn every_figure_of_the_documented_answers_is_exported_exactly() {
    for (fixture, collateral_field) in [(DOCUMENTED, "collateral"), (OLDER_DOCS, "collateralValue")]
    {
        let main = TestAccount::new("main", "KEY-futures-docs");
        let (simulator, secret) = simulator_with_futures(&main, SimFutures::default()).await;
        simulator.set_futures_recorded(FUTURES_KEY, Some(fixture.as_bytes().to_vec()));
        let (code, m, logs) = run_once(&simulator, &main, &secret, "", "debug").await;
        assert_eq!(code, Some(0), "{logs}");
        let at = |path: &[&str]| Some(number(fixture, path));
        // Cash: lower-case keys exported upper case.
        for currency in ["xbt", "xrp"] {
            assert_eq!(
                main_series(
                    &m,
                    "kraken_futures_cash_balance",
                    &format!(r#"currency="{}""#, currency.to_uppercase())
                ),
                at(&["accounts", "cash", "balances", currency])
            );
        }
        // Flex, per currency.
        let object =
            |json: &str| -> BTreeMap<String, Box<RawValue>> { serde_json::from_str(json).unwrap() };
        let currencies = object(
            object(object(object(fixture)["accounts"].get())["flex"].get())["currencies"].get(),
        );
        assert!(!currencies.is_empty());
        for currency in currencies.keys() {
            let path =
                |field: &'static str| ["accounts", "flex", "currencies", currency.as_str(), field];
            let label = format!(r#"currency="{currency}""#);
            assert_eq!(
                main_series(&m, "kraken_futures_flex_currency_quantity", &label),
                at(&path("quantity"))
            );
            assert_eq!(
                main_series(&m, "kraken_futures_flex_currency_value", &label),
                at(&path("value"))
            );
            assert_eq!(
                main_series(&m, "kraken_futures_flex_currency_collateral", &label),
                at(&path(collateral_field))
            );
            assert_eq!(
                main_series(&m, "kraken_futures_flex_currency_available", &label),
                at(&path("available"))
            );
        }
        // Flex totals.
        for (metric, field) in [
            ("balance_value", "balanceValue"),
            ("portfolio_value", "portfolioValue"),
            ("collateral_value", "collateralValue"),
            ("initial_margin", "initialMargin"),
            ("initial_margin_with_orders", "initialMarginWithOrders"),
            ("maintenance_margin", "maintenanceMargin"),
            ("margin_equity", "marginEquity"),
            ("available_margin", "availableMargin"),
            ("pnl", "pnl"),
            ("unrealized_funding", "unrealizedFunding"),
            ("total_unrealized", "totalUnrealized"),
        ] {
            assert_eq!(
                main_series(&m, &format!("kraken_futures_flex_{metric}"), ""),
                at(&["accounts", "flex", field]),
                "{metric}"
            );
        }
        // No position open: maintenance margin 0, so no ratio (never 0 or +Inf).
        assert_eq!(
            main_series(&m, "kraken_futures_flex_margin_ratio", ""),
            None
        );
        // The single-collateral wallet, in its own currency; its contract positions are not money.
        let wallet = r#"currency="XBT",wallet="fi_xbtusd""#;
        for (metric, path) in [
            ("portfolio_value", ["auxiliary", "pv"]),
            ("available_funds", ["auxiliary", "af"]),
            ("pnl", ["auxiliary", "pnl"]),
            ("initial_margin", ["marginRequirements", "im"]),
            ("maintenance_margin", ["marginRequirements", "mm"]),
        ] {
            assert_eq!(
                main_series(
                    &m,
                    &format!("kraken_futures_margin_account_{metric}"),
                    wallet
                ),
                at(&["accounts", "fi_xbtusd", path[0], path[1]]),
                "{metric}"
            );
        }
        let text = &m.text;
        assert!(!text.contains("FI_XBTUSD"), "positions are not exported");
        assert_eq!(
            m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
            Some(1.0)
        );
        // Signed as Kraken Futures checks it.
        let futures: Vec<_> = simulator
            .requests()
            .into_iter()
            .filter(|r| r.api_key == FUTURES_KEY && r.path == FUTURES_ACCOUNTS_PATH)
            .collect();
        assert_eq!(futures.len(), 1);
        assert!(futures[0].signature_valid && futures[0].error.is_none());
    }
}

#[tokio::test]
async fn the_margin_ratio_is_equity_over_maintenance_margin_with_its_minimum() {
    let main = TestAccount::new("main", "KEY-futures-ratio");
    // 20,000 USD of collateral, no haircut; maintenance margin 8,000 and P&L -4,000: equity 16,000.
    let flex =
        SimFlex::holding(&[("USD", "20000", "1", "0")]).with_position("16000", "8000", "-4000");
    let wallets = SimFutures {
        cash: vec![("usd".to_string(), "10".parse().unwrap())],
        flex: Some(flex),
    };
    let (simulator, secret) = simulator_with_futures(&main, wallets).await;
    let (code, m, logs) = run_once(
        &simulator,
        &main,
        &secret,
        "futures_min_margin_ratio = \"2.5\"",
        "debug",
    )
    .await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        main_series(&m, "kraken_futures_flex_margin_equity", ""),
        Some(16000.0)
    );
    assert_eq!(
        main_series(&m, "kraken_futures_flex_maintenance_margin", ""),
        Some(8000.0)
    );
    assert_eq!(
        main_series(&m, "kraken_futures_flex_margin_ratio", ""),
        Some(2.0)
    );
    assert_eq!(
        main_series(&m, "kraken_futures_margin_ratio_min", ""),
        Some(2.5)
    );
    // An empty flex wallet and numbers as cash balances (older revisions) decode too.
    simulator.set_futures_recorded(
        FUTURES_KEY,
        Some(br#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"xbt":0.25}},"flex":{"type":"multiCollateralMarginAccount","currencies":{},"marginEquity":0,"maintenanceMargin":0}}}"#.to_vec()),
    );
    let (code, m, logs) = run_once(&simulator, &main, &secret, "", "debug").await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        main_series(&m, "kraken_futures_cash_balance", r#"currency="XBT""#),
        Some(0.25)
    );
    assert_eq!(
        m.count_for_account("kraken_futures_flex_currency_quantity", "main"),
        0
    );
    assert_eq!(
        main_series(&m, "kraken_futures_flex_margin_ratio", ""),
        None
    );
}

#[tokio::test]
async fn a_failing_futures_key_never_touches_spot_and_a_failing_spot_key_never_stops_futures() {
    let main = TestAccount::new("main", "KEY-futures-isolation");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    // A spot key given as the futures key: Kraken Futures answers authenticationError.
    simulator.set_futures_fault(Some(Fault::KrakenError("authenticationError".to_string())));
    let (code, m, logs) = run_once(&simulator, &main, &secret, "", "debug").await;
    assert_eq!(code, Some(0), "spot succeeded: {logs}");
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(
        m.balance("kraken_balance", "main", "USD", "spot"),
        Some(25435.21)
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
        Some(0.0)
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_errors_total{account="main",endpoint="futures/accounts",reason="invalid_key"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.errors("main", "invalid_key"),
        0.0,
        "spot errors untouched"
    );
    assert!(
        logs.contains("Kraken Futures site"),
        "the hint says where futures keys come from: {logs}"
    );
    // Rate limited: its own reason.
    simulator.set_futures_fault(Some(Fault::KrakenError("apiLimitExceeded".to_string())));
    let (_, m, _) = run_once(&simulator, &main, &secret, "", "debug").await;
    assert_eq!(
        m.get(r#"kraken_endpoint_errors_total{account="main",endpoint="futures/accounts",reason="rate_limited"}"#),
        Some(1.0)
    );
    // The other way round: the spot key fails, futures is still polled and exported.
    simulator.set_futures_fault(None);
    simulator.set_fault(Some(Fault::KrakenError("EAPI:Invalid key".to_string())));
    let (code, m, logs) = run_once(&simulator, &main, &secret, "", "debug").await;
    assert_ne!(code, Some(0), "the balances failed: {logs}");
    assert_eq!(m.up("main"), 0.0);
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
        Some(1.0),
        "{logs}"
    );
    assert!(main_series(&m, "kraken_futures_flex_margin_equity", "").is_some());
}

/// The starvation an account's one schedule caused: BalanceEx failing backed the whole account off,
/// futures calls came at 4.5, 9.2, 17.3 s and its ratio went stale. Each endpoint now keeps its own.
#[tokio::test]
async fn a_spot_key_failing_for_seconds_leaves_the_futures_key_polled_on_its_own_schedule() {
    let main = TestAccount::new("main", "KEY-futures-own-schedule");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    simulator.set_fault(Some(Fault::KrakenError("EAPI:Invalid key".to_string())));
    let mut settings = crate::helpers::settings_for(&simulator, &[&main]);
    settings.quote_currencies = Vec::new();
    settings.futures_api_url = simulator.url().to_string();
    settings.max_backoff = std::time::Duration::from_secs(60);
    settings.stale_after = Some(std::time::Duration::from_secs(3));
    settings.accounts[0].futures = Some(kraken_exporter::config::FuturesSettings {
        api_key: FUTURES_KEY.to_string().into(),
        api_secret: secret.clone().into(),
    });
    settings.accounts[0]
        .options
        .set("futures_min_margin_ratio", "3");
    let app = crate::helpers::TestApp::spawn(&settings).await;
    let watched = std::time::Duration::from_secs(8);
    tokio::time::sleep(watched).await;
    let m = app.scrape().await;
    let calls = |key: &str| {
        simulator
            .requests()
            .iter()
            .filter(|r| r.api_key == key)
            .count()
    };
    let (spot, futures) = (calls(main.api_key), calls(FUTURES_KEY));
    // One call a second (poll_interval 1 s) for 8 s; the spot key backs off (2 s, 4 s, ...).
    assert!(futures >= 7, "futures calls: {futures}, spot calls: {spot}");
    assert!(spot <= 4, "the failing spot key backs off: {spot} calls");
    assert_eq!(m.up("main"), 0.0);
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
        Some(1.0)
    );
    // Fresh, so stale_after (3 s) never removed it.
    assert!(
        main_series(&m, "kraken_futures_flex_margin_ratio", "").is_some(),
        "the ratio stays exported"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_futures_poll_keeps_its_last_values_and_backs_off_on_its_own() {
    let main = TestAccount::new("main", "KEY-futures-backoff");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    let mut account = main.settings();
    account.futures = Some(kraken_exporter::config::FuturesSettings {
        api_key: FUTURES_KEY.to_string().into(),
        api_secret: secret.clone().into(),
    });
    let (mut poller, metrics) = direct_poller(
        &simulator,
        &account,
        std::time::Duration::from_secs(2),
        default_timing(),
    );
    poller.poll_once().await.expect("balances succeed");
    let before = Samples::parse(&metrics.render_text());
    let equity = main_series(&before, "kraken_futures_flex_margin_equity", "").expect("exported");
    simulator.set_futures_fault(Some(Fault::ServerErrorHtml));
    for _ in 0..3 {
        poller.poll_once().await.expect("balances still succeed");
    }
    let after = Samples::parse(&metrics.render_text());
    assert_eq!(
        main_series(&after, "kraken_futures_flex_margin_equity", ""),
        Some(equity)
    );
    assert_eq!(
        after.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
        Some(0.0)
    );
    assert_eq!(after.up("main"), 1.0);
    let futures_calls = simulator
        .requests()
        .iter()
        .filter(|r| r.api_key == FUTURES_KEY && r.path == FUTURES_ACCOUNTS_PATH)
        .count();
    // One success, one failure, then left alone for its backoff while balances kept polling.
    assert_eq!(futures_calls, 2);
    assert_eq!(
        simulator
            .requests()
            .iter()
            .filter(|r| r.api_key == main.api_key && r.path == BALANCE_EX_PATH)
            .count(),
        4
    );
}

#[tokio::test]
async fn futures_nonces_keep_growing_across_a_restart() {
    let main = TestAccount::new("main", "KEY-futures-nonce");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    let mut seen = Vec::new();
    for run in 0..3 {
        let (code, m, logs) = run_once(&simulator, &main, &secret, "", "debug").await;
        assert_eq!(code, Some(0), "run {run}: {logs}");
        assert_eq!(
            m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
            Some(1.0),
            "run {run}: the simulator accepted the nonce: {logs}"
        );
        seen.push(simulator.futures_last_nonce(FUTURES_KEY).unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // Milliseconds since the epoch, as the spot nonces.
    assert!(
        seen[0] > 1_577_836_800_000 && seen[0] < 10_000_000_000_000,
        "{seen:?}"
    );
}

#[tokio::test]
async fn futures_secrets_stay_out_of_logs_at_trace_level_and_out_of_metrics() {
    let main = TestAccount::new("main", "KEY-futures-secret");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    // An upstream that fails after the request passed: the error path logs too.
    let (code, m, logs) = run_once(&simulator, &main, &secret, "", "trace").await;
    assert_eq!(code, Some(0), "{logs}");
    simulator.set_futures_fault(Some(Fault::KrakenError("nonceDuplicate".to_string())));
    let (_, m2, logs2) = run_once(&simulator, &main, &secret, "", "trace").await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&secret);
    let signatures: Vec<String> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.api_key == FUTURES_KEY)
        .map(|r| r.api_sign)
        .collect();
    // Each run: the wallets and the key check.
    assert_eq!(signatures.len(), 4);
    for text in [logs, logs2, m.text.clone(), m2.text.clone()] {
        assert!(!text.contains(FUTURES_KEY), "the futures key leaked");
        assert!(!text.contains(&encoded), "the futures secret leaked");
        for signature in &signatures {
            assert!(!text.contains(signature.as_str()), "a signature leaked");
        }
    }
    assert_eq!(
        m2.get(r#"kraken_endpoint_errors_total{account="main",endpoint="futures/accounts",reason="invalid_nonce"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_quote_currencies_the_cash_wallet_is_valued_at_the_spot_prices() {
    let main = TestAccount::new("main", "KEY-futures-value");
    let (simulator, secret) =
        simulator_with_futures(&main, kraken_exporter::demo::demo_futures()).await;
    let mut settings = crate::helpers::settings_for(&simulator, &[&main]);
    settings.futures_api_url = simulator.url();
    settings.accounts[0].futures = Some(kraken_exporter::config::FuturesSettings {
        api_key: FUTURES_KEY.to_string().into(),
        api_secret: secret.into(),
    });
    let app = crate::helpers::TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("the futures cash wallet is valued", |m| {
            m.get(r#"kraken_futures_cash_value{account="main",currency="XBT",quote="USD"}"#)
                .is_some()
        })
        .await;
    let price = m.value(r#"kraken_asset_price{asset="XBT",quote="USD"}"#);
    let xbt = m.value(r#"kraken_futures_cash_balance{account="main",currency="XBT"}"#);
    let value = m.value(r#"kraken_futures_cash_value{account="main",currency="XBT",quote="USD"}"#);
    assert!(
        (value - xbt * price).abs() <= value * 1e-12,
        "{value} vs {xbt} x {price}"
    );
    // USD in USD is itself; every quote currency gets its series.
    assert_eq!(
        m.get(r#"kraken_futures_cash_value{account="main",currency="USD",quote="USD"}"#),
        m.get(r#"kraken_futures_cash_balance{account="main",currency="USD"}"#)
    );
    assert!(m
        .get(r#"kraken_futures_cash_value{account="main",currency="XBT",quote="EUR"}"#)
        .is_some());
    app.stop().await;
}
