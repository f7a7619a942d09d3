//! Money outside the spot rows, through the binary against the simulator: margin health from
//! TradeBalance, Earn allocations in flight, per-endpoint health and isolation, and keys with a 2FA
//! password.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::{earn_allocations, trade_balance, BALANCE_EX_PATH};
use kraken_exporter::simulator::{SimAllocation, SimMargin, Simulator};

use crate::helpers::{default_timing, direct_poller, once, Samples, TestAccount};

fn margin(m: &Samples, name: &str) -> Option<f64> {
    m.get(&format!(r#"{name}{{account="main",quote="USD"}}"#))
}

fn endpoint_up(m: &Samples, endpoint: &str) -> Option<f64> {
    m.get(&format!(
        r#"kraken_endpoint_up{{account="main",endpoint="{endpoint}"}}"#
    ))
}

async fn simulator_with(account: &TestAccount) -> Simulator {
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(account.api_key, &account.secret, demo_portfolio());
    simulator
}

#[tokio::test]
async fn margin_figures_come_from_trade_balance_in_the_configured_currency() {
    let main = TestAccount::new("main", "KEY-margin");
    let simulator = simulator_with(&main).await;
    // Kraken's documented example: e = tb + n, mf = e - m, ml = e / m * 100.
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new(
            "ZUSD",
            "1101.3425",
            "392.2264",
            "7.0354",
            "-10.0232",
            "21.1063",
        )),
    );
    let (code, m, logs) = once(
        &simulator,
        &main,
        "margin = true\nmin_margin_level = \"2.0\"",
    )
    .await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        margin(&m, "kraken_margin_equivalent_balance"),
        Some(1101.3425)
    );
    assert_eq!(margin(&m, "kraken_margin_trade_balance"), Some(392.2264));
    assert_eq!(margin(&m, "kraken_margin_used"), Some(7.0354));
    assert_eq!(margin(&m, "kraken_margin_unrealized_pnl"), Some(-10.0232));
    assert_eq!(margin(&m, "kraken_margin_cost_basis"), Some(21.1063));
    assert_eq!(margin(&m, "kraken_margin_positions_value"), Some(11.0831));
    assert_eq!(margin(&m, "kraken_margin_equity"), Some(382.2032));
    assert_eq!(margin(&m, "kraken_margin_free"), Some(375.1678));
    // ml = 382.2032 / 7.0354 * 100 = 5432.57 (2 places, as Kraken sends it), exported as a ratio.
    assert_eq!(
        m.get(r#"kraken_margin_level_ratio{account="main"}"#),
        Some(54.3257)
    );
    assert_eq!(
        m.get(r#"kraken_margin_level_min_ratio{account="main"}"#),
        Some(2.0)
    );
    assert_eq!(endpoint_up(&m, "TradeBalance"), Some(1.0));
    assert_eq!(endpoint_up(&m, "BalanceEx"), Some(1.0));
    // The currency is sent the way Kraken writes it.
    let asked: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path == trade_balance::PATH)
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].fields.get("asset").map(String::as_str),
        Some("ZUSD")
    );
}

#[tokio::test]
async fn without_open_positions_the_margin_level_is_absent_not_zero() {
    let main = TestAccount::new("main", "KEY-flat");
    let simulator = simulator_with(&main).await;
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new("ZEUR", "5000", "5000", "0", "0", "0")),
    );
    let (code, m, logs) = once(&simulator, &main, "margin = true\nmargin_asset = \"EUR\"").await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        m.get(r#"kraken_margin_free{account="main",quote="EUR"}"#),
        Some(5000.0)
    );
    assert_eq!(m.get(r#"kraken_margin_level_ratio{account="main"}"#), None);
    assert!(!m.text.contains("kraken_margin_level_ratio{"), "{}", m.text);
    assert_eq!(
        m.get(r#"kraken_margin_level_min_ratio{account="main"}"#),
        None
    );
}

#[tokio::test]
async fn earn_allocations_in_flight_with_their_release_times() {
    let main = TestAccount::new("main", "KEY-earn");
    let simulator = simulator_with(&main).await;
    let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
    simulator.set_earn(
        main.api_key,
        vec![
            SimAllocation::new("ESDQCOL-WTZEU-NU55QF", "ETH", "0.0123")
                .tranche("bonding", "0.021", at(1_900_000_000))
                .tranche("allocated", "1.5", at(1_900_000_000))
                .tranche("exit_queue", "0.25", at(1_900_500_000))
                .tranche("unbonding", "0.1", at(1_900_200_000))
                .tranche("unbonding", "0.2", at(1_900_100_000)),
            SimAllocation::new("ESXUM7H-SJHQ6-KOQNNI", "DOT", "1.5").tranche(
                "allocated",
                "100",
                at(1_900_000_000),
            ),
            // Zero everywhere: hidden by hide_zero_allocations.
            SimAllocation::new("EZERO", "XXBT", "0").tranche("allocated", "0", at(1_900_000_000)),
        ],
    );
    let (code, m, logs) = once(&simulator, &main, "earn = true").await;
    assert_eq!(code, Some(0), "{logs}");
    let allocated = |asset: &str, strategy: &str, state: &str| {
        m.get(&format!(
            r#"kraken_earn_allocated{{account="main",asset="{asset}",state="{state}",strategy="{strategy}"}}"#
        ))
    };
    let eth = "ESDQCOL-WTZEU-NU55QF";
    // The registry writes labels in name order: state before strategy.
    assert_eq!(allocated("ETH", eth, "bonding"), Some(0.021));
    assert_eq!(allocated("ETH", eth, "allocated"), Some(1.5));
    assert_eq!(allocated("ETH", eth, "exit_queue"), Some(0.25));
    assert_eq!(allocated("ETH", eth, "unbonding"), Some(0.3));
    assert_eq!(allocated("ETH", eth, "total"), Some(2.071));
    assert_eq!(
        allocated("DOT", "ESXUM7H-SJHQ6-KOQNNI", "total"),
        Some(100.0)
    );
    // The earliest unbonding or exit-queue tranche; bonding does not count.
    assert_eq!(
        m.get(&format!(
            r#"kraken_earn_next_release_timestamp_seconds{{account="main",asset="ETH",strategy="{eth}"}}"#
        )),
        Some(1_900_100_000.0)
    );
    assert_eq!(
        m.get(r#"kraken_earn_next_release_timestamp_seconds{account="main",asset="DOT",strategy="ESXUM7H-SJHQ6-KOQNNI"}"#),
        None
    );
    assert_eq!(
        m.get(&format!(
            r#"kraken_earn_rewarded{{account="main",asset="ETH",strategy="{eth}"}}"#
        )),
        Some(0.0123)
    );
    assert!(!m.text.contains("EZERO"), "zero allocations are hidden");
    let asked: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path == earn_allocations::PATH)
        .collect();
    assert_eq!(
        asked[0]
            .fields
            .get("hide_zero_allocations")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(endpoint_up(&m, "Earn/Allocations"), Some(1.0));
}

#[tokio::test]
async fn a_refused_optional_endpoint_never_disturbs_balances_or_the_others() {
    let main = TestAccount::new("main", "KEY-refused");
    let simulator = simulator_with(&main).await;
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new("ZUSD", "100", "100", "10", "5", "50")),
    );
    simulator.deny(main.api_key, trade_balance::PATH);
    simulator.set_earn(
        main.api_key,
        vec![SimAllocation::new("S1", "DOT", "0").tranche("allocated", "7", UNIX_EPOCH)],
    );
    let (code, m, logs) = once(&simulator, &main, "margin = true\nearn = true").await;
    assert_eq!(code, Some(0), "BalanceEx succeeded: {logs}");
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(
        m.balance("kraken_balance", "main", "USD", "spot"),
        Some(25435.21)
    );
    assert_eq!(endpoint_up(&m, "BalanceEx"), Some(1.0));
    assert_eq!(endpoint_up(&m, "TradeBalance"), Some(0.0));
    assert_eq!(endpoint_up(&m, "Earn/Allocations"), Some(1.0));
    assert_eq!(
        m.get(r#"kraken_endpoint_errors_total{account="main",endpoint="TradeBalance",reason="permission_denied"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.errors("main", "permission_denied"),
        0.0,
        "BalanceEx errors are not affected"
    );
    assert_eq!(margin(&m, "kraken_margin_free"), None);
    assert!(m
        .get(r#"kraken_earn_allocated{account="main",asset="DOT",state="total",strategy="S1"}"#)
        .is_some());
    assert!(
        logs.contains("Orders and trades - Query open orders & trades"),
        "the log names the permission to add: {logs}"
    );
}

#[tokio::test]
async fn with_the_options_off_only_balance_ex_and_the_keys_info_are_called() {
    let main = TestAccount::new("main", "KEY-plain");
    let simulator = simulator_with(&main).await;
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new("ZUSD", "100", "100", "10", "5", "50")),
    );
    let (code, m, logs) = once(&simulator, &main, "").await;
    assert_eq!(code, Some(0), "{logs}");
    let paths: Vec<&str> = simulator.requests().iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![BALANCE_EX_PATH, kraken_exporter::kraken::api_key::PATH]
    );
    assert_eq!(endpoint_up(&m, "TradeBalance"), None);
    assert!(!m.text.contains("kraken_margin_"), "{}", m.text);
    assert!(!m.text.contains("kraken_earn_"), "{}", m.text);
}

#[tokio::test]
async fn a_key_with_a_2fa_password_needs_api_otp_file_and_the_hint_says_so() {
    let main = TestAccount::new("main", "KEY-2fa");
    let simulator = simulator_with(&main).await;
    let password = "tr0ub4dor&3 horse";
    simulator.set_otp(main.api_key, Some(password));
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new("ZUSD", "100", "100", "10", "5", "50")),
    );

    let (code, _, logs) = once(&simulator, &main, "").await;
    assert_eq!(code, Some(1));
    assert!(logs.contains("invalid_signature"), "{logs}");
    assert!(
        logs.contains("2FA password") && logs.contains("api_otp_file"),
        "{logs}"
    );

    let dir = tempfile::tempdir().unwrap();
    let otp_file = dir.path().join("otp");
    std::fs::write(&otp_file, format!("{password}\n")).unwrap();
    set_private(&otp_file);
    let (code, m, logs) = once(
        &simulator,
        &main,
        &format!("api_otp_file = \"{}\"\nmargin = true", otp_file.display()),
    )
    .await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(
        endpoint_up(&m, "TradeBalance"),
        Some(1.0),
        "otp goes with every endpoint"
    );
    assert!(
        !logs.contains(password) && !logs.contains("tr0ub4dor"),
        "{logs}"
    );
    assert!(!m.text.contains("tr0ub4dor"));
}

#[cfg(unix)]
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn set_private(_path: &Path) {}

/// A poller of `main` with margin on, driven directly (no schedule), and its metrics.
fn margin_poller(
    simulator: &Simulator,
    main: &TestAccount,
    stale_after: Option<Duration>,
) -> (
    kraken_exporter::polling::poller::AccountPoller,
    std::sync::Arc<kraken_exporter::metrics::Metrics>,
) {
    let mut account = main.settings();
    account.options.set("margin", true);
    let timing = kraken_exporter::polling::schedule::PollTiming {
        stale_after,
        ..default_timing()
    };
    direct_poller(simulator, &account, Duration::from_secs(2), timing)
}

#[tokio::test]
async fn a_failing_optional_endpoint_backs_off_on_its_own_while_balances_keep_polling() {
    let main = TestAccount::new("main", "KEY-backoff");
    let simulator = simulator_with(&main).await;
    simulator.deny(main.api_key, trade_balance::PATH);
    let (mut poller, metrics) = margin_poller(&simulator, &main, None);
    for _ in 0..3 {
        poller.poll_once().await.expect("BalanceEx succeeds");
    }
    let count = |path: &str| {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    };
    assert_eq!(count(BALANCE_EX_PATH), 3);
    // Refused once, then left alone for at least two poll intervals (the first backoff).
    assert_eq!(count(trade_balance::PATH), 1);
    let m = Samples::parse(&metrics.render_text());
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(
        m.get(r#"kraken_endpoint_errors_total{account="main",endpoint="TradeBalance",reason="permission_denied"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_stale_after_an_optional_endpoints_old_figures_go() {
    let main = TestAccount::new("main", "KEY-stale-margin");
    let simulator = simulator_with(&main).await;
    simulator.set_margin(
        main.api_key,
        Some(SimMargin::new("ZUSD", "100", "100", "10", "5", "50")),
    );
    let stale_after = Duration::from_millis(300);
    let (mut poller, metrics) = margin_poller(&simulator, &main, Some(stale_after));
    let level = || {
        Samples::parse(&metrics.render_text()).get(r#"kraken_margin_level_ratio{account="main"}"#)
    };
    poller.poll_once().await.unwrap();
    // equity = tb + n = 105 on 10 of margin used: 1050 %.
    assert_eq!(level(), Some(10.5));
    simulator.deny(main.api_key, trade_balance::PATH);
    poller.poll_once().await.unwrap();
    assert!(
        level().is_some(),
        "a failure keeps the last figures while they are fresh"
    );
    tokio::time::sleep(stale_after + Duration::from_millis(100)).await;
    poller.poll_once().await.unwrap();
    assert_eq!(level(), None, "older than stale_after: removed");
    let m = Samples::parse(&metrics.render_text());
    assert_eq!(m.up("main"), 1.0);
    assert!(m.balance("kraken_balance", "main", "USD", "spot").is_some());
}
