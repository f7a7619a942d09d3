//! Valuation against the simulator's public endpoints: exact values on every price route, unpriced
//! assets, public API faults that never touch balances, and asset names from Kraken.

use std::time::Duration;

use kraken_exporter::simulator::{Fault, SimBalance, Simulator};

use crate::helpers::{portfolio, settings_for, Samples, TestAccount, TestApp};

fn holdings() -> kraken_exporter::simulator::Portfolio {
    portfolio(&[
        ("XXBT", SimBalance::new("1.2435000000", "0.8423000000", 10)),
        ("ZUSD", SimBalance::new("1000.0000", "0.0000", 4)),
        ("USDC.B", SimBalance::new("800.00000000", "0.00000000", 8)),
        ("XETH", SimBalance::new("2.0000000000", "0.5000000000", 10)),
        (
            "ETH2.S",
            SimBalance::new("32.0000000000", "0.0000000000", 10),
        ),
        (
            "AAPLx.T",
            SimBalance::new("10.0000000000", "0.0000000000", 10),
        ),
        ("KFEE", SimBalance::new("1000.00", "0.00", 2)),
        (
            "XREPV2",
            SimBalance::new("5.0000000000", "0.0000000000", 10),
        ),
    ])
}

fn value(m: &Samples, metric: &str, asset: &str, family: &str, quote: &str) -> Option<f64> {
    m.get(&format!(
        r#"{metric}{{account="main",asset="{asset}",family="{family}",quote="{quote}"}}"#
    ))
}

async fn spawn(simulator: &Simulator) -> TestApp {
    let main = TestAccount::new("main", "KEY-main");
    simulator.add_account(main.api_key, &main.secret, holdings());
    let mut settings = settings_for(simulator, &[&main]);
    settings.price_interval = Duration::from_millis(300);
    TestApp::spawn(&settings).await
}

#[tokio::test]
async fn balances_are_valued_exactly_on_every_price_route() {
    let simulator = Simulator::start().await.unwrap();
    let app = spawn(&simulator).await;
    let m = app
        .scrape_until("values", |s| {
            value(s, "kraken_balance_value", "XBT", "spot", "USD").is_some()
                && s.get(r#"kraken_unpriced_assets{account="main"}"#) == Some(1.0)
        })
        .await;
    // Expected values computed by hand from the simulator's last prices (see SIM_PAIRS):
    // XBT/USD 95000.10, XBT/EUR 88000.20, ETH/XBT 0.03579, EUR/USD 1.0795, AAPLx/USD 231.45.
    let cases = [
        // direct pair
        ("kraken_balance_value", "XBT", "spot", "USD", 118_132.624_35),
        (
            "kraken_balance_available_value",
            "XBT",
            "spot",
            "USD",
            38_114.040_12,
        ),
        ("kraken_balance_value", "XBT", "spot", "EUR", 109_428.248_7),
        // the quote itself
        ("kraken_balance_value", "USD", "spot", "USD", 1000.0),
        // inverse pair: 1000 / 1.0795
        (
            "kraken_balance_value",
            "USD",
            "spot",
            "EUR",
            926.354_793_886_058_4,
        ),
        // peg: USDC has no pair of its own
        (
            "kraken_balance_value",
            "USDC",
            "yield_bearing",
            "USD",
            800.0,
        ),
        // one hop through XBT: 2 x 0.03579 x 95000.10
        ("kraken_balance_value", "ETH", "spot", "USD", 6_800.107_158),
        (
            "kraken_balance_available_value",
            "ETH",
            "spot",
            "USD",
            5_100.080_368_5,
        ),
        // staked ETH2 at ETH's price: 32 x 0.03579 x 95000.10
        (
            "kraken_balance_value",
            "ETH2",
            "staked",
            "USD",
            108_801.714_528,
        ),
        // tokenized asset by its own pair: 10 x 231.45
        ("kraken_balance_value", "AAPLx", "tokenized", "USD", 2_314.5),
    ];
    for (metric, asset, family, quote, expected) in cases {
        let got = value(&m, metric, asset, family, quote);
        let got =
            got.unwrap_or_else(|| panic!("{metric} {asset} {family} {quote} missing:\n{}", m.text));
        assert!(
            (got - expected).abs() <= expected.abs() * 1e-12,
            "{metric} {asset} {quote}: {got} vs {expected}"
        );
    }
    // Fee credits are never valued, and not counted as unpriced; their balance is exported.
    assert!(
        !m.text.contains(r#"_value{account="main",asset="KFEE""#),
        "{}",
        m.text
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "KFEE", "fee_credits"),
        Some(1000.0)
    );
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="KFEE"}"#),
        None
    );
    // No pair reaches REPV2: no value series, counted (1 above), balance untouched.
    assert_eq!(
        value(&m, "kraken_balance_value", "REPV2", "spot", "USD"),
        None
    );
    assert_eq!(
        m.get(r#"kraken_asset_price{asset="XBT",quote="USD"}"#),
        Some(95_000.1)
    );
    // 0.03579 x 95000.10, exactly in decimal.
    assert_eq!(
        m.get(r#"kraken_asset_price{asset="ETH2",quote="USD"}"#),
        Some(3400.053579)
    );
    assert_eq!(m.get("kraken_prices_up"), Some(1.0));
    assert!(
        m.get("kraken_prices_last_success_timestamp_seconds")
            .unwrap()
            > 1.7e9
    );
}

#[tokio::test]
async fn public_api_failures_keep_prices_and_never_touch_balances() {
    let simulator = Simulator::start().await.unwrap();
    simulator.set_public_fault(Some(Fault::ServerErrorHtml));
    let app = spawn(&simulator).await;
    let down = app
        .scrape_until("first poll while prices are down", |s| {
            s.up("main") == 1.0 && s.get("kraken_prices_up") == Some(0.0)
        })
        .await;
    assert_eq!(
        down.balance("kraken_balance", "main", "XBT", "spot"),
        Some(1.2435)
    );
    assert_eq!(
        value(&down, "kraken_balance_value", "XBT", "spot", "USD"),
        None
    );

    simulator.set_public_fault(None);
    let priced = app
        .scrape_until("prices back", |s| {
            value(s, "kraken_balance_value", "XBT", "spot", "USD").is_some()
        })
        .await;
    let before = value(&priced, "kraken_balance_value", "XBT", "spot", "USD");

    for fault in [
        Fault::Hang,
        Fault::KrakenError("EService:Unavailable".into()),
        Fault::TruncatedJson,
    ] {
        simulator.set_public_fault(Some(fault.clone()));
        let failing = app
            .scrape_until("a failed price refresh", |s| {
                s.get("kraken_prices_up") == Some(0.0)
            })
            .await;
        assert_eq!(
            value(&failing, "kraken_balance_value", "XBT", "spot", "USD"),
            before,
            "{fault:?}"
        );
        assert_eq!(failing.up("main"), 1.0, "{fault:?}");
        assert_eq!(
            failing.balance("kraken_balance", "main", "XBT", "spot"),
            Some(1.2435)
        );
        simulator.set_public_fault(None);
        app.scrape_until("prices back", |s| s.get("kraken_prices_up") == Some(1.0))
            .await;
    }
}

#[tokio::test]
async fn asset_names_come_from_kraken_without_renaming_known_codes() {
    let simulator = Simulator::start().await.unwrap();
    let app = spawn(&simulator).await;
    // XREPV2 is outside the built-in table: once Kraken's Assets endpoint is read it is named REPV2.
    let m = app
        .scrape_until("REPV2 named", |s| {
            s.balance("kraken_balance", "main", "REPV2", "spot")
                .is_some()
        })
        .await;
    assert_eq!(m.balance("kraken_balance", "main", "XREPV2", "spot"), None);
    // Known codes keep the table's name even where Kraken's altname differs (KFEE is "FEE" there).
    assert_eq!(
        m.balance("kraken_balance", "main", "KFEE", "fee_credits"),
        Some(1000.0)
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "FEE", "fee_credits"),
        None
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "XBT", "spot"),
        Some(1.2435)
    );
}

/// Each reload used to start a price task with nothing cached: three public calls per reload. Asset
/// names and pairs are kept across reloads; a reload costs one `Ticker`, and the threshold check
/// still runs against the kept asset list.
#[tokio::test]
async fn reloads_keep_kraken_asset_names_and_pairs() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-main-reloads");
    simulator.add_account(main.api_key, &main.secret, holdings());
    let mut settings = settings_for(&simulator, &[&main]);
    settings.price_interval = Duration::from_secs(3600);
    let reloaded = settings.clone();
    let options = kraken_exporter::app::ServeOptions {
        enable_lifecycle: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with(
        &settings,
        options,
        Some(Box::new(move || Ok(reloaded.clone()))),
    )
    .await;
    app.scrape_until("prices", |s| s.get("kraken_prices_up") == Some(1.0))
        .await;
    assert_eq!(
        (
            simulator.public_calls("Assets"),
            simulator.public_calls("AssetPairs")
        ),
        (1, 1)
    );
    let tickers = simulator.public_calls("Ticker");
    for _ in 0..3 {
        let response = app
            .http
            .post(format!("{}/-/reload", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // Reloads are taken at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    crate::helpers::eventually("each reload's price refresh", || async {
        (simulator.public_calls("Ticker") >= tickers + 3).then_some(())
    })
    .await;
    assert_eq!(
        (
            simulator.public_calls("Assets"),
            simulator.public_calls("AssetPairs")
        ),
        (1, 1),
        "names and pairs asked for once"
    );
    // Labels learned from Kraken stay: XREPV2 is REPV2 throughout.
    let m = app.scrape().await;
    assert!(
        m.balance("kraken_balance", "main", "REPV2", "spot")
            .is_some(),
        "learned names kept across reloads"
    );
    app.stop().await;
}
