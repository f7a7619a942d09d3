//! What a healthy account looks like on /metrics: exact values, families, vanished assets, nonces.

use kraken_exporter::kraken::RebaseMultiplier;
use kraken_exporter::simulator::{SimBalance, Simulator};

use crate::helpers::{portfolio, settings_for, simulator_with_main, TestAccount, TestApp};

fn scenario() -> kraken_exporter::simulator::Portfolio {
    portfolio(&[
        ("ZUSD", SimBalance::new("25435.2100", "8249.7600", 4)),
        ("XXBT", SimBalance::new("1.2435000000", "0.8423000000", 10)),
        (
            "USDT",
            SimBalance::new("1000.00000000", "0.00000000", 8)
                .with_credit("500.00000000", "120.50000000"),
        ),
        (
            "DOT.S",
            SimBalance::new("101.1234567890", "0.0000000000", 10),
        ),
        ("XBT.M", SimBalance::new("0.0500000000", "0.0000000000", 10)),
        ("USD.HOLD", SimBalance::new("150.0000", "0.0000", 4)),
        (
            "AAPLx.T",
            SimBalance::new("10.0000000000", "0.0000000000", 10).rebasing("1.0125"),
        ),
        ("XTZ", SimBalance::new("300.00000000", "0.00000000", 8)),
        (
            "ETH2.S",
            SimBalance::new("32.0000000000", "0.0000000000", 10),
        ),
    ])
}

#[tokio::test]
async fn every_series_of_a_portfolio_is_exported_with_exact_values() {
    let (simulator, main) = simulator_with_main(scenario()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    let m = app
        .scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;

    // (asset, family, balance, hold, available, credit, credit_used), computed by hand from scenario().
    let expected = [
        ("USD", "spot", 25435.21, 8249.76, 17185.45, 0.0, 0.0),
        ("XBT", "spot", 1.2435, 0.8423, 0.4012, 0.0, 0.0),
        ("USDT", "spot", 1000.0, 0.0, 1379.5, 500.0, 120.5),
        ("DOT", "staked", 101.123456789, 0.0, 101.123456789, 0.0, 0.0),
        ("XBT", "opt_in_rewards", 0.05, 0.0, 0.05, 0.0, 0.0),
        ("USD", "hold", 150.0, 0.0, 150.0, 0.0, 0.0),
        ("AAPLx", "tokenized", 10.125, 0.0, 10.125, 0.0, 0.0),
        ("XTZ", "spot", 300.0, 0.0, 300.0, 0.0, 0.0),
        ("ETH2", "staked", 32.0, 0.0, 32.0, 0.0, 0.0),
    ];
    for (asset, family, balance, hold, available, credit, credit_used) in expected {
        let get = |metric| m.balance(metric, "main", asset, family);
        assert_eq!(get("kraken_balance"), Some(balance), "{asset} {family}");
        assert_eq!(get("kraken_balance_hold"), Some(hold), "{asset} {family}");
        assert_eq!(
            get("kraken_balance_available"),
            Some(available),
            "{asset} {family}"
        );
        // Only rows with a credit line have the credit series.
        let credit_line = credit != 0.0 || credit_used != 0.0;
        assert_eq!(
            get("kraken_balance_credit"),
            credit_line.then_some(credit),
            "{asset} {family}"
        );
        assert_eq!(
            get("kraken_balance_credit_used"),
            credit_line.then_some(credit_used),
            "{asset} {family}"
        );
    }
    for metric in [
        "kraken_balance",
        "kraken_balance_hold",
        "kraken_balance_available",
    ] {
        assert_eq!(
            m.count_for_account(metric, "main"),
            expected.len(),
            "{metric}"
        );
    }
    let with_credit = expected.iter().filter(|e| e.5 != 0.0 || e.6 != 0.0).count();
    assert!(with_credit > 0);
    for metric in ["kraken_balance_credit", "kraken_balance_credit_used"] {
        assert_eq!(m.count_for_account(metric, "main"), with_credit, "{metric}");
    }
    assert!(m.value(r#"kraken_polls_total{account="main"}"#) >= 1.0);
    assert!(m.value(r#"kraken_poll_duration_seconds_count{account="main"}"#) >= 1.0);
    let last_success = m.value(r#"kraken_last_success_timestamp_seconds{account="main"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last_success).abs() < 30.0,
        "last success {last_success} vs now {now}"
    );
    assert_eq!(m.errors("main", "invalid_nonce"), 0.0);
    let build_info = format!(
        r#"kraken_exporter_build_info{{revision="{}",rustc="{}",version="{}"}}"#,
        env!("BUILD_GIT_REVISION"),
        env!("BUILD_RUSTC_VERSION"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&build_info), Some(1.0), "{}", m.text);
    assert!(m.text.contains("# HELP kraken_balance_available "));
    assert!(m.text.contains("process_resident_memory_bytes"));

    let requests = simulator.requests();
    assert!(requests
        .iter()
        .all(|r| r.signature_valid && r.error.is_none()));
    assert!(
        requests
            .iter()
            .all(|r| !r.fields.contains_key("rebase_multiplier")),
        "sent only when configured"
    );
}

#[tokio::test]
async fn vanished_assets_are_removed_after_a_successful_poll() {
    let (simulator, main) = simulator_with_main(scenario()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    app.scrape_until("DOT staked exported", |s| {
        s.balance("kraken_balance", "main", "DOT", "staked")
            .is_some()
    })
    .await;

    let mut smaller = scenario();
    smaller.remove("DOT.S");
    smaller.insert("SOL".into(), SimBalance::new("7.5", "0", 10));
    simulator.set_portfolio(main.api_key, smaller);
    let m = app
        .scrape_until("DOT gone, SOL present", |s| {
            s.balance("kraken_balance", "main", "SOL", "spot").is_some()
        })
        .await;
    for metric in [
        "kraken_balance",
        "kraken_balance_hold",
        "kraken_balance_available",
    ] {
        assert_eq!(m.balance(metric, "main", "DOT", "staked"), None, "{metric}");
    }
    assert_eq!(
        m.balance("kraken_balance", "main", "SOL", "spot"),
        Some(7.5)
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "USD", "spot"),
        Some(25435.21)
    );
}

#[tokio::test]
async fn accounts_are_polled_and_labelled_independently() {
    let simulator = Simulator::start().await.unwrap();
    let a = TestAccount::new("treasury", "KEY-a");
    let b = TestAccount::new("trading", "KEY-b");
    simulator.add_account(a.api_key, &a.secret, scenario());
    simulator.add_account(
        b.api_key,
        &b.secret,
        portfolio(&[("ZEUR", SimBalance::new("10.0000", "2.5000", 4))]),
    );
    let app = TestApp::spawn(&settings_for(&simulator, &[&a, &b])).await;
    let m = app
        .scrape_until("both up", |s| {
            s.up("treasury") == 1.0 && s.up("trading") == 1.0
        })
        .await;
    assert_eq!(
        m.balance("kraken_balance_available", "trading", "EUR", "spot"),
        Some(7.5)
    );
    assert_eq!(m.balance("kraken_balance", "trading", "USD", "spot"), None);
    assert_eq!(m.count_for_account("kraken_balance", "trading"), 1);
    assert_eq!(m.count_for_account("kraken_balance", "treasury"), 9);
}

#[tokio::test]
async fn colliding_asset_keys_keep_their_raw_names() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-main");
    simulator.add_account(
        main.api_key,
        &main.secret,
        portfolio(&[
            ("XXBT", SimBalance::new("1.0", "0", 10)),
            ("XBT", SimBalance::new("2.0", "0", 10)),
        ]),
    );
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    let m = app
        .scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    assert_eq!(
        m.balance("kraken_balance", "main", "XXBT", "spot"),
        Some(1.0)
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "XBT", "spot"),
        Some(2.0)
    );
}

#[tokio::test]
async fn rebase_multiplier_is_sent_when_configured() {
    let (simulator, main) = simulator_with_main(scenario()).await;
    let mut settings = settings_for(&simulator, &[&main]);
    settings.rebase_multiplier = Some(RebaseMultiplier::Base);
    let app = TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    // In base units the tokenized asset is the unrebased 10, not 10 * 1.0125.
    assert_eq!(
        m.balance("kraken_balance", "main", "AAPLx", "tokenized"),
        Some(10.0)
    );
    assert!(simulator
        .requests()
        .iter()
        .filter(|r| r.path == kraken_exporter::kraken::BALANCE_EX_PATH)
        .all(
            |r| r.fields.get("rebase_multiplier").map(String::as_str) == Some("base")
                && r.signature_valid
        ));
}

#[tokio::test]
async fn nonces_keep_increasing_across_a_restart() {
    let (simulator, main) = simulator_with_main(scenario()).await;
    let settings = settings_for(&simulator, &[&main]);

    let first = TestApp::spawn(&settings).await;
    first
        .scrape_until("two polls", |s| {
            s.value(r#"kraken_polls_total{account="main"}"#) >= 2.0
        })
        .await;
    first.stop().await;

    let second = TestApp::spawn(&settings).await;
    let m = second
        .scrape_until("first poll after restart", |s| s.up("main") == 1.0)
        .await;
    assert_eq!(m.errors("main", "invalid_nonce"), 0.0);

    let nonces: Vec<u64> = simulator
        .requests()
        .iter()
        .filter_map(|r| r.nonce)
        .collect();
    assert!(nonces.len() >= 3, "{nonces:?}");
    assert!(nonces.windows(2).all(|w| w[0] < w[1]), "{nonces:?}");
    assert!(simulator.requests().iter().all(|r| r.error.is_none()));
}

#[tokio::test]
async fn configured_minimums_are_exported_with_the_same_labels_as_available() {
    let (simulator, main) = simulator_with_main(scenario()).await;
    let mut settings = settings_for(&simulator, &[&main]);
    settings.accounts[0].min_available = vec![
        kraken_exporter::config::MinAvailable {
            asset: "USD".into(),
            family: kraken_exporter::kraken::AssetFamily::Spot,
            amount: rust_decimal::Decimal::new(20_000, 0),
        },
        kraken_exporter::config::MinAvailable {
            asset: "DOT".into(),
            family: kraken_exporter::kraken::AssetFamily::Staked,
            amount: rust_decimal::Decimal::new(5, 1),
        },
    ];
    let app = TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    let min = |asset, family| m.balance("kraken_balance_available_min", "main", asset, family);
    let available = |asset, family| m.balance("kraken_balance_available", "main", asset, family);
    assert_eq!(min("USD", "spot"), Some(20_000.0));
    assert_eq!(min("DOT", "staked"), Some(0.5));
    assert_eq!(
        m.count_for_account("kraken_balance_available_min", "main"),
        2
    );
    // The generic rule `available < min` matches one to one: USD is below, DOT is not.
    assert!(available("USD", "spot").unwrap() < min("USD", "spot").unwrap());
    assert!(available("DOT", "staked").unwrap() > min("DOT", "staked").unwrap());
}

/// The part of `scrape` that holds `series` (each family's series of one account are one part).
fn part_with(scrape: &kraken_exporter::metrics::Scrape, series: &str) -> bytes::Bytes {
    scrape
        .plain()
        .into_iter()
        .find(|part| String::from_utf8_lossy(part).contains(series))
        .unwrap_or_else(|| panic!("no part holds {series}"))
}

/// A treasury account's balances are the same most polls: an answer the same byte for byte as the
/// one exported is taken for it (the balance parts stay the very bytes published before), yet the
/// poll is a success like any; the next changed answer is applied in full, and
/// after its series were cleared (stale) the same answer as before is applied again.
#[tokio::test]
async fn an_unchanged_answer_is_not_rendered_again_and_a_changed_one_is() {
    use std::time::Duration;

    use crate::helpers::{default_timing, direct_poller, Samples};

    let (simulator, main) = simulator_with_main(scenario()).await;
    let stale_after = Duration::from_millis(1500);
    let timing = kraken_exporter::polling::schedule::PollTiming {
        stale_after: Some(stale_after),
        ..default_timing()
    };
    let (mut poller, metrics) =
        direct_poller(&simulator, &main.settings(), Duration::from_secs(5), timing);
    let rows = scenario().len();
    assert_eq!(poller.poll_once().await.unwrap(), rows);
    let first = metrics.scrape();
    let balances = r#"kraken_balance_available{account="main""#;
    let polls = r#"kraken_polls_total{account="main"}"#;

    assert_eq!(
        poller.poll_once().await.unwrap(),
        rows,
        "rows of the answer"
    );
    let second = metrics.scrape();
    assert_eq!(
        part_with(&second, balances).as_ptr(),
        part_with(&first, balances).as_ptr(),
        "an unchanged answer was rendered again"
    );
    let (first_samples, second_samples) = (
        Samples::parse(&first.text()),
        Samples::parse(&second.text()),
    );
    assert_eq!(second_samples.value(polls), 2.0);
    assert_eq!(second_samples.up("main"), 1.0);
    assert_eq!(
        second_samples.balance("kraken_balance", "main", "USD", "spot"),
        first_samples.balance("kraken_balance", "main", "USD", "spot")
    );
    let asked = |simulator: &Simulator| {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/BalanceEx"))
            .count()
    };
    assert_eq!(asked(&simulator), 2, "both polls asked Kraken");

    let mut changed = scenario();
    changed.insert("ZUSD".into(), SimBalance::new("30000.0000", "0.0000", 4));
    simulator.set_portfolio(main.api_key, changed);
    poller.poll_once().await.unwrap();
    let third = metrics.scrape();
    assert_ne!(
        part_with(&third, balances).as_ptr(),
        part_with(&second, balances).as_ptr()
    );
    let samples = Samples::parse(&third.text());
    assert_eq!(
        samples.balance("kraken_balance", "main", "USD", "spot"),
        Some(30000.0)
    );
    assert_eq!(
        samples.balance("kraken_balance_available", "main", "USD", "spot"),
        Some(30000.0)
    );

    // Stale: the round clears the series first, then the same answer as before must come back.
    tokio::time::sleep(stale_after + Duration::from_millis(200)).await;
    poller.poll_once().await.unwrap();
    let samples = Samples::parse(&metrics.scrape().text());
    assert_eq!(
        samples.balance("kraken_balance", "main", "USD", "spot"),
        Some(30000.0),
        "the answer after the series were cleared was taken for the one still exported"
    );
    assert_eq!(samples.count_for_account("kraken_balance", "main"), rows);
}
